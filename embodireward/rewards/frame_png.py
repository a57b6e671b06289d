"""Single-frame reward data files: an RGB PNG, optionally carrying the robot's state.

The robot state (``Frames.robot_state``: joint positions, then velocities) travels inside the PNG
as a ``robot_state`` text chunk (a JSON list of floats), so a frame and its state are one file,
written atomically together, and every PNG viewer still shows the image.
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np
import torch

STATE_CHUNK = "robot_state"


def encode_frame(image: np.ndarray, robot_state: Optional[Sequence[float]] = None) -> bytes:
    """uint8 ``[H, W, 3]`` (and the robot state) -> PNG bytes."""
    from PIL import Image, PngImagePlugin

    info = None
    if robot_state is not None:
        info = PngImagePlugin.PngInfo()
        info.add_text(STATE_CHUNK, json.dumps([float(x) for x in robot_state]))
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def read_frame(path: Path, robot_state_dim: Optional[int] = 0) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """-> (uint8 ``[1, 3, H, W]`` with any PNG mode converted to RGB, float ``[1, robot_state_dim]`` or None).

    ValueError when ``robot_state_dim`` > 0 and the file carries no robot state of that size;
    ``robot_state_dim`` None: the robot state the file carries, of any size, or None.
    """
    from PIL import Image

    with Image.open(path) as image:
        array = np.asarray(image.convert("RGB"))
        text = getattr(image, "text", {}).get(STATE_CHUNK)
    frame = torch.from_numpy(array.copy()).permute(2, 0, 1).unsqueeze(0)
    if robot_state_dim == 0 or (robot_state_dim is None and text is None):
        return frame, None
    if text is None:
        raise ValueError(f"no '{STATE_CHUNK}' in the PNG (the data's manifest says frames carry {robot_state_dim} robot-state values)")
    state = np.asarray(json.loads(text), dtype=np.float32)
    if robot_state_dim is None:
        robot_state_dim = state.size
    if state.shape != (robot_state_dim,) or not np.isfinite(state).all():
        raise ValueError(f"'{STATE_CHUNK}' holds {state.shape[0] if state.ndim == 1 else state.shape} values, expected {robot_state_dim} finite ones")
    return frame, torch.from_numpy(state).unsqueeze(0)
