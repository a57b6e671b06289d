"""PushCube2D with a distractor cube: a built-in task on which a naive success classifier is fooled.

Placeholder docstring (filled in once the design is measured).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict

import torch

from embodireward.config import config_error
from embodireward.envs.push_cube_2d.config import TABLE_HALF_SIZE, PushCube2DConfig
from embodireward.envs.push_cube_2d.env import PushCube2D
from embodireward.envs.push_cube_2d.render import CUBE, DISTRACTOR
from embodireward.registry import register_env


@dataclass
class PushCube2DDistractorConfig(PushCube2DConfig):
    # the distractor's centre spawns this far from the goal centre ...
    distractor_min_goal_dist: float = 0.25
    distractor_max_goal_dist: float = 0.35
    # ... at least this many degrees around the goal away from the target cube (off its path)
    distractor_min_angle: float = 90.0

    def validate(self, path: str) -> None:
        super().validate(path)
        if not 0 < self.distractor_min_goal_dist <= self.distractor_max_goal_dist:
            raise config_error(path, "distractor_min_goal_dist", "must be > 0 and <= distractor_max_goal_dist")
        # the spawn is clamped onto the table, which can bring it at most this close to the goal
        closest = min(self.distractor_min_goal_dist, TABLE_HALF_SIZE - self.cube_half_size - self.spawn_half_size)
        if closest <= self.goal_radius:
            raise config_error(path, "distractor_min_goal_dist", f"the distractor could spawn in the goal: its distance from the goal centre can be as low as {closest:.3f} <= goal_radius {self.goal_radius}")
        if not 0 <= self.distractor_min_angle <= 180:
            raise config_error(path, "distractor_min_angle", f"must be in [0, 180] degrees, got {self.distractor_min_angle}")


@register_env("push_cube_2d_distractor")
class PushCube2DDistractor(PushCube2D):
    """PushCube2D with a second, similar-coloured cube near the goal; only the target cube counts."""

    Config = PushCube2DDistractorConfig
    cube_colours = (CUBE, DISTRACTOR)

    @property
    def distractor_pos(self) -> torch.Tensor:
        """Centre ``[N, 2]`` of the distractor cube (a view: writes move it)."""
        return self.cubes[:, 1]

    def _spawn_other_cubes(self, cube: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        n = cube.shape[0]
        to_cube = cube - goal
        angle = torch.atan2(to_cube[:, 1:], to_cube[:, :1])
        turn = self._uniform(n, 1, math.radians(cfg.distractor_min_angle), math.pi)
        side = torch.where(self._uniform(n, 1, 0.0, 1.0) < 0.5, -1.0, 1.0)
        angle = angle + side * turn
        dist = self._uniform(n, 1, cfg.distractor_min_goal_dist, cfg.distractor_max_goal_dist)
        limit = TABLE_HALF_SIZE - cfg.cube_half_size
        distractor = (goal + dist * torch.cat([angle.cos(), angle.sin()], dim=-1)).clamp(-limit, limit)
        return distractor.unsqueeze(1)

    def _metrics(self, cube_goal_dist: torch.Tensor, reach_dist: torch.Tensor) -> Dict[str, torch.Tensor]:
        distractor_goal_dist = (self.distractor_pos - self.goal_pos).norm(dim=-1)
        return {
            **super()._metrics(cube_goal_dist, reach_dist),
            "distractor_goal_dist": distractor_goal_dist,
            "distractor_in_goal": (distractor_goal_dist < self.cfg.goal_radius).float(),
        }

    def describe(self) -> Dict[str, Any]:
        cfg = self.cfg
        return {**super().describe(), "distractor": {"min_goal_dist": cfg.distractor_min_goal_dist, "max_goal_dist": cfg.distractor_max_goal_dist, "min_angle": cfg.distractor_min_angle}}
