"""The training loop: rollout -> update -> log -> evaluate -> checkpoint (rsl_rl's OnPolicyRunner)."""
from __future__ import annotations

import contextlib
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
import torch
from tqdm import tqdm

from embodireward import builder
from embodireward.config import TrainConfig, to_dict
from embodireward.envs.base import merge_render_requests
from embodireward.trainer.callbacks import CallbackList, StepData
from embodireward.trainer.checkpoint import (CheckpointError, load_checkpoint, load_policy_weights, resolve_checkpoint,
                                             restore_rng_state, rng_state, save_checkpoint)
from embodireward.trainer.episode_stats import EpisodeStats
from embodireward.trainer.evaluator import evaluate
from embodireward.trainer.logger import Logger
from embodireward.utils import distributed as dist_utils
from embodireward.utils.io import atomic_write_json
from embodireward.utils.seed import seed_everything


@contextlib.contextmanager
def torch_threads(count: int):
    """Use ``count`` torch intra-op threads inside the block (0: leave the setting alone)."""
    if not count:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def make_run_dir(config: TrainConfig, resume_checkpoint: Optional[Path]) -> Path:
    """Resume -> the checkpoint's run dir; ``runtime.run_dir`` if given; else ``<output_dir>/<exp_name>_<timestamp>``."""
    runtime = config.runtime
    if resume_checkpoint is not None:
        parent = resume_checkpoint.parent
        return parent.parent if parent.name == "checkpoints" else parent
    if runtime.run_dir:
        return Path(runtime.run_dir)
    stamp = [datetime.now().strftime("%Y%m%d_%H%M%S")]
    if dist_utils.is_distributed():  # every rank must agree on the directory
        torch.distributed.broadcast_object_list(stamp, src=0)
    return Path(runtime.output_dir) / f"{runtime.exp_name}_{stamp[0]}"


