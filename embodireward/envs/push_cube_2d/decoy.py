"""push_cube_2d_decoy: push_cube_2d with a goal look-alike next to the cube.

A second disc of the goal's size, in a teal-green close to the goal's green, is drawn beside the
cube's spawn (``decoy_min_cube_dist``..``decoy_max_cube_dist`` from it, ``decoy_min_angle``..
``decoy_max_angle`` degrees around the cube away from the goal): off the cube's path to the goal,
and nearer than the goal (0.3-0.6 away) in 85% of episodes. It is flat: nothing collides with it. The policy
observes it (4 extra state entries: its centre and its offset from the cube). Reward, ``success``
and ``info["stage"]`` count only the real goal. ``info["metrics"]`` adds ``cube_decoy_dist`` and
``cube_in_decoy``.

Why it fools a success classifier trained on warm-up frames: a policy trained on the env reward
pushes the cube away from the decoy, so no warm-up frame shows the cube on it, and "the red cube
covers a green disc" separates success from failure as well as "... covers *the* green disc"
does. Nothing in the data makes the classifier learn the small colour difference (colour jitter
blurs it further), so a cube on the decoy scores as a success. A policy that learns from that
model from scratch finds the decoy first: it is nearer, and random pushes end there far more
often than in the goal.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List

import torch

from embodireward.config import config_error
from embodireward.envs.push_cube_2d.config import TABLE_HALF_SIZE, PushCube2DConfig, check_angle_range
from embodireward.envs.push_cube_2d.env import PushCube2D
from embodireward.registry import register_env


@dataclass
class PushCube2DDecoyConfig(PushCube2DConfig):
    # the decoy's centre is this far from the cube's spawn centre ...
    # (from 0.29 on, cube and disc do not overlap at the spawn: 0.1 * sqrt(2) + goal_radius 0.15)
    decoy_min_cube_dist: float = 0.3
    decoy_max_cube_dist: float = 0.4
    # ... this many degrees around the cube away from the goal (180: straight behind the cube)
    decoy_min_angle: float = 90.0
    decoy_max_angle: float = 180.0

    def validate(self, path: str) -> None:
        super().validate(path)
        if not self.goal_radius < self.decoy_min_cube_dist <= self.decoy_max_cube_dist:
            raise config_error(path, "decoy_min_cube_dist", f"need goal_radius ({self.goal_radius}) < decoy_min_cube_dist <= decoy_max_cube_dist (the cube must not spawn on the decoy), got {self.decoy_min_cube_dist} and {self.decoy_max_cube_dist}")
        check_angle_range(path, "decoy", self.decoy_min_angle, self.decoy_max_angle)


@register_env("push_cube_2d_decoy")
class PushCube2DDecoy(PushCube2D):
    """PushCube2D with a decoy goal disc of a similar colour beside the cube; only the real goal counts."""

    Config = PushCube2DDecoyConfig
    state_keys = PushCube2D.state_keys + ("decoy_goal",)
    extra_state_dim = 4

    def __init__(self, cfg: PushCube2DDecoyConfig, device: torch.device, seed: int = 0):
        super().__init__(cfg, device, seed)
        self.decoy_goal = torch.zeros(cfg.num_envs, 2, device=self.device)

    def _reset_envs(self, env_ids: torch.Tensor) -> None:
        super()._reset_envs(env_ids)
        cfg = self.cfg
        decoy = self._spawn_around(self.cube_pos[env_ids], self.goal_pos[env_ids], (cfg.decoy_min_cube_dist, cfg.decoy_max_cube_dist),
                                   (cfg.decoy_min_angle, cfg.decoy_max_angle))
        limit = TABLE_HALF_SIZE - cfg.goal_radius  # the whole disc stays on the table
        self.decoy_goal[env_ids] = decoy.clamp(-limit, limit)

    def _extra_state(self) -> List[torch.Tensor]:
        return [self.decoy_goal, self.decoy_goal - self.cube_pos]

    def _render_extras(self, select: Callable[[torch.Tensor], torch.Tensor]) -> Dict[str, torch.Tensor]:
        return {"decoy_goal": select(self.decoy_goal)}

    def _metrics(self, cube_goal_dist: torch.Tensor, reach_dist: torch.Tensor) -> Dict[str, torch.Tensor]:
        cube_decoy_dist = (self.cube_pos - self.decoy_goal).norm(dim=-1)
        return {
            **super()._metrics(cube_goal_dist, reach_dist),
            "cube_decoy_dist": cube_decoy_dist,
            "cube_in_decoy": (cube_decoy_dist < self.cfg.goal_radius).float(),
        }

    def describe(self) -> Dict[str, Any]:
        cfg = self.cfg
        return {**super().describe(), "decoy": {"min_cube_dist": cfg.decoy_min_cube_dist, "max_cube_dist": cfg.decoy_max_cube_dist, "min_angle": cfg.decoy_min_angle, "max_angle": cfg.decoy_max_angle}}
