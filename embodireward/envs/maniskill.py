"""ManiSkill3 tasks (``PickCube-v1``, ``PushCube-v1``, ...) as a :class:`VecEnv`.

JSON (``env`` section; ``env_id`` is required, every other key has the default shown)::

    {"id": "maniskill", "cfg": {
        "env_id": "PickCube-v1",
        "num_envs": 16,
        "obs_mode": "state",                  # "state" | "rgb", see below
        "control_mode": "pd_joint_delta_pos",
        "reward_mode": "normalized_dense",    # ManiSkill's: sparse | dense | normalized_dense | none
        "sim_backend": "auto",                # "auto" (gpu when CUDA is available) | "gpu" | "cpu"
        "camera": {"key": "base_camera", "width": 128, "height": 128},
        "show_goal": true,                    # show goal markers the task hides from cameras (PickCube's goal_site)
        "max_episode_steps": null,            # null: the task's registered limit (50 for PickCube)
        "env_kwargs": {}}}                    # extra ManiSkill gym.make kwargs

Observations: ``state`` gives float ``[N, D]``; ``rgb`` gives ``{"rgb": uint8 [N, H, W, 3],
"state": float [N, D]}``, the image of ``camera`` plus ManiSkill's agent/extra state flattened.
Frames (``info["frames"]``, ``render_frames()``) come from ``camera``: rendered only when a step
asks for them under ``state``, taken from the observation under ``rgb``. ``show_goal`` applies to
both, so a reward model and an image policy see the same scene. ``info["success"]`` is ManiSkill's
bool success; ``info["metrics"]`` holds its other per-env info values (success, fail, is_grasped,
is_obj_placed, ...) as floats.

Backends: GPU simulation runs all envs batched in one ManiSkill env in this process. CPU
simulation runs one env in-process when ``num_envs`` is 1, else one env per worker process
(gymnasium's AsyncVectorEnv, as ManiSkill recommends for CPU). Both run :class:`_Core`, which
steps, renders the requested frames and auto-resets finished envs, so terminal frames are
rendered before the reset wherever the simulation lives. Time limits come out as truncation.

Worker processes start through multiprocessing's forkserver (forking would copy this process'
Vulkan/CUDA state), so a script that builds a CPU env with ``num_envs > 1`` needs the usual
``if __name__ == "__main__":`` guard. Rendering needs a Vulkan device (see
:mod:`embodireward.envs.vulkan`); mani_skill and SAPIEN are imported only when this env is used.
"""
from __future__ import annotations

import functools
import multiprocessing
import os
from dataclasses import dataclass, field
from typing import Any, Dict, Literal, Optional, Tuple

import gymnasium as gym
import numpy as np
import torch

from embodireward.config import ConfigError, config_error, join_path
from embodireward.envs.base import RENDER_REQUESTS, Frames, Obs, RenderRequest, VecEnv
from embodireward.registry import closest_name, register_env

# gym.make kwargs that the config sets; env_kwargs must not repeat them
RESERVED_KWARGS = ("num_envs", "obs_mode", "control_mode", "reward_mode", "sim_backend", "render_backend", "sensor_configs", "max_episode_steps")
NOT_METRICS = ("elapsed_steps",)


@dataclass
class CameraConfig:
    key: str = "base_camera"  # a sensor camera of the task
    width: int = 128
    height: int = 128


