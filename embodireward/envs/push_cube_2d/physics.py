"""Quasi-static contact of a round pusher with axis-aligned square cubes on a walled table.

One step (:func:`simulate`): the pusher moves; every cube it overlaps is moved out along the
contact normal (full friction: a cube stops as soon as it is no longer pushed) and kept on the
table; a cube pushed into another cube pushes that one along the axis of least overlap (the
minimum translation between two squares); finally the pusher is pushed back out of any cube a
wall (or the other cube) stopped. All functions work on batches ``[N, ...]``.
"""
from __future__ import annotations

from itertools import combinations
from typing import Tuple

import torch

from embodireward.envs.push_cube_2d.config import TABLE_HALF_SIZE, PushCube2DConfig


def box_contact(points: torch.Tensor, centres: torch.Tensor, half_size: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """Signed distance ``[N]`` from ``points`` to axis-aligned squares, and the outward unit normal ``[N, 2]``."""
    offset = points - centres
    excess = offset.abs() - half_size
    outside = excess.clamp(min=0.0)
    outside_dist = outside.norm(dim=-1, keepdim=True)
    is_outside = outside_dist > 0
    sign = offset.sign()
    # inside the square the nearest face is on the axis with the largest (least negative) excess
    x_face_nearest = excess[:, :1] >= excess[:, 1:]
    inside_normal = sign * torch.cat([x_face_nearest, ~x_face_nearest], dim=-1)
    normal = torch.where(is_outside, outside * sign / outside_dist.clamp(min=1e-9), inside_normal)
    signed_dist = torch.where(is_outside, outside_dist, excess.max(dim=-1, keepdim=True).values)
    return signed_dist.squeeze(-1), normal


def circle_box_penetration(points: torch.Tensor, radius: float, centres: torch.Tensor, half_size: float) -> torch.Tensor:
    """How far ``[N, 2]`` a disc at ``points`` reaches into the squares, along the squares' outward normal."""
    dist, normal = box_contact(points, centres, half_size)
    return normal * (radius - dist).clamp(min=0.0).unsqueeze(-1)


def square_overlap(a: torch.Tensor, b: torch.Tensor, half_size: float) -> torch.Tensor:
    """Minimum translation ``[N, 2]`` that moves square ``b`` out of square ``a`` (zero when apart).

    Two squares overlap when both axis overlaps ``2h - |b - a|`` are positive; they separate along
    the axis of least overlap, in the direction from ``a`` to ``b``.
    """
    offset = b - a
    overlap = 2 * half_size - offset.abs()
    touching = (overlap > 0).all(dim=-1, keepdim=True)
    x_least = overlap[:, :1] <= overlap[:, 1:]
    axis = torch.cat([x_least, ~x_least], dim=-1).float()
    direction = torch.where(offset >= 0, 1.0, -1.0)
    return torch.where(touching, axis * direction * overlap, torch.zeros_like(offset))


def separate_cubes(cubes: torch.Tensor, pushed: torch.Tensor, half_size: float) -> torch.Tensor:
    """Resolve overlaps between cubes ``[N, C, 2]``; ``pushed`` (bool ``[N, C]``) marks the cubes the pusher moved.

    The cube the pusher did not move gives way (both share when neither or both were pushed); if
    a wall stops it, the pushing cube is moved back by the rest.
    """
    limit = TABLE_HALF_SIZE - half_size
    cubes = cubes.clone()
    for i, j in combinations(range(cubes.shape[1]), 2):
        push = square_overlap(cubes[:, i], cubes[:, j], half_size)
        j_gives = torch.where(pushed[:, i] == pushed[:, j], 0.5, pushed[:, i].float()).unsqueeze(-1)
        cubes[:, j] = (cubes[:, j] + j_gives * push).clamp(-limit, limit)
        cubes[:, i] = (cubes[:, i] - (1 - j_gives) * push).clamp(-limit, limit)
        rest = square_overlap(cubes[:, i], cubes[:, j], half_size)
        cubes[:, i] = (cubes[:, i] - torch.where(j_gives >= 0.5, rest, 0.0)).clamp(-limit, limit)
        cubes[:, j] = (cubes[:, j] + torch.where(j_gives < 0.5, rest, 0.0)).clamp(-limit, limit)
    return cubes


def simulate(pusher: torch.Tensor, cubes: torch.Tensor, actions: torch.Tensor, cfg: PushCube2DConfig) -> Tuple[torch.Tensor, torch.Tensor]:
    """One step: new pusher ``[N, 2]`` and cube ``[N, C, 2]`` positions after moving the pusher by ``actions``."""
    pusher_limit = TABLE_HALF_SIZE - cfg.pusher_radius
    cube_limit = TABLE_HALF_SIZE - cfg.cube_half_size
    pusher = (pusher + actions.clamp(-1.0, 1.0) * cfg.max_speed).clamp(-pusher_limit, pusher_limit)
    # push each cube out of the pusher and keep it on the table ...
    penetration = torch.stack([circle_box_penetration(pusher, cfg.pusher_radius, cubes[:, k], cfg.cube_half_size) for k in range(cubes.shape[1])], dim=1)
    cubes = (cubes - penetration).clamp(-cube_limit, cube_limit)
    # ... let pushed cubes push the others ...
    if cubes.shape[1] > 1:
        cubes = separate_cubes(cubes, penetration.abs().sum(-1) > 0, cfg.cube_half_size)
    # ... and if a wall (or another cube) stopped a cube, push the pusher back out of it instead
    for k in range(cubes.shape[1]):
        pusher = (pusher + circle_box_penetration(pusher, cfg.pusher_radius, cubes[:, k], cfg.cube_half_size)).clamp(-pusher_limit, pusher_limit)
    return pusher, cubes
