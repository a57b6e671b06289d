"""Any plain gymnasium env id as a :class:`VecEnv`, vectorised by gymnasium itself.

The vector env runs in ``AutoresetMode.SAME_STEP``: a finished sub-env is reset inside the same
``step`` call, and gymnasium hands back what it ended in as ``info["final_obs"]`` (an object
array, filled where ``info["_final_obs"]``) and ``info["final_info"]`` (the last step's info, as a
batched dict with ``_key`` masks). Frames have the same problem, the terminal state is gone by the
time ``step`` returns, so :class:`FrameOnRequest` renders inside each sub-env, before the reset.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Dict, Literal, Optional, Tuple

import gymnasium as gym
import numpy as np
import torch

from embodireward.config import ConfigError, config_error
from embodireward.envs.base import RENDER_REQUESTS, Frames, Obs, RenderRequest, VecEnv
from embodireward.registry import register_env

CAMERA_KEY = "render"
SUCCESS_INFO_KEYS = ("success", "is_success")


@dataclass
class GymnasiumEnvConfig:
    env_id: str
    num_envs: int = 8
    vectorization: Literal["sync", "async"] = "sync"
    env_kwargs: Dict[str, Any] = field(default_factory=dict)  # passed to gym.make
    render: bool = True  # create the envs with render_mode="rgb_array" so frames can be requested
    # info key holding the task's success (e.g. "is_success"); null: looked up as "success" /
    # "is_success" for logging, but the env does not promise one (data collection needs it)
    success_key: Optional[str] = None

    def validate(self, path: str) -> None:
        if self.num_envs < 1:
            raise config_error(path, "num_envs", f"must be >= 1, got {self.num_envs}")
        if "render_mode" in self.env_kwargs:
            raise config_error(path, "env_kwargs.render_mode", "set by the wrapper; use 'render' instead")
        try:
            gym.spec(self.env_id)
        except gym.error.Error as exc:
            raise config_error(path, "env_id", str(exc)) from None


class FrameOnRequest(gym.Wrapper):
    """Puts ``env.render()`` into ``info["frame"]`` after a step, when ``render_request`` asks."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.render_request: RenderRequest = "never"

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        if self.render_request == "every_step" or (self.render_request == "episode_end" and (terminated or truncated)):
            info = {**info, "frame": self.env.render()}
        return obs, reward, terminated, truncated, info


def make_sub_env(env_id: str, render_mode: Optional[str], env_kwargs: Dict[str, Any]) -> gym.Env:
    return FrameOnRequest(gym.make(env_id, render_mode=render_mode, **env_kwargs))


def masked(info: Dict[str, Any], key: str) -> Tuple[Optional[np.ndarray], np.ndarray]:
    """A batched gymnasium info entry and its ``_key`` mask (None and an empty mask when absent)."""
    if key not in info:
        return None, np.zeros(0, dtype=bool)
    return info[key], info[f"_{key}"]