@dataclass
class ManiSkillConfig:
    env_id: str
    num_envs: int = 16
    obs_mode: Literal["state", "rgb"] = "state"
    control_mode: str = "pd_joint_delta_pos"
    reward_mode: Literal["sparse", "dense", "normalized_dense", "none"] = "normalized_dense"
    sim_backend: Literal["auto", "gpu", "cpu"] = "auto"
    camera: CameraConfig = field(default_factory=CameraConfig)
    show_goal: bool = True
    max_episode_steps: Optional[int] = None
    env_kwargs: Dict[str, Any] = field(default_factory=dict)

    def validate(self, path: str) -> None:
        if self.num_envs < 1:
            raise config_error(path, "num_envs", f"must be >= 1, got {self.num_envs}")
        if self.max_episode_steps is not None and self.max_episode_steps < 1:
            raise config_error(path, "max_episode_steps", f"must be >= 1 or null, got {self.max_episode_steps}")
        if min(self.camera.width, self.camera.height) < 1:
            raise config_error(path, "camera", f"width and height must be >= 1, got {self.camera.width}x{self.camera.height}")
        for name in self.env_kwargs:
            if name in RESERVED_KWARGS:
                raise config_error(path, f"env_kwargs.{name}", "set by the adapter's own config keys")
        registered = registered_envs(join_path(path, "env_id"))
        if self.env_id not in registered:
            hint = closest_name(self.env_id, registered)
            raise config_error(path, "env_id", f"unknown ManiSkill env {self.env_id!r}" + (f" (did you mean {hint!r}?)" if hint else ""))


def registered_envs(path: str) -> Dict[str, Any]:
    """ManiSkill's env specs by id (importing mani_skill registers its tasks)."""
    from embodireward.envs.vulkan import select_lavapipe_without_gpu

    select_lavapipe_without_gpu()  # before SAPIEN is imported
    try:
        import mani_skill.envs  # noqa: F401
        from mani_skill.utils.registration import REGISTERED_ENVS
    except ImportError as exc:
        raise ConfigError(path, f"needs ManiSkill3: pip install mani-skill ({exc})") from None
    return REGISTERED_ENVS


def check_assets(env_id: str) -> None:
    """Fail clearly instead of ManiSkill's interactive download prompt (which hangs CI and workers)."""
    from mani_skill.utils import assets
    from mani_skill.utils.registration import REGISTERED_ENVS

    if os.environ.get("MS_SKIP_ASSET_DOWNLOAD_PROMPT") == "1":  # ManiSkill then downloads without asking
        return
    sources = [
        source
        for asset_id in REGISTERED_ENVS[env_id].asset_download_ids or []
        for source in ([asset_id] if asset_id in assets.DATA_SOURCES else assets.expand_data_group_into_individual_data_source_ids(asset_id))
    ]
    missing = [source for source in sources if not assets.is_data_source_downloaded(source)]
    if missing:
        raise RuntimeError(
            f"ManiSkill env {env_id} needs assets that are not downloaded ({', '.join(missing)}): run "
            f"`python -m mani_skill.utils.download_asset {env_id}` or set MS_SKIP_ASSET_DOWNLOAD_PROMPT=1"
        )


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
        frame_ids = frames = None
        if render != "never":
            frame_ids = torch.arange(self.num_envs, device=done.device) if render == "every_step" else done.nonzero().flatten()
            if len(frame_ids):
                # under rgb the observation is the frame: no second render
                frames = obs["rgb"][frame_ids] if self.cfg.obs_mode == "rgb" else self.render(frame_ids)
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
        return StepResult(obs, reward.float(), terminated.bool(), truncated.bool(), final_obs, metrics, success, frame_ids, frames)

    def close(self) -> None:
        self.env.close()


class _WorkerEnv(gym.Env):
    """A CPU-simulated ManiSkill env (a :class:`_Core` of one env) inside an AsyncVectorEnv worker.

    Unbatched numpy out. The core auto-resets, so the vector env runs with autoreset disabled;
    ``info`` carries ``metrics``, ``success``, ``terminal_obs`` (only when the episode ended) and
    ``frame`` (only when rendered, as ``render_request`` asked; set from the main process).
    """

    def __init__(self, cfg: ManiSkillConfig):
        if multiprocessing.parent_process() is not None:
            torch.set_num_threads(1)  # one env per process: intra-op threads only oversubscribe
        self.core = _Core(cfg, "cpu", 1)
        self.observation_space = self.core.single_observation_space
        self.action_space = self.core.single_action_space
        self.render_request: RenderRequest = "never"

    @staticmethod
    def _unbatch(x: Any) -> Any:
        return map_obs(x, lambda v: v[0].cpu().numpy())

    def reset(self, *, seed: Optional[int] = None, options: Optional[dict] = None):
        return self._unbatch(self.core.reset(seed)), {}

    def step(self, action: np.ndarray):
        s = self.core.step(torch.as_tensor(action)[None], self.render_request)
        info: Dict[str, Any] = {"metrics": {k: v.item() for k, v in s.metrics.items()}}
        if s.success is not None:
            info["success"] = bool(s.success.item())
        if s.terminated.item() or s.truncated.item():
            info["terminal_obs"] = self._unbatch(s.final_obs)
        if s.frames is not None:
            info["frame"] = s.frames[0].cpu().numpy()
        return self._unbatch(s.obs), float(s.reward.item()), bool(s.terminated.item()), bool(s.truncated.item()), info

    def render_camera(self) -> np.ndarray:
        return self.core.render(torch.zeros(1, dtype=torch.long))[0].cpu().numpy()

    def close(self) -> None:
        self.core.close()


