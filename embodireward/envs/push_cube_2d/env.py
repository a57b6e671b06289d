"""PushCube2D: a top-down 2D pushing task, batched in torch over thousands of envs.

A round pusher, moved by a 2-D velocity action, must push an axis-aligned square cube into a goal
disc on the table ``[-1, 1]^2`` (contact model in :mod:`.physics`, camera in :mod:`.render`).

Episodes last ``episode_length`` steps (time limit -> ``truncated``). By default success does not
terminate the episode (as in ManiSkill's PushCube): every step in the goal earns the success
bonus, so the policy learns to push the cube in *and keep it there*, and ``success`` at the
last step (what a terminal-frame reward model sees) stays meaningful. All envs then finish
together, which also keeps the rollout simple; ``terminate_on_success`` switches to ending the
episode at the first success.

Besides the :class:`~embodireward.envs.base.VecEnv` keys, ``info["stage"]`` (long ``[N]``, every
step) is the task stage of the state the step ended in, named by ``stage_names``:

- 2 ``success``: the (target) cube's centre is within ``goal_radius`` of the goal centre;
- 1 ``partial``: it is within ``partial_radius_scale * goal_radius`` (default 2.5x) but not in;
- 0 ``failed``: otherwise.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Optional, Tuple

import gymnasium as gym
import numpy as np
import torch

from embodireward.envs.base import RENDER_REQUESTS, Frames, Obs, RenderRequest, VecEnv
from embodireward.envs.push_cube_2d.config import TABLE_HALF_SIZE, PushCube2DConfig
from embodireward.envs.push_cube_2d.physics import separate_cubes, simulate
from embodireward.envs.push_cube_2d.render import CUBE, TopDownRenderer
from embodireward.registry import register_env

STATE_DIM = 12  # pusher, pusher velocity, cube, goal, cube - pusher, goal - cube
CUBE_STATE_DIM = 6  # each further cube: position, cube - pusher, goal - cube


@register_env("push_cube_2d")
class PushCube2D(VecEnv):
    """Top-down 2D pusher that must push a square cube into a goal disc (batched torch).

    ``cubes`` (``[N, C, 2]``) holds every cube's centre; cube 0 is the one that must reach the goal
    (``cube_pos`` is a view of it). Subclasses add cubes by extending ``cube_colours`` (one
    palette index per cube) and placing them in :meth:`_spawn_other_cubes`.
    """

    Config = PushCube2DConfig
    stage_names = ("failed", "partial", "success")
    cube_colours: Tuple[int, ...] = (CUBE,)
    # simulation state saved by state_dict (besides the generator); subclasses append theirs
    state_keys: Tuple[str, ...] = ("pusher_pos", "pusher_vel", "cubes", "goal_pos", "elapsed")
    extra_state_dim = 0  # state entries a subclass appends in _extra_state
    robot_state_dim = 4  # Frames.robot_state: the pusher's position and velocity

    def __init__(self, cfg: PushCube2DConfig, device: torch.device, seed: int = 0):
        self.cfg = cfg
        self.num_envs = cfg.num_envs
        self.device = torch.device(device)
        self.max_episode_steps = cfg.episode_length
        self.camera_keys = (cfg.camera_key,)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)

        num_cubes = len(self.cube_colours)
        self.single_action_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        state_space = gym.spaces.Box(-np.inf, np.inf, shape=(STATE_DIM + CUBE_STATE_DIM * (num_cubes - 1) + self.extra_state_dim,), dtype=np.float32)
        rgb_space = gym.spaces.Box(0, 255, shape=(cfg.image_size, cfg.image_size, 3), dtype=np.uint8)
        self.single_observation_space = {
            "state": state_space,
            "rgb": gym.spaces.Dict({"rgb": rgb_space}),
            "state+rgb": gym.spaces.Dict({"state": state_space, "rgb": rgb_space}),
        }[cfg.obs_mode]

        n = self.num_envs
        self.pusher_pos = torch.zeros(n, 2, device=self.device)
        self.pusher_vel = torch.zeros(n, 2, device=self.device)
        self.cubes = torch.zeros(n, num_cubes, 2, device=self.device)
        self.goal_pos = torch.zeros(n, 2, device=self.device)
        self.elapsed = torch.zeros(n, dtype=torch.long, device=self.device)
        self.renderer = TopDownRenderer(cfg, self.cube_colours, self.device)

    @property
    def cube_pos(self) -> torch.Tensor:
        """Centre ``[N, 2]`` of the cube that must reach the goal (a view: writes move the cube)."""
        return self.cubes[:, 0]

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
        cubes = torch.cat([cube.unsqueeze(1), self._spawn_other_cubes(cube, goal)], dim=1)
        if cubes.shape[1] > 1:  # cubes spawned overlapping share the way out
            cubes = separate_cubes(cubes, torch.zeros(cubes.shape[:2], dtype=torch.bool, device=self.device), cfg.cube_half_size)
        pusher_limit = TABLE_HALF_SIZE - cfg.pusher_radius
        pusher = self._uniform(n, 2, -pusher_limit, pusher_limit)
        # a pusher spawned on a cube is moved out to a ring around it, in the same direction
        clearance = cfg.cube_half_size * 2**0.5 + cfg.pusher_radius + 0.05
        for k in range(cubes.shape[1]):
            away = pusher - cubes[:, k]
            too_close = away.norm(dim=-1, keepdim=True) < clearance
            direction = away / away.norm(dim=-1, keepdim=True).clamp(min=1e-6)
            pusher = torch.where(too_close, (cubes[:, k] + clearance * direction).clamp(-pusher_limit, pusher_limit), pusher)

        self.cubes[env_ids] = cubes
        self.goal_pos[env_ids] = goal
        self.pusher_pos[env_ids] = pusher
        self.pusher_vel[env_ids] = 0.0
        self.elapsed[env_ids] = 0

    def _spawn_around(self, centre: torch.Tensor, towards: torch.Tensor, dists: Tuple[float, float], angles: Tuple[float, float]) -> torch.Tensor:
        """Points ``[n, 2]`` at ``dists`` (min, max) from ``centre`` ``[n, 2]``, turned ``angles``
        (min, max degrees, to either side at random) from the direction of ``towards`` ``[n, 2]``."""
        n = centre.shape[0]
        direction = towards - centre
        turn = self._uniform(n, 1, math.radians(angles[0]), math.radians(angles[1]))
        side = torch.where(self._uniform(n, 1, 0.0, 1.0) < 0.5, -1.0, 1.0)
        angle = torch.atan2(direction[:, 1:], direction[:, :1]) + side * turn
        dist = self._uniform(n, 1, *dists)
        return centre + dist * torch.cat([angle.cos(), angle.sin()], dim=-1)

    def _spawn_other_cubes(self, cube: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """Centres ``[n, C - 1, 2]`` of the cubes after cube 0, given its centre and the goal's (``[n, 2]``)."""
        return cube.new_zeros(cube.shape[0], 0, 2)

    def state_dict(self) -> Dict[str, torch.Tensor]:
        """Generator and simulation state (every cube included), so a resumed run continues the same episodes."""
        return {"generator": self.generator.get_state(), **{key: getattr(self, key).clone() for key in self.state_keys}}

    def load_state_dict(self, state: Dict[str, torch.Tensor]) -> None:
        for key in self.state_keys:
            if key not in state:
                raise ValueError(f"{self.registry_name} state lacks '{key}' (expected keys: generator, {', '.join(self.state_keys)})")
            if tuple(state[key].shape) != tuple(getattr(self, key).shape):
                raise ValueError(f"{self.registry_name} state '{key}' has shape {list(state[key].shape)}, expected {list(getattr(self, key).shape)} (another env or num_envs?)")
        self.generator.set_state(state["generator"].cpu())
        for key in self.state_keys:
            getattr(self, key).copy_(state[key])

    # ---------------------------------------------------------------- dynamics

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

    def stage(self, cube_goal_dist: torch.Tensor) -> torch.Tensor:
        """Task stage (long ``[N]``, index into ``stage_names``) from the cube's distance to the goal centre."""
        radius = self.cfg.goal_radius
        return (cube_goal_dist < radius).long() + (cube_goal_dist < self.cfg.partial_radius_scale * radius).long()

    def _metrics(self, cube_goal_dist: torch.Tensor, reach_dist: torch.Tensor) -> Dict[str, torch.Tensor]:
        return {"cube_goal_dist": cube_goal_dist, "reach_dist": reach_dist}

    def step(self, actions: torch.Tensor, render: RenderRequest = "never") -> Tuple[Obs, torch.Tensor, torch.Tensor, torch.Tensor, Dict[str, Any]]:
        if render not in RENDER_REQUESTS:
            raise ValueError(f"render must be one of {RENDER_REQUESTS}, got {render!r}")
        start = self.pusher_pos
        self.pusher_pos, self.cubes = simulate(start, self.cubes, actions.to(self.device, torch.float32), self.cfg)
        self.pusher_vel = (self.pusher_pos - start) / self.cfg.max_speed  # in action units, ~[-1, 1]
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
            "stage": self.stage(cube_goal_dist),
            "rewards": rewards,
            "metrics": self._metrics(cube_goal_dist, reach_dist),
        }
        if render == "every_step":
            info["frames"] = Frames(torch.arange(self.num_envs, device=self.device), {self.cfg.camera_key: images}, self._robot_state())
        elif render == "episode_end":
            final_images = images[done_ids] if images is not None else self._render_state(done_ids)
            info["frames"] = Frames(done_ids, {self.cfg.camera_key: final_images}, self._robot_state()[done_ids])

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
        pusher, cube, goal = self.pusher_pos, self.cube_pos, self.goal_pos
        parts = [pusher, self.pusher_vel, cube, goal, cube - pusher, goal - cube]
        for k in range(1, self.cubes.shape[1]):
            other = self.cubes[:, k]
            parts += [other, other - pusher, goal - other]
        state = torch.cat(parts + self._extra_state(), dim=-1)
        return state if self.cfg.obs_mode == "state" else {"state": state, "rgb": images}

    def _robot_state(self) -> torch.Tensor:
        return torch.cat([self.pusher_pos, self.pusher_vel], dim=-1)

    def _render_state(self, env_ids: Optional[torch.Tensor]) -> torch.Tensor:
        """uint8 ``[K, H, W, 3]`` top-down images of the given envs (all when None)."""
        select = (lambda t: t) if env_ids is None else (lambda t: t[env_ids])
        cubes, goal = select(self.cubes), select(self.goal_pos)
        goal_reached = (cubes[:, 0] - goal).norm(dim=-1) < self.cfg.goal_radius
        return self.renderer.render(select(self.pusher_pos), cubes, goal, goal_reached, **self._render_extras(select))

    def _extra_state(self) -> List[torch.Tensor]:
        """State parts (``[N, d]`` each, ``extra_state_dim`` in all) a subclass appends to the observation."""
        return []

    def _render_extras(self, select: Callable[[torch.Tensor], torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Further keyword arguments of ``TopDownRenderer.render`` (tensors passed through ``select``)."""
        return {}

    def render_frames(self) -> Frames:
        return Frames(torch.arange(self.num_envs, device=self.device), {self.cfg.camera_key: self._render_state(None)}, self._robot_state())

    def describe(self) -> Dict[str, Any]:
        return {
            "env_id": self.registry_name,
            "camera_keys": list(self.camera_keys),
            "image_size": [self.cfg.image_size, self.cfg.image_size],
            "obs_mode": self.cfg.obs_mode,
            "control_mode": "pusher_velocity",
            "show_goal": self.cfg.show_goal,
            "highlight_success": self.cfg.highlight_success,
            "episode_length": self.cfg.episode_length,
            "robot_state_dim": self.robot_state_dim,
        }
