"""Typed configuration of push_cube_2d: episode, camera, geometry and reward weights."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from embodireward.config import config_error

TABLE_HALF_SIZE = 1.0  # the table is [-1, 1]^2


def check_angle_range(path: str, prefix: str, low: float, high: float) -> None:
    """``<prefix>_min_angle`` / ``<prefix>_max_angle`` must satisfy 0 <= low <= high <= 180 (degrees)."""
    if not 0 <= low <= high <= 180:
        raise config_error(path, f"{prefix}_min_angle", f"need 0 <= {prefix}_min_angle <= {prefix}_max_angle <= 180 (degrees), got {low} and {high}")


@dataclass
class PushCube2DConfig:
    num_envs: int = 256
    episode_length: int = 50
    obs_mode: Literal["state", "rgb", "state+rgb"] = "state"
    image_size: int = 64
    camera_key: str = "top_camera"
    show_goal: bool = True  # draw the goal disc in images
    highlight_success: bool = False  # goal disc changes colour while the cube is in it
    terminate_on_success: bool = False
    # geometry (table is [-1, 1]^2)
    pusher_radius: float = 0.08
    cube_half_size: float = 0.1
    goal_radius: float = 0.15
    max_speed: float = 0.1  # pusher displacement per step at |action| = 1
    spawn_half_size: float = 0.6  # cube and goal centres spawn in [-s, s]^2
    min_cube_goal_dist: float = 0.3
    max_cube_goal_dist: float = 0.6
    # info["stage"] is "partial" while the cube centre is within this many goal radii (but not in the goal)
    partial_radius_scale: float = 2.5
    # reward = reach_weight * reach + push_weight * push + success_reward * success
    reach_weight: float = 1.0
    push_weight: float = 2.0
    success_reward: float = 3.0
    reward_distance_scale: float = 3.0  # closeness = 1 - tanh(scale * distance)

    def validate(self, path: str) -> None:
        for key in ("num_envs", "episode_length"):
            if getattr(self, key) < 1:
                raise config_error(path, key, f"must be >= 1, got {getattr(self, key)}")
        if self.image_size < 8:
            raise config_error(path, "image_size", f"must be >= 8, got {self.image_size}")
        for key in ("pusher_radius", "cube_half_size", "goal_radius", "max_speed", "reward_distance_scale"):
            if getattr(self, key) <= 0:
                raise config_error(path, key, f"must be > 0, got {getattr(self, key)}")
        if self.partial_radius_scale <= 1:
            raise config_error(path, "partial_radius_scale", f"must be > 1 (the partial ring lies outside the goal), got {self.partial_radius_scale}")
        # the pusher must fit behind a cube at the spawn border: cube edge + pusher diameter < table edge
        room = TABLE_HALF_SIZE - self.cube_half_size - 2 * self.pusher_radius
        if not 0 < self.spawn_half_size <= room:
            raise config_error(path, "spawn_half_size", f"must be in (0, {room:.3f}] so the pusher fits behind a spawned cube, got {self.spawn_half_size}")
        if not 0 < self.min_cube_goal_dist <= self.max_cube_goal_dist:
            raise config_error(path, "min_cube_goal_dist", "must be > 0 and <= max_cube_goal_dist")
        # the goal is placed by mirroring an offset per axis, which stays in the spawn square only if |offset| <= s
        if self.max_cube_goal_dist > self.spawn_half_size:
            raise config_error(path, "max_cube_goal_dist", f"must be <= spawn_half_size ({self.spawn_half_size}), got {self.max_cube_goal_dist}")
        if self.max_speed >= self.cube_half_size + self.pusher_radius:
            raise config_error(path, "max_speed", "must be < cube_half_size + pusher_radius, or the pusher can tunnel through the cube")
