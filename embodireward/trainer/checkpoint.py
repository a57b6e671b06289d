"""Training checkpoints: atomic ``torch.save``, safe ``torch.load(weights_only=True)``.

A checkpoint holds everything needed to continue a run exactly: policy (with normaliser statistics),
algorithm state (optimizer, minibatch RNG), global step, iteration, RNG states, env RNG state, the
config, and the observation/action shapes used to check compatibility on load.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Dict

import numpy as np
import torch

from embodireward.utils.io import atomic_path

CHECKPOINT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable or does not fit the configured run (one-line message)."""


def rng_state() -> Dict[str, Any]:
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": random.getstate(),
    }


def restore_rng_state(state: Dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def save_checkpoint(path: Path, state: Dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save({"format_version": CHECKPOINT_VERSION, **state}, tmp)


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
    if not isinstance(state, dict) or state.get("format_version") != CHECKPOINT_VERSION or "policy" not in state:
        raise CheckpointError(f"{path}: not an embodireward training checkpoint (expected format_version {CHECKPOINT_VERSION} with a policy)")
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
