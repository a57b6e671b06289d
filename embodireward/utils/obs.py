"""Observations are a tensor or a flat dict of tensors; these helpers treat both alike."""
from __future__ import annotations

from typing import Callable, List, Sequence

import gymnasium as gym
import numpy as np
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


_TORCH_DTYPES = {np.dtype("uint8"): torch.uint8, np.dtype("bool"): torch.bool}


def obs_storage(space: gym.Space, shape_prefix: Sequence[int], device: torch.device) -> Obs:
    """Zeros of shape ``[*shape_prefix, *space.shape]`` per entry: uint8 images stay uint8, the rest float32."""
    if isinstance(space, gym.spaces.Dict):
        return {key: obs_storage(sub, shape_prefix, device) for key, sub in space.spaces.items()}
    dtype = _TORCH_DTYPES.get(np.dtype(space.dtype), torch.float32)
    return torch.zeros(*shape_prefix, *space.shape, dtype=dtype, device=device)


def obs_nbytes(space: gym.Space) -> int:
    """Bytes one observation takes in :func:`obs_storage`."""
    if isinstance(space, gym.spaces.Dict):
        return sum(obs_nbytes(sub) for sub in space.spaces.values())
    itemsize = 1 if np.dtype(space.dtype) in _TORCH_DTYPES else 4
    return int(np.prod(space.shape, dtype=np.int64)) * itemsize


def obs_assign(storage: Obs, index, value: Obs) -> None:
    """``storage[index] = value`` for every entry."""
    if isinstance(storage, dict):
        for key in storage:
            storage[key][index] = value[key]
    else:
        storage[index] = value
