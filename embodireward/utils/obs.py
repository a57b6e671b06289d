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


def obs_cat(parts: List[Obs]) -> Obs:
    """Concatenate observations along the batch dimension."""
    if isinstance(parts[0], dict):
        return {key: torch.cat([part[key] for part in parts]) for key in parts[0]}
    return torch.cat(parts)


def obs_to(obs: Obs, device: torch.device) -> Obs:
    return obs_map(lambda value: value.to(device, non_blocking=True), obs)