@register_env("gymnasium")
class GymnasiumVecEnv(VecEnv):
    """Wraps a gymnasium env id (Box actions) in gymnasium's Sync/AsyncVectorEnv."""

    Config = GymnasiumEnvConfig

    def __init__(self, cfg: GymnasiumEnvConfig, device: torch.device, seed: int = 0):
        self.cfg = cfg
        self.num_envs = cfg.num_envs
        self.device = torch.device(device)
        self.seed = seed
        self._seeded = False
        self.camera_keys = (CAMERA_KEY,) if cfg.render else ()
        self.has_success = cfg.success_key is not None
        self._success_keys = (cfg.success_key,) if cfg.success_key else SUCCESS_INFO_KEYS
        make = functools.partial(make_sub_env, cfg.env_id, "rgb_array" if cfg.render else None, cfg.env_kwargs)
        vector_cls = gym.vector.SyncVectorEnv if cfg.vectorization == "sync" else gym.vector.AsyncVectorEnv
        self.vec = vector_cls([make] * cfg.num_envs, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
        self._render_request: RenderRequest = "never"
        self._frame_shape: Tuple[int, ...] = (0, 0, 3)  # learnt from the first frame

        action_space, obs_space = self.vec.single_action_space, self.vec.single_observation_space
        if not isinstance(action_space, gym.spaces.Box):
            self.vec.close()
            raise ConfigError("env.cfg.env_id", f"gymnasium env '{cfg.env_id}' has action space {action_space}; only Box (continuous) action spaces are supported")
        if not isinstance(obs_space, gym.spaces.Box):
            self.vec.close()
            raise ConfigError("env.cfg.env_id", f"gymnasium env '{cfg.env_id}' has observation space {obs_space}; only Box observation spaces are supported")
        self.single_action_space = action_space
        self.single_observation_space = gym.spaces.Box(obs_space.low.astype(np.float32), obs_space.high.astype(np.float32), dtype=np.float32)
        # 0 when the env has no time limit
        self.max_episode_steps = int(cfg.env_kwargs.get("max_episode_steps") or gym.spec(cfg.env_id).max_episode_steps or 0)

    def _tensor(self, array: Any, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.as_tensor(np.asarray(array), device=self.device).to(dtype)

    def reset(self, seed: Optional[int] = None) -> Tuple[Obs, Dict[str, Any]]:
        if seed is None and not self._seeded:
            seed = self.seed  # the first reset is seeded by the constructor's seed
        self._seeded = True
        obs, _ = self.vec.reset(seed=seed)
        return self._tensor(obs), {}

    def step(self, actions: torch.Tensor, render: RenderRequest = "never") -> Tuple[Obs, torch.Tensor, torch.Tensor, torch.Tensor, Dict[str, Any]]:
        if render not in RENDER_REQUESTS:
            raise ValueError(f"render must be one of {RENDER_REQUESTS}, got {render!r}")
        if render != "never" and not self.camera_keys:
            raise RuntimeError(f"frames requested from gymnasium env '{self.cfg.env_id}' created with render=false")
        if render != self._render_request:
            self.vec.set_attr("render_request", render)
            self._render_request = render

        space = self.single_action_space
        actions = np.clip(actions.detach().cpu().numpy(), space.low, space.high).astype(space.dtype)
        obs, reward, terminated, truncated, raw_info = self.vec.step(actions)
        final_info = raw_info.get("final_info", {})

        obs = self._tensor(obs)
        final_obs = obs
        final_obs_array, finished = masked(raw_info, "final_obs")
        if finished.any():
            final_obs = obs.clone()
            final_obs[torch.as_tensor(finished)] = self._tensor(np.stack(final_obs_array[finished]))

        info: Dict[str, Any] = {"final_obs": final_obs, "rewards": {}, "metrics": {}}
        success = self._success(raw_info, final_info)
        if success is not None:
            info["success"] = success
        if render != "never":
            info["frames"] = self._frames(render, raw_info, final_info, terminated | truncated)
        return obs, self._tensor(reward), self._tensor(terminated, torch.bool), self._tensor(truncated, torch.bool), info

    def _latest(self, raw_info: Dict[str, Any], final_info: Dict[str, Any], key: str) -> Tuple[Optional[np.ndarray], np.ndarray]:
        """Per-env value of ``key`` from the step's own info (``final_info`` for reset envs) and where present."""
        values, present = masked(raw_info, key)
        final_values, final_present = masked(final_info, key)
        if final_values is None:
            return values, present
        if values is None:
            return final_values, final_present
        merged = np.where(final_present.reshape(-1, *[1] * (values.ndim - 1)), final_values, values)
        return merged, present | final_present

    def _success(self, raw_info: Dict[str, Any], final_info: Dict[str, Any]) -> Optional[torch.Tensor]:
        for key in self._success_keys:
            values, present = self._latest(raw_info, final_info, key)
            if values is not None:
                return self._tensor(values.astype(bool) & present, torch.bool)
        return None

    def _frames(self, render: RenderRequest, raw_info: Dict[str, Any], final_info: Dict[str, Any], done: np.ndarray) -> Frames:
        images, rendered = self._latest(raw_info, final_info, "frame")
        env_ids = np.flatnonzero(done) if render == "episode_end" else np.arange(self.num_envs)
        if images is None:  # nothing finished this step under "episode_end"
            images, rendered = np.zeros((self.num_envs, *self._frame_shape), dtype=np.uint8), done
        self._frame_shape = images.shape[1:]
        assert rendered[env_ids].all(), "a sub-env did not render the requested frame"
        return Frames(self._tensor(env_ids, torch.long), {CAMERA_KEY: self._tensor(images[env_ids], torch.uint8)})

    def render_frames(self) -> Frames:
        if not self.camera_keys:
            raise RuntimeError(f"gymnasium env '{self.cfg.env_id}' was created with render=false")
        images = np.stack(self.vec.render())
        return Frames(torch.arange(self.num_envs, device=self.device), {CAMERA_KEY: self._tensor(images, torch.uint8)})

    def describe(self) -> Dict[str, Any]:
        return {
            "env_id": "gymnasium",
            "gym_env_id": self.cfg.env_id,
            "env_kwargs": dict(self.cfg.env_kwargs),
            "camera_keys": list(self.camera_keys),
            "obs_mode": "state",
            "control_mode": "native",
            "episode_length": self.max_episode_steps,
        }

    def close(self) -> None:
        self.vec.close()
