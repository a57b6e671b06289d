"""push_cube_2d_distractor: push_cube_2d with a look-alike cube next to the goal.

A second cube of a similar colour (orange-red, the target is crimson) spawns near the goal,
outside it and off the target's path (``distractor_min_angle``..``distractor_max_angle`` degrees
around the goal away from the target). It is pushed like the target and pushes the target back
(see :mod:`.physics`), and the policy observes it (6 extra state entries: position, offset from
the pusher, offset to the goal). Reward, ``success`` and ``info["stage"]`` count only the target,
so the env-reward task is push_cube_2d with an obstacle. ``info["metrics"]`` adds
``distractor_goal_dist`` and ``distractor_in_goal``.

Why it fools a success classifier trained on warm-up frames: a policy trained on the env reward
pushes the target and (almost) never leaves the distractor in the goal, so in its terminal frames
"a red square covers the green disc" and "the target is in the goal" coincide. A classifier
trained on them has no reason to tell the two reds apart and scores a frame with the distractor
in the goal as a success (see the README, "A task that fools the success classifier", for the
measured rate, and for what a learned-reward run on it does).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict

import torch

from embodireward.config import config_error
from embodireward.envs.push_cube_2d.config import TABLE_HALF_SIZE, PushCube2DConfig, check_angle_range
from embodireward.envs.push_cube_2d.env import PushCube2D
from embodireward.envs.push_cube_2d.render import CUBE, DISTRACTOR
from embodireward.registry import register_env


@dataclass
class PushCube2DDistractorConfig(PushCube2DConfig):
    # the distractor's centre spawns this far from the goal centre ...
    distractor_min_goal_dist: float = 0.25
    distractor_max_goal_dist: float = 0.35
    # ... this many degrees around the goal away from the target cube (0: on the target's path to the goal;
    # a spawn overlapping the target is moved apart from it)
    distractor_min_angle: float = 90.0
    distractor_max_angle: float = 180.0

    def validate(self, path: str) -> None:
        super().validate(path)
        if not 0 < self.distractor_min_goal_dist <= self.distractor_max_goal_dist:
            raise config_error(path, "distractor_min_goal_dist", "must be > 0 and <= distractor_max_goal_dist")
        # the spawn is clamped onto the table, which can bring it at most this close to the goal
        closest = min(self.distractor_min_goal_dist, TABLE_HALF_SIZE - self.cube_half_size - self.spawn_half_size)
        if closest <= self.goal_radius:
            raise config_error(path, "distractor_min_goal_dist", f"the distractor could spawn in the goal: its distance from the goal centre can be as low as {closest:.3f} <= goal_radius {self.goal_radius}")
        check_angle_range(path, "distractor", self.distractor_min_angle, self.distractor_max_angle)


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
        distractor = self._spawn_around(goal, cube, (cfg.distractor_min_goal_dist, cfg.distractor_max_goal_dist),
                                        (cfg.distractor_min_angle, cfg.distractor_max_angle))
        limit = TABLE_HALF_SIZE - cfg.cube_half_size
        return distractor.clamp(-limit, limit).unsqueeze(1)

    def _metrics(self, cube_goal_dist: torch.Tensor, reach_dist: torch.Tensor) -> Dict[str, torch.Tensor]:
        distractor_goal_dist = (self.distractor_pos - self.goal_pos).norm(dim=-1)
        return {
            **super()._metrics(cube_goal_dist, reach_dist),
            "distractor_goal_dist": distractor_goal_dist,
            "distractor_in_goal": (distractor_goal_dist < self.cfg.goal_radius).float(),
        }

    def describe(self) -> Dict[str, Any]:
        cfg = self.cfg
        return {**super().describe(), "distractor": {"min_goal_dist": cfg.distractor_min_goal_dist, "max_goal_dist": cfg.distractor_max_goal_dist, "min_angle": cfg.distractor_min_angle, "max_angle": cfg.distractor_max_angle}}
