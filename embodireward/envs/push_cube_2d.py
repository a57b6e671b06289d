"""PushCube2D: a top-down 2D pushing task, batched in torch over thousands of envs.

A round pusher, moved by a 2-D velocity action, must push an axis-aligned square cube into a goal
disc on the table ``[-1, 1]^2``. Contact is quasi-static: after the pusher moves, any overlap with
the cube is resolved by moving the cube out along the contact normal (the cube stops as soon as
it is no longer pushed, i.e. full friction), then the cube is kept on the table and, if a wall
stopped it, the pusher is pushed back out of the cube.

Episodes last ``episode_length`` steps (time limit -> ``truncated``). By default success does not
terminate the episode (as in ManiSkill's PushCube): every step in the goal earns the success
bonus, so the policy learns to push the cube in *and keep it there*, and ``success`` at the
last step (what a terminal-frame reward model sees) stays meaningful. All envs then finish
together, which also keeps the rollout simple; ``terminate_on_success`` switches to ending the
episode at the first success.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, Literal, Optional, Tuple

import gymnasium as gym
import numpy as np
import torch

from embodireward.config import config_error
from embodireward.envs.base import RENDER_REQUESTS, Frames, Obs, RenderRequest, VecEnv
from embodireward.registry import register_env

TABLE_HALF_SIZE = 1.0
STATE_DIM = 12
# palette index -> RGB: table, goal, cube, pusher, goal once the cube is in (highlight_success)
PALETTE = ((200, 200, 200), (60, 180, 75), (230, 25, 75), (0, 90, 200), (255, 225, 25))
TABLE, GOAL, CUBE, PUSHER, GOAL_REACHED = range(5)


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


@register_env("push_cube_2d")
class PushCube2D(VecEnv):
    """Top-down 2D pusher that must push a square cube into a goal disc (batched torch)."""

    Config = PushCube2DConfig

    def __init__(self, cfg: PushCube2DConfig, device: torch.device, seed: int = 0):
        self.cfg = cfg
        self.num_envs = cfg.num_envs
        self.device = torch.device(device)
        self.max_episode_steps = cfg.episode_length
        self.camera_keys = (cfg.camera_key,)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)

        self.single_action_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        state_space = gym.spaces.Box(-np.inf, np.inf, shape=(STATE_DIM,), dtype=np.float32)
        rgb_space = gym.spaces.Box(0, 255, shape=(cfg.image_size, cfg.image_size, 3), dtype=np.uint8)
        self.single_observation_space = {
            "state": state_space,
            "rgb": gym.spaces.Dict({"rgb": rgb_space}),
            "state+rgb": gym.spaces.Dict({"state": state_space, "rgb": rgb_space}),
        }[cfg.obs_mode]

        n = self.num_envs
        self.pusher_pos = torch.zeros(n, 2, device=self.device)
        self.pusher_vel = torch.zeros(n, 2, device=self.device)
        self.cube_pos = torch.zeros(n, 2, device=self.device)
        self.goal_pos = torch.zeros(n, 2, device=self.device)
        self.elapsed = torch.zeros(n, dtype=torch.long, device=self.device)

        # pixel-centre coordinates of the top-down camera; image rows go from y = +1 down to y = -1
        pixel = (torch.arange(cfg.image_size, device=self.device, dtype=torch.float32) + 0.5) / cfg.image_size
        self._pixel_x = (2 * pixel - 1) * TABLE_HALF_SIZE
        self._pixel_y = (1 - 2 * pixel) * TABLE_HALF_SIZE
        self._palette = torch.tensor(PALETTE, dtype=torch.uint8, device=self.device)
        # one flat background image; copying contiguous rows is much faster than an expanded [H, W, 3]
        self._background = self._palette[TABLE].repeat(cfg.image_size * cfg.image_size).unsqueeze(0)

    # ---------------------------------------------------------------- episode control

    def reset(self, seed: Optional[int] = None) -> Tuple[Obs, Dict[str, Any]]:
        if seed is not None:
            self.generator.manual_seed(seed)
        self._reset_envs(torch.arange(self.num_envs, device=self.device))
        return self._observe(self._render_state(None) if self._obs_has_rgb else None), {}

    def _uniform(self, n: int, dims: int, low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, dims, generator=self.generator, device=self.device)

    def _reset_envs(self, env_ids: torch.Tensor) -> None:
        cfg = self.cfg
        n = env_ids.numel()
        cube = self._uniform(n, 2, -cfg.spawn_half_size, cfg.spawn_half_size)
        angle = self._uniform(n, 1, -np.pi, np.pi)
        dist = self._uniform(n, 1, cfg.min_cube_goal_dist, cfg.max_cube_goal_dist)
        offset = dist * torch.cat([angle.cos(), angle.sin()], dim=-1)
        # mirror the offset on axes where it would leave the spawn square (keeps the distance)
        goal = cube + offset
        goal = torch.where(goal.abs() > cfg.spawn_half_size, cube - offset, goal)
        pusher_limit = TABLE_HALF_SIZE - cfg.pusher_radius
        pusher = self._uniform(n, 2, -pusher_limit, pusher_limit)
        # a pusher spawned on the cube is moved out to a ring around it, in the same direction
        clearance = cfg.cube_half_size * 2**0.5 + cfg.pusher_radius + 0.05
        away = pusher - cube
        too_close = away.norm(dim=-1, keepdim=True) < clearance
        direction = away / away.norm(dim=-1, keepdim=True).clamp(min=1e-6)
        pusher = torch.where(too_close, (cube + clearance * direction).clamp(-pusher_limit, pusher_limit), pusher)

        self.cube_pos[env_ids] = cube
        self.goal_pos[env_ids] = goal
        self.pusher_pos[env_ids] = pusher
        self.pusher_vel[env_ids] = 0.0
        self.elapsed[env_ids] = 0

    def state_dict(self) -> Dict[str, torch.Tensor]:
        """Generator and simulation state, so a resumed run continues the same episodes."""
        return {
            "generator": self.generator.get_state(),
            "pusher_pos": self.pusher_pos.clone(),
            "pusher_vel": self.pusher_vel.clone(),
            "cube_pos": self.cube_pos.clone(),
            "goal_pos": self.goal_pos.clone(),
            "elapsed": self.elapsed.clone(),
        }

    def load_state_dict(self, state: Dict[str, torch.Tensor]) -> None:
        self.generator.set_state(state["generator"].cpu())
        for key in ("pusher_pos", "pusher_vel", "cube_pos", "goal_pos", "elapsed"):
            getattr(self, key).copy_(state[key])

    # ---------------------------------------------------------------- dynamics

    def _simulate(self, actions: torch.Tensor) -> None:
        cfg = self.cfg
        pusher_limit = TABLE_HALF_SIZE - cfg.pusher_radius
        cube_limit = TABLE_HALF_SIZE - cfg.cube_half_size
        start = self.pusher_pos
        pusher = (start + actions.clamp(-1.0, 1.0) * cfg.max_speed).clamp(-pusher_limit, pusher_limit)
        # push the cube out of the pusher along the contact normal, keep it on the table ...
        dist, normal = box_contact(pusher, self.cube_pos, cfg.cube_half_size)
        penetration = (cfg.pusher_radius - dist).clamp(min=0.0).unsqueeze(-1)
        cube = (self.cube_pos - normal * penetration).clamp(-cube_limit, cube_limit)
        # ... and if a wall stopped the cube, the pusher is pushed back out of it instead
        dist, normal = box_contact(pusher, cube, cfg.cube_half_size)
        penetration = (cfg.pusher_radius - dist).clamp(min=0.0).unsqueeze(-1)
        pusher = (pusher + normal * penetration).clamp(-pusher_limit, pusher_limit)

        self.pusher_vel = (pusher - start) / cfg.max_speed  # in action units, ~[-1, 1]
        self.pusher_pos = pusher
        self.cube_pos = cube

    def _reward(self, cube_goal_dist: torch.Tensor, success: torch.Tensor) -> Tuple[Dict[str, torch.Tensor], torch.Tensor]:
        """Weighted reward components and the distance from the pusher to its pushing spot."""
        cfg = self.cfg
        # the pushing spot is just behind the cube, on the far side from the goal
        to_goal = self.goal_pos - self.cube_pos
        push_dir = to_goal / to_goal.norm(dim=-1, keepdim=True).clamp(min=1e-6)
        push_spot = self.cube_pos - push_dir * (cfg.cube_half_size + cfg.pusher_radius)
        reach_dist = (self.pusher_pos - push_spot).norm(dim=-1)
        closeness = lambda d: 1.0 - torch.tanh(cfg.reward_distance_scale * d)  # noqa: E731
        # once the cube is in, the pushing spot (ill-defined at the goal centre) no longer matters
        reach = torch.where(success, 1.0, closeness(reach_dist))
        rewards = {
            "reach": cfg.reach_weight * reach,
            "push": cfg.push_weight * closeness(cube_goal_dist),
            "success": cfg.success_reward * success.float(),
        }
        return rewards, reach_dist

    def step(self, actions: torch.Tensor, render: RenderRequest = "never") -> Tuple[Obs, torch.Tensor, torch.Tensor, torch.Tensor, Dict[str, Any]]:
        if render not in RENDER_REQUESTS:
            raise ValueError(f"render must be one of {RENDER_REQUESTS}, got {render!r}")
        self._simulate(actions.to(self.device, torch.float32))
        self.elapsed += 1

        cube_goal_dist = (self.cube_pos - self.goal_pos).norm(dim=-1)
        success = cube_goal_dist < self.cfg.goal_radius
        rewards, reach_dist = self._reward(cube_goal_dist, success)
        reward = sum(rewards.values())
        terminated = success if self.cfg.terminate_on_success else torch.zeros_like(success)
        truncated = (self.elapsed >= self.cfg.episode_length) & ~terminated
        done = terminated | truncated
        done_ids = done.nonzero().squeeze(-1)

        # images of the state the step ended in (terminal state for finished envs), rendered once
        # and shared by the rgb observation and the requested frames
        images = self._render_state(None) if self._obs_has_rgb or render == "every_step" else None
        info: Dict[str, Any] = {
            "success": success,
            "rewards": rewards,
            "metrics": {"cube_goal_dist": cube_goal_dist, "reach_dist": reach_dist},
        }
        if render == "every_step":
            info["frames"] = Frames(torch.arange(self.num_envs, device=self.device), {self.cfg.camera_key: images})
        elif render == "episode_end":
            final_images = images[done_ids] if images is not None else self._render_state(done_ids)
            info["frames"] = Frames(done_ids, {self.cfg.camera_key: final_images})

        final_obs = self._observe(images)
        info["final_obs"] = final_obs
        obs = final_obs
        if done_ids.numel() > 0:
            self._reset_envs(done_ids)
            if images is not None:
                images = images.clone()
                images[done_ids] = self._render_state(done_ids)
            obs = self._observe(images)
        return obs, reward, terminated, truncated, info

    # ---------------------------------------------------------------- observation & rendering

    @property
    def _obs_has_rgb(self) -> bool:
        return self.cfg.obs_mode != "state"

    def _observe(self, images: Optional[torch.Tensor]) -> Obs:
        if self.cfg.obs_mode == "rgb":
            return {"rgb": images}
        state = torch.cat(
            [
                self.pusher_pos,
                self.pusher_vel,
                self.cube_pos,
                self.goal_pos,
                self.cube_pos - self.pusher_pos,
                self.goal_pos - self.cube_pos,
            ],
            dim=-1,
        )
        return state if self.cfg.obs_mode == "state" else {"state": state, "rgb": images}

    def _render_state(self, env_ids: Optional[torch.Tensor]) -> torch.Tensor:
        """uint8 ``[K, H, W, 3]`` top-down images of the given envs (all when None)."""
        cfg = self.cfg
        select = (lambda t: t) if env_ids is None else (lambda t: t[env_ids])
        pusher, cube, goal = select(self.pusher_pos), select(self.cube_pos), select(self.goal_pos)
        images = self._background.expand(cube.shape[0], -1).clone().view(-1, cfg.image_size, cfg.image_size, 3)
        if cfg.show_goal:
            goal_colour = self._palette[GOAL]
            if cfg.highlight_success:
                in_goal = (cube - goal).norm(dim=-1, keepdim=True) < cfg.goal_radius
                goal_colour = torch.where(in_goal, self._palette[GOAL_REACHED], goal_colour)
            self._stamp(images, goal, cfg.goal_radius, lambda dx, dy: dx**2 + dy**2 < cfg.goal_radius**2, goal_colour)
        self._stamp(images, cube, cfg.cube_half_size, lambda dx, dy: (dx.abs() < cfg.cube_half_size) & (dy.abs() < cfg.cube_half_size), self._palette[CUBE])
        self._stamp(images, pusher, cfg.pusher_radius, lambda dx, dy: dx**2 + dy**2 < cfg.pusher_radius**2, self._palette[PUSHER])
        return images

    def _stamp(self, images: torch.Tensor, centres: torch.Tensor, extent: float, inside: Callable, colour: torch.Tensor) -> None:
        """Paint the pixels whose centres satisfy ``inside(dx, dy)`` (offsets from ``centres``).

        Only a square patch of pixels around each shape is tested, which is much cheaper than
        testing every pixel of every image. ``colour``: ``[3]`` or one per image ``[K, 3]``.
        """
        size = self.cfg.image_size
        pixels_per_unit = size / (2 * TABLE_HALF_SIZE)
        # a margin of one pixel on each side absorbs the rounding of the patch corner
        patch = torch.arange(math.ceil(2 * extent * pixels_per_unit) + 3, device=self.device)
        first_col = ((centres[:, 0] - extent + TABLE_HALF_SIZE) * pixels_per_unit).floor().long() - 1
        first_row = ((TABLE_HALF_SIZE - centres[:, 1] - extent) * pixels_per_unit).floor().long() - 1
        cols, rows = first_col[:, None] + patch, first_row[:, None] + patch  # [K, P]
        dx = self._pixel_x[cols.clamp(0, size - 1)] - centres[:, :1]
        dy = self._pixel_y[rows.clamp(0, size - 1)] - centres[:, 1:]
        on_image = lambda index: (index >= 0) & (index < size)  # noqa: E731
        hit = inside(dx[:, None, :], dy[:, :, None]) & on_image(cols)[:, None, :] & on_image(rows)[:, :, None]
        image, row, col = hit.nonzero(as_tuple=True)
        pixel = (image * size + rows[image, row]) * size + cols[image, col]
        images.view(-1, 3)[pixel] = colour if colour.dim() == 1 else colour[image]

    def render_frames(self) -> Frames:
        return Frames(torch.arange(self.num_envs, device=self.device), {self.cfg.camera_key: self._render_state(None)})

    def describe(self) -> Dict[str, Any]:
        return {
            "env_id": "push_cube_2d",
            "camera_keys": list(self.camera_keys),
            "image_size": [self.cfg.image_size, self.cfg.image_size],
            "obs_mode": self.cfg.obs_mode,
            "control_mode": "pusher_velocity",
            "show_goal": self.cfg.show_goal,
            "highlight_success": self.cfg.highlight_success,
            "episode_length": self.cfg.episode_length,
        }
