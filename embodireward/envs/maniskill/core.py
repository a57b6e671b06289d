"""One batched ManiSkill env (in this process or inside a worker): step, requested frames, auto-reset."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Literal, Optional

import gymnasium as gym
import numpy as np
import torch

from embodireward.envs.base import Obs, RenderRequest
from embodireward.envs.maniskill.config import NOT_METRICS, ManiSkillConfig

def map_obs(obs: Any, fn) -> Any:
    return {k: fn(v) for k, v in obs.items()} if isinstance(obs, dict) else fn(obs)


def obs_space(obs: Obs) -> gym.Space:
    """Unbatched space of a batched observation from :meth:`_Core.convert_obs`."""
    if isinstance(obs, dict):
        return gym.spaces.Dict({k: obs_space(v) for k, v in obs.items()})
    if obs.dtype == torch.uint8:
        return gym.spaces.Box(0, 255, tuple(obs.shape[1:]), np.uint8)
    return gym.spaces.Box(-np.inf, np.inf, tuple(obs.shape[1:]), np.float32)


@dataclass
class StepResult:
    """One batched step, torch tensors on the simulation's device."""

    obs: Obs
    reward: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    final_obs: Obs
    metrics: Dict[str, torch.Tensor]
    success: Optional[torch.Tensor]
    frame_ids: Optional[torch.Tensor]  # long [K] when frames were requested
    frames: Optional[torch.Tensor]  # uint8 [K, H, W, 3]
    frame_robot_state: Optional[torch.Tensor] = None  # float [K, robot_state_dim]: qpos, qvel of the rendered state


class _Core:
    """One batched ManiSkill env: step, requested frames, partial auto-reset; torch in and out."""

    def __init__(self, cfg: ManiSkillConfig, sim_backend: Literal["gpu", "cpu"], num_envs: int):
        import mani_skill.envs  # noqa: F401  (registers the tasks with gymnasium)

        self.cfg = cfg
        kwargs = dict(cfg.env_kwargs)
        if cfg.max_episode_steps is not None:
            kwargs["max_episode_steps"] = cfg.max_episode_steps
        self.env = gym.make(
            cfg.env_id,
            num_envs=num_envs,
            obs_mode=cfg.obs_mode,
            control_mode=cfg.control_mode,
            reward_mode=cfg.reward_mode,
            sim_backend="physx_cuda" if sim_backend == "gpu" else "physx_cpu",
            render_backend="gpu" if torch.cuda.is_available() else "cpu",
            sensor_configs=dict(width=cfg.camera.width, height=cfg.camera.height),
            **kwargs,
        )
        self.base = self.env.unwrapped
        self.num_envs = num_envs
        if cfg.camera.key not in self.base.scene.sensors:
            cameras = ", ".join(self.base.scene.sensors) or "none"
            self.env.close()
            raise ValueError(f"ManiSkill env {cfg.env_id} has no camera {cfg.camera.key!r} (cameras: {cameras})")
        self._reveal_goal()
        self.single_action_space: gym.spaces.Box = self.base.single_action_space
        self.single_observation_space = obs_space(self.convert_obs(self.base._init_raw_obs))
        self.robot_state_dim = int(self.robot_state().shape[-1])

    def _reveal_goal(self) -> None:
        # ManiSkill hides `_hidden_objects` (goal markers) from sensor cameras; emptying the list
        # shows them everywhere. Reconfiguration rebuilds the list, so this runs after resets.
        if self.cfg.show_goal and self.base._hidden_objects:
            for obj in self.base._hidden_objects:
                obj.show_visual()
            self.base._hidden_objects = []

    def convert_obs(self, raw: Any) -> Obs:
        if self.cfg.obs_mode == "state":
            return raw.float()
        from mani_skill.utils.common import flatten_state_dict

        state = flatten_state_dict({"agent": raw["agent"], "extra": raw["extra"]}, use_torch=True)
        return {"rgb": raw["sensor_data"][self.cfg.camera.key]["rgb"], "state": state.float()}

    def reset(self, seed: Optional[int]) -> Obs:
        raw, _ = self.env.reset(seed=seed)
        self._reveal_goal()
        return map_obs(self.convert_obs(raw), torch.clone)

    def robot_state(self) -> torch.Tensor:
        """The robot's joint positions and velocities, float ``[num_envs, 2 * dof]``."""
        robot = self.base.agent.robot
        return torch.cat([robot.get_qpos(), robot.get_qvel()], dim=-1).float()

    def render(self, env_ids: torch.Tensor) -> torch.Tensor:
        """Camera images of the current state of ``env_ids``, uint8 ``[K, H, W, 3]``."""
        if self.cfg.obs_mode == "rgb":
            return self.convert_obs(self.base.get_obs())["rgb"][env_ids]
        for obj in self.base._hidden_objects:  # empty when show_goal
            obj.hide_visual()
        self.base.scene.update_render(update_sensors=True, update_human_render_cameras=False)
        camera = self.base.scene.sensors[self.cfg.camera.key]
        camera.capture()
        rgb = camera.get_obs(rgb=True, depth=False, position=False, segmentation=False)["rgb"]
        return rgb[env_ids.to(rgb.device)]

    def step(self, actions: torch.Tensor, render: RenderRequest) -> StepResult:
        raw, reward, terminated, truncated, info = self.env.step(actions)
        # copies: sensor images may live in buffers that the next render overwrites
        obs = map_obs(self.convert_obs(raw), torch.clone)
        done = terminated | truncated
        frame_ids = frames = frame_robot_state = None
        if render != "never":
            frame_ids = torch.arange(self.num_envs, device=done.device) if render == "every_step" else done.nonzero().flatten()
            if len(frame_ids):
                # under rgb the observation is the frame: no second render
                frames = obs["rgb"][frame_ids] if self.cfg.obs_mode == "rgb" else self.render(frame_ids)
                frame_robot_state = self.robot_state()[frame_ids.to(done.device)]
        metrics = {
            k: v.float()
            for k, v in info.items()
            if k not in NOT_METRICS and isinstance(v, torch.Tensor) and v.shape == (self.num_envs,)
        }
        success = info["success"].bool() if "success" in info else None
        final_obs = obs
        if done.any():
            raw, _ = self.env.reset(options={"env_idx": done.nonzero().flatten()})
            self._reveal_goal()
            obs = map_obs(self.convert_obs(raw), torch.clone)
        return StepResult(obs, reward.float(), terminated.bool(), truncated.bool(), final_obs, metrics, success, frame_ids, frames, frame_robot_state)

    def close(self) -> None:
        self.env.close()