class _Workers:
    """CPU simulation, one env per worker process, with the :class:`_Core` interface."""

    def __init__(self, cfg: ManiSkillConfig):
        # forkserver: workers do not inherit this process' threads, CUDA or Vulkan state, and the
        # preloaded imports are paid once in the server instead of in every worker
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["embodireward.envs.maniskill", "mani_skill.envs"])
        # AsyncVectorEnv also builds (and closes) one env here to read the spaces; under obs_mode
        # rgb that env renders once, which costs a lavapipe warm-up (~10 CPU s) on machines without a GPU
        self.vec = gym.vector.AsyncVectorEnv(
            [functools.partial(_WorkerEnv, cfg)] * cfg.num_envs, context="forkserver", autoreset_mode=gym.vector.AutoresetMode.DISABLED
        )
        self.num_envs = cfg.num_envs
        self.single_action_space = self.vec.single_action_space
        self.single_observation_space = self.vec.single_observation_space
        self._render_request: RenderRequest = "never"

    @staticmethod
    def _tensor(x: Any) -> Any:
        return map_obs(x, torch.from_numpy)

    def reset(self, seed: Optional[int]) -> Obs:
        obs, _ = self.vec.reset(seed=seed)
        return self._tensor(obs)

    def step(self, actions: torch.Tensor, render: RenderRequest) -> StepResult:
        if render != self._render_request:  # one round trip per change of request, not per step
            self.vec.set_attr("render_request", render)
            self._render_request = render
        obs, reward, terminated, truncated, info = self.vec.step(actions.numpy())
        obs = self._tensor(obs)
        done = terminated | truncated
        final_obs = obs
        if done.any():
            rows = torch.from_numpy(done)
            final_obs = map_obs(obs, torch.clone)
            terminal = self._tensor(info["terminal_obs"])
            if isinstance(final_obs, dict):
                for k in final_obs:
                    final_obs[k][rows] = terminal[k][rows]
            else:
                final_obs[rows] = terminal[rows]
        frame_ids = frames = None
        if render != "never":
            frame_ids = torch.arange(self.num_envs) if render == "every_step" else torch.from_numpy(np.flatnonzero(done))
            if len(frame_ids):
                assert info["_frame"][frame_ids.numpy()].all(), "a worker did not render the requested frame"
                frames = torch.from_numpy(info["frame"][frame_ids.numpy()])
        metrics = {k: torch.from_numpy(v).float() for k, v in info["metrics"].items() if not k.startswith("_")}
        success = torch.from_numpy(info["success"]) if "success" in info else None
        return StepResult(obs, torch.from_numpy(reward).float(), torch.from_numpy(terminated), torch.from_numpy(truncated), final_obs, metrics, success, frame_ids, frames)

    def render(self, env_ids: torch.Tensor) -> torch.Tensor:
        images = np.stack(self.vec.call("render_camera"))
        return torch.from_numpy(images[env_ids.numpy()])

    def close(self) -> None:
        self.vec.close()


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
            info["frames"] = Frames(s.frame_ids.to(self.device), {self.cfg.camera.key: images.to(self.device)})
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
        }

    def close(self) -> None:
        self._sim.close()
