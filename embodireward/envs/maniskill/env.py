"""The registered ``maniskill`` :class:`VecEnv`: GPU-batched or CPU worker simulation behind one contract."""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import torch

from embodireward.envs.base import RENDER_REQUESTS, Frames, Obs, RenderRequest, VecEnv
from embodireward.envs.maniskill.config import ManiSkillConfig, check_assets
from embodireward.envs.maniskill.core import _Core, map_obs
from embodireward.envs.maniskill.workers import _Workers
from embodireward.registry import register_env

@register_env("maniskill")
class ManiSkillVecEnv(VecEnv):
    """Any ManiSkill3 task; GPU-batched or CPU worker processes, frames from a sensor camera."""

    Config = ManiSkillConfig

    def __init__(self, cfg: ManiSkillConfig, device: torch.device, seed: int = 0):
        from embodireward.envs.vulkan import require_vulkan

        require_vulkan()  # before mani_skill creates a renderer or workers start
        check_assets(cfg.env_id)
        if cfg.sim_backend == "gpu" and not torch.cuda.is_available():
            raise RuntimeError("sim_backend 'gpu' needs CUDA, which torch cannot see; use 'cpu' or 'auto'")
        self.sim_backend = "gpu" if cfg.sim_backend == "gpu" or (cfg.sim_backend == "auto" and torch.cuda.is_available()) else "cpu"
        self.cfg = cfg
        self.num_envs = cfg.num_envs
        self.device = torch.device(device)
        self.seed = seed
        self._seeded = False
        self.camera_keys = (cfg.camera.key,)
        if self.sim_backend == "gpu" or cfg.num_envs == 1:
            self._sim = _Core(cfg, self.sim_backend, cfg.num_envs)
        else:
            self._sim = _Workers(cfg)
        self.single_action_space = self._sim.single_action_space
        self.single_observation_space = self._sim.single_observation_space
        self.robot_state_dim = self._sim.robot_state_dim
        self._action_low = torch.as_tensor(self.single_action_space.low)
        self._action_high = torch.as_tensor(self.single_action_space.high)
        from mani_skill.utils.registration import REGISTERED_ENVS

        self.max_episode_steps = int(cfg.max_episode_steps or REGISTERED_ENVS[cfg.env_id].max_episode_steps or 0)

    def _to_device(self, x: Any) -> Any:
        return map_obs(x, lambda v: v.to(self.device))

    def reset(self, seed: Optional[int] = None) -> Tuple[Obs, Dict[str, Any]]:
        if seed is None and not self._seeded:
            seed = self.seed  # the first reset is seeded by the constructor's seed
        self._seeded = True
        return self._to_device(self._sim.reset(seed)), {}

    def step(self, actions: torch.Tensor, render: RenderRequest = "never") -> Tuple[Obs, torch.Tensor, torch.Tensor, torch.Tensor, Dict[str, Any]]:
        if render not in RENDER_REQUESTS:
            raise ValueError(f"render must be one of {RENDER_REQUESTS}, got {render!r}")
        actions = actions.detach().float().cpu().clamp(self._action_low, self._action_high)
        if self.sim_backend == "gpu":
            actions = actions.to(self._sim.base.device)
        s = self._sim.step(actions, render)
        info: Dict[str, Any] = {"final_obs": self._to_device(s.final_obs), "rewards": {}, "metrics": self._to_device(s.metrics)}
        if s.success is not None:
            info["success"] = s.success.to(self.device)
        if render != "never":
            images = s.frames if s.frames is not None else torch.zeros((0, self.cfg.camera.height, self.cfg.camera.width, 3), dtype=torch.uint8)
            robot_state = s.frame_robot_state if s.frame_robot_state is not None else torch.zeros((0, self.robot_state_dim))
            info["frames"] = Frames(s.frame_ids.to(self.device), {self.cfg.camera.key: images.to(self.device)}, robot_state.to(self.device))
        return self._to_device(s.obs), s.reward.to(self.device), s.terminated.to(self.device), s.truncated.to(self.device), info

    def render_frames(self) -> Frames:
        env_ids = torch.arange(self.num_envs)
        images = self._sim.render(env_ids)
        return Frames(env_ids.to(self.device), {self.cfg.camera.key: images.to(self.device)})

    def describe(self) -> Dict[str, Any]:
        return {
            "env_id": self.cfg.env_id,
            "camera_keys": list(self.camera_keys),
            "image_size": [self.cfg.camera.height, self.cfg.camera.width],
            "obs_mode": self.cfg.obs_mode,
            "control_mode": self.cfg.control_mode,
            "show_goal": self.cfg.show_goal,
            "sim_backend": self.sim_backend,
            "episode_length": self.max_episode_steps,
            "robot_state_dim": self.robot_state_dim,
        }

    def close(self) -> None:
        self._sim.close()
