"""Training checkpoints: everything a run needs to continue exactly where it stopped.

A checkpoint (``torch.save``d to memory, then written atomically; loaded with
``torch.load(weights_only=True)``) holds::

    format_version   2
    policy           policy state dict (normaliser statistics included)
    algorithm        the algorithm's state (optimizers, minibatch generator, buffers it keeps)
    env              the training env's snapshot (``VecEnv.state_dict()``), or None if it cannot snapshot
    last_obs         the observation the next rollout starts from
    episode_stats    per-env running returns/lengths and the open statistics window
    callbacks        each callback's ``state_dict()``
    reward_hook      the learned-reward hook's run totals (or None)
    rng              torch (CPU and CUDA), NumPy and Python generator states
    global_step, iteration, best_eval
    config           the resolved config the run was started with
    obs_space, action_dim   checked against the env when the checkpoint is loaded
"""
from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any, Dict

import numpy as np
import torch

from embodireward.utils.io import atomic_write_bytes

CHECKPOINT_VERSION = 2
READABLE_VERSIONS = (1, 2)  # version 1 (policy, algorithm, rng, counters) still loads, and resumes statistically


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable or does not fit the configured run (one-line message)."""


def rng_state() -> Dict[str, Any]:
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, state: Dict[str, Any]) -> None:
    """Serialise in memory first: a full disk then fails in a plain file write (a one-line
    ``FileSystemError`` naming the file) instead of inside torch's zip writer, and the previous
    checkpoint at ``path`` stays intact."""
    buffer = io.BytesIO()
    torch.save({"format_version": CHECKPOINT_VERSION, **state}, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or a run directory (-> its ``checkpoints/latest.pt``)."""
    path = Path(path)
    if path.is_dir():
        for candidate in (path / "checkpoints" / "latest.pt", path / "latest.pt"):
            if candidate.is_file():
                return candidate
        raise CheckpointError(f"{path}: no checkpoints/latest.pt in this run directory")
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    return path


def load_checkpoint(path: str | Path) -> Dict[str, Any]:
    path = resolve_checkpoint(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated/foreign files
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable embodireward checkpoint ({first_line})") from None
    if not isinstance(state, dict) or state.get("format_version") not in READABLE_VERSIONS or "policy" not in state:
        raise CheckpointError(f"{path}: not an embodireward training checkpoint (expected format_version "
                              f"{' or '.join(map(str, READABLE_VERSIONS))} with a policy)")
    return state


def load_policy_weights(policy: torch.nn.Module, weights: Dict[str, torch.Tensor], source: str) -> None:
    """Load a policy state dict, naming the first mismatching parameter instead of a traceback."""
    own = policy.state_dict()
    missing = [key for key in own if key not in weights]
    unexpected = [key for key in weights if key not in own]
    if missing or unexpected:
        detail = f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}"
        raise CheckpointError(f"{source}: policy architecture differs from the configured one ({detail}; "
                              f"{len(missing)} missing, {len(unexpected)} unexpected parameters)")
    for key, value in own.items():
        if tuple(weights[key].shape) != tuple(value.shape):
            raise CheckpointError(f"{source}: policy parameter '{key}' has shape {tuple(weights[key].shape)} in the checkpoint "
                                  f"but {tuple(value.shape)} in the configured policy (check obs/action dims and hidden sizes)")
    policy.load_state_dict(weights)