class Trainer:
    """Builds everything from a config through the registries and runs the training loop."""

    def __init__(self, config: TrainConfig, resolved_config: Optional[Dict[str, Any]] = None):
        self.config = config
        runtime = config.runtime
        self.rank, self.world_size = dist_utils.rank(), dist_utils.world_size()
        self.is_main = self.rank == 0
        self._progress_bar = None
        if runtime.num_threads:
            torch.set_num_threads(runtime.num_threads)
        self.device = builder.resolve_device(runtime.device)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        seed = runtime.seed + self.rank
        seed_everything(seed)

        # every rank needs the registries (plugins) loaded, not only the rank writing config.json
        resolved_config = resolved_config or builder.validate_config(config)
        resume_path = resolve_checkpoint(runtime.resume) if runtime.resume else None
        self.run_dir = make_run_dir(config, resume_path)
        self.checkpoint_dir = self.run_dir / "checkpoints"
        if self.is_main:
            for sub in ("checkpoints", "logs", "videos"):
                (self.run_dir / sub).mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.run_dir / "config.json", resolved_config)

        self.env = builder.build_env(config, self.device, seed)
        self.eval_env = builder.build_env(config, self.device, seed + 10_000, for_eval=True) if runtime.eval_freq > 0 and self.is_main else None
        self.policy = builder.build_policy(config, self.env.single_observation_space, self.env.single_action_space, self.device)
        self.algo = builder.build_algo(config, self.policy, self.device)
        self.algo.initialize_buffer(runtime.rollout_steps, self.env.num_envs, self.env.single_observation_space, self.env.single_action_space)

        self.reward_hook = None
        if config.reward.use_reward_model:
            from embodireward.rewards.hook import build_reward_hook

            self.reward_hook = build_reward_hook(config.reward, self.env, self.device)

        self.global_step = 0
        self.iteration = 0
        self.best_eval: Optional[tuple] = None
        if resume_path is not None:
            self._restore(resume_path)
        elif runtime.init_from:
            self._init_policy_from(runtime.init_from)

        self.logger = Logger(self.run_dir / "logs", enabled=self.is_main, use_wandb=runtime.use_wandb,
                             wandb_project=runtime.wandb_project_name, run_name=self.run_dir.name,
                             config=resolved_config, purge_step=self.global_step + 1 if resume_path else None)
        self.episode_stats = EpisodeStats(self.env.num_envs, self.device)
        self.callbacks = CallbackList(builder.build_callbacks(config, self))
        self._action_low = torch.as_tensor(self.env.single_action_space.low, device=self.device)
        self._action_high = torch.as_tensor(self.env.single_action_space.high, device=self.device)

    # -- console ------------------------------------------------------------------------------
    def log_info(self, message: str) -> None:
        """Print a line on rank 0 without breaking the progress bar."""
        if self.is_main:
            (self._progress_bar.write if self._progress_bar is not None else print)(message)

    # -- one env step, as the algorithm sees it -----------------------------------------------
    def _step_env(self, actions: torch.Tensor):
        render = merge_render_requests(self.callbacks.frame_request(),
                                       self.reward_hook.frame_request() if self.reward_hook else "never")
        obs = self._last_obs
        next_obs, env_reward, terminated, truncated, info = self.env.step(torch.clamp(actions, self._action_low, self._action_high), render=render)
        frames = info.get("frames")
        success = info.get("success")
        reward = env_reward
        if self.reward_hook is not None:
            reward = self.reward_hook.compute(env_reward, terminated, truncated, frames, success)
        self.global_step += self.env.num_envs * self.world_size
        self.episode_stats.record(reward, env_reward, terminated, truncated, success, info)
        self.callbacks.on_step(self, StepData(self.global_step, obs, actions, next_obs, reward, env_reward,
                                              terminated, truncated, info, frames, success))
        self._last_obs = next_obs
        return next_obs, reward, terminated, truncated, info

    # -- the loop -----------------------------------------------------------------------------
    def train(self) -> Dict[str, float]:
        runtime = self.config.runtime
        obs, _ = self.env.reset(seed=runtime.seed + self.rank + 1_000_003 * self.iteration)
        self._last_obs = obs
        self.callbacks.on_train_start(self)
        # a live bar on a terminal; in a log file, a plain status line every tenth of the run instead
        self._interactive = self.is_main and runtime.progress_bar and sys.stdout.isatty()
        self._progress_bar = tqdm(total=runtime.iterations, initial=self.iteration, disable=not self._interactive,
                                  dynamic_ncols=True, desc=self.run_dir.name, file=sys.stdout)
        last_metrics: Dict[str, float] = {}
        try:
            while self.iteration < runtime.iterations:
                start = time.perf_counter()
                with torch_threads(runtime.rollout_threads):
                    obs = self.algo.collect_rollout(obs, runtime.rollout_steps, self._step_env)
                rollout_time = time.perf_counter() - start
                self.callbacks.on_rollout_end(self)
                update_metrics = self.algo.update(progress=self.iteration / runtime.iterations)
                self.iteration += 1
                self.callbacks.on_update_end(self, update_metrics)
                elapsed = time.perf_counter() - start
                steps = runtime.rollout_steps * self.env.num_envs * self.world_size
                last_metrics = self._log_iteration(update_metrics, steps / elapsed, rollout_time / elapsed)
                if runtime.eval_freq and (self.iteration % runtime.eval_freq == 0 or self.iteration == runtime.iterations):
                    last_metrics.update(self._evaluate())
                self._save_checkpoints()
                self._progress_bar.update(1)
        except KeyboardInterrupt:
            self.log_info(f"interrupted at iteration {self.iteration}; saving {self.checkpoint_dir / 'latest.pt'}")
            self._save("latest.pt")
            raise
        finally:
            self._progress_bar.close()
            self._progress_bar = None
        self.callbacks.on_train_end(self)
        self.logger.close()
        dist_utils.barrier()  # on every rank, returning means rank 0's final checkpoint is on disk
        return last_metrics

    def _log_iteration(self, update_metrics: Dict[str, float], sps: float, rollout_share: float) -> Dict[str, float]:
        scalars = {f"losses/{k}": v for k, v in update_metrics.items()}
        scalars.update(self.episode_stats.summary())
        scalars["charts/sps"] = sps
        scalars["charts/rollout_time_share"] = rollout_share
        scalars["charts/iteration"] = self.iteration
        if self.reward_hook is not None:
            scalars.update(self.reward_hook.metrics())
        if self.config.runtime.log_freq and self.iteration % self.config.runtime.log_freq == 0:
            self.logger.add_scalars(scalars, self.global_step)
        postfix = {"sps": f"{sps:.0f}"}
        if "episode/success_once" in scalars:
            postfix["success"] = f"{scalars['episode/success_once']:.2f}"
        if "episode/env_return" in scalars:
            postfix["return"] = f"{scalars['episode/env_return']:.2f}"
        postfix.update(self.callbacks.progress())
        self._progress_bar.set_postfix(postfix, refresh=False)
        runtime = self.config.runtime
        if not self._interactive and runtime.progress_bar and self.iteration % max(1, runtime.iterations // 10) == 0:
            status = " ".join(f"{key}={value}" for key, value in postfix.items())
            self.log_info(f"iteration {self.iteration}/{runtime.iterations} step {self.global_step}: {status}")
        return scalars

    def _evaluate(self) -> Dict[str, float]:
        if self.eval_env is None:
            return {}
        runtime = self.config.runtime
        video_envs = min(runtime.video_episodes, self.eval_env.num_envs) if runtime.record_video else 0
        with torch_threads(runtime.rollout_threads):  # the same small-batch stepping as a rollout
            metrics, frames = evaluate(self.policy, self.eval_env, seed=runtime.seed + 20_000,
                                       episodes=runtime.eval_episodes, video_envs=video_envs)
        self.logger.add_scalars(metrics, self.global_step)
        if frames is not None:
            self._write_video(frames)
        self.callbacks.on_eval_end(self, metrics)
        self.log_info(f"[eval] iteration {self.iteration} step {self.global_step}: " + ", ".join(f"{k[5:]}={v:.3f}" for k, v in metrics.items()))
        score = (metrics.get("eval/success_rate", 0.0), metrics["eval/return"])
        if self.best_eval is None or score > self.best_eval:
            self.best_eval = score
            self._save("best.pt")
        return metrics

    def _write_video(self, frames: np.ndarray) -> None:
        import imageio.v3 as iio

        path = self.run_dir / "videos" / f"eval_{self.global_step:010d}.gif"
        iio.imwrite(path, frames, extension=".gif", duration=100, loop=0)
        self.logger.add_gif("eval/video", frames, self.global_step)

    # -- checkpoints --------------------------------------------------------------------------
    def _save_checkpoints(self) -> None:
        save_freq = self.config.runtime.save_freq
        self._save("latest.pt")
        if save_freq and self.iteration % save_freq == 0:
            self._save(f"iter_{self.iteration:06d}.pt")

    def _save(self, name: str) -> None:
        if not self.is_main:
            return
        path = self.checkpoint_dir / name
        save_checkpoint(path, {
            "policy": self.policy.state_dict(),
            "algorithm": self.algo.state_dict(),
            "global_step": self.global_step,
            "iteration": self.iteration,
            "best_eval": list(self.best_eval) if self.best_eval else None,
            "rng": rng_state(),
            "config": to_dict(self.config),
            "obs_space": repr(self.env.single_observation_space),
            "action_dim": self.env.action_dim,
        })
        self.callbacks.on_checkpoint(self, str(path))

    def _check_action_dim(self, state: Dict[str, Any], source: str) -> None:
        if state.get("action_dim") not in (None, self.env.action_dim):
            raise CheckpointError(f"{source}: checkpoint was trained with action_dim {state['action_dim']}, "
                                  f"but env '{self.config.env.id}' has action_dim {self.env.action_dim}")

    def _restore(self, path: Path) -> None:
        state = load_checkpoint(path)
        self._check_action_dim(state, str(path))
        load_policy_weights(self.policy, state["policy"], str(path))
        self.algo.load_state_dict(state["algorithm"])
        self.global_step = int(state["global_step"])
        self.iteration = int(state["iteration"])
        self.best_eval = tuple(state["best_eval"]) if state.get("best_eval") else None
        if self.is_main:
            restore_rng_state(state["rng"])
        else:  # only rank 0's RNG state is saved: other ranks start fresh streams, not their first ones again
            seed_everything(self.config.runtime.seed + self.rank + 1_000_003 * self.iteration)
        self.log_info(f"resumed from {path} at iteration {self.iteration}, global step {self.global_step}")

    def _init_policy_from(self, path: str) -> None:
        state = load_checkpoint(path)
        self._check_action_dim(state, str(path))
        load_policy_weights(self.policy, state["policy"], str(resolve_checkpoint(path)))
        self.log_info(f"initialised policy weights from {resolve_checkpoint(path)} (trained for {state['global_step']} steps)")
