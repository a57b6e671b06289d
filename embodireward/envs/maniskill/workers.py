"""CPU simulation with one ManiSkill env per worker process (gymnasium's AsyncVectorEnv)."""
from __future__ import annotations

import functools
import multiprocessing
import signal
from typing import Any, Dict, Optional

import gymnasium as gym
import numpy as np
import torch

from embodireward.envs.base import Obs, RenderRequest
from embodireward.envs.maniskill.config import ManiSkillConfig
from embodireward.envs.maniskill.core import StepResult, _Core, map_obs

class _WorkerEnv(gym.Env):
    """A CPU-simulated ManiSkill env (a :class:`_Core` of one env) inside an AsyncVectorEnv worker.

    Unbatched numpy out. The core auto-resets, so the vector env runs with autoreset disabled;
    ``info`` carries ``metrics``, ``success``, ``terminal_obs`` (only when the episode ended) and
    ``frame`` and ``robot_state`` (only when rendered, as ``render_request`` asked; set from the
    main process).
    """

    def __init__(self, cfg: ManiSkillConfig):
        if multiprocessing.parent_process() is not None:
            torch.set_num_threads(1)  # one env per process: intra-op threads only oversubscribe
            # Ctrl-C reaches the whole process group: the main process stops the run and closes the
            # workers; a worker's own KeyboardInterrupt would only print tracebacks
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        self.core = _Core(cfg, "cpu", 1)
        self.observation_space = self.core.single_observation_space
        self.action_space = self.core.single_action_space
        self.robot_state_dim = self.core.robot_state_dim
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
            info["robot_state"] = s.frame_robot_state[0].cpu().numpy()
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
        context.set_forkserver_preload(["embodireward.envs.maniskill.workers", "mani_skill.envs"])
        # AsyncVectorEnv also builds (and closes) one env here to read the spaces; under obs_mode
        # rgb that env renders once, which costs a lavapipe warm-up (~10 CPU s) on machines without a GPU
        self.vec = gym.vector.AsyncVectorEnv(
            [functools.partial(_WorkerEnv, cfg)] * cfg.num_envs, context="forkserver", autoreset_mode=gym.vector.AutoresetMode.DISABLED
        )
        self.num_envs = cfg.num_envs
        self.single_action_space = self.vec.single_action_space
        self.single_observation_space = self.vec.single_observation_space
        self.robot_state_dim = int(self.vec.get_attr("robot_state_dim")[0])
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
        frame_ids = frames = frame_robot_state = None
        if render != "never":
            frame_ids = torch.arange(self.num_envs) if render == "every_step" else torch.from_numpy(np.flatnonzero(done))
            if len(frame_ids):
                assert info["_frame"][frame_ids.numpy()].all(), "a worker did not render the requested frame"
                frames = torch.from_numpy(info["frame"][frame_ids.numpy()])
                frame_robot_state = torch.from_numpy(info["robot_state"][frame_ids.numpy()]).float()
        metrics = {k: torch.from_numpy(v).float() for k, v in info["metrics"].items() if not k.startswith("_")}
        success = torch.from_numpy(info["success"]) if "success" in info else None
        return StepResult(obs, torch.from_numpy(reward).float(), torch.from_numpy(terminated), torch.from_numpy(truncated), final_obs, metrics, success, frame_ids, frames, frame_robot_state)

    def render(self, env_ids: torch.Tensor) -> torch.Tensor:
        images = np.stack(self.vec.call("render_camera"))
        return torch.from_numpy(images[env_ids.numpy()])

    def close(self) -> None:
        self.vec.close()
