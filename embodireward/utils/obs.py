"""Observations are a tensor or a flat dict of tensors; these helpers treat both alike."""
from __future__ import annotations

from typing import Callable, List

import torch

from embodireward.envs.base import Obs


def obs_map(fn: Callable[[torch.Tensor], torch.Tensor], obs: Obs) -> Obs:
    if isinstance(obs, dict):
        return {key: fn(value) for key, value in obs.items()}
    return fn(obs)


def obs_index(obs: Obs, index) -> Obs:
    return obs_map(lambda value: value[index], obs)


def obs_batch_size(obs: Obs) -> int:
    return len(next(iter(obs.values()))) if isinstance(obs, dict) else len(obs)


def map_in_chunks(fn: Callable[[Obs], torch.Tensor], obs: Obs, chunk: int) -> torch.Tensor:
    """``fn`` over consecutive slices of at most ``chunk`` rows, concatenated: bounds peak memory."""
    return torch.cat([fn(obs_index(obs, slice(start, start + chunk))) for start in range(0, obs_batch_size(obs), chunk)])


def obs_cat(parts: List[Obs]) -> Obs:
    """Concatenate observations along the batch dimension."""
    if isinstance(parts[0], dict):
        return {key: torch.cat([part[key] for part in parts]) for key in parts[0]}
    return torch.cat(parts)


def obs_to(obs: Obs, device: torch.device) -> Obs:
    return obs_map(lambda value: value.to(device, non_blocking=True), obs)
