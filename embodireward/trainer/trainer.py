"""The training loop: rollout -> update -> log -> evaluate -> checkpoint (rsl_rl's OnPolicyRunner).

Start-up checks everything before it writes anything, in this order: config and plugins (done
by ``builder.validate_config``), the resume / init_from checkpoints and, on resume, that the config
is the run's own; then env, policy, algorithm and buffer construction, restoring the checkpoint
into them, the reward model, the callbacks, and that the run directory can be written. Only then
is the run directory created; a start that fails leaves the file system as it found it.
"""
from __future__ import annotations

import contextlib
import sys
import time
from typing import Any, Dict, Optional

import numpy as np
import torch
from tqdm import tqdm

from embodireward import builder
from embodireward.config import TrainConfig
from embodireward.envs.base import merge_render_requests
from embodireward.trainer import run_state
from embodireward.trainer.callbacks import CallbackList, StepData
from embodireward.trainer.checkpoint import load_checkpoint, resolve_checkpoint, save_checkpoint
from embodireward.trainer.episode_stats import EpisodeStats
from embodireward.trainer.evaluator import EVAL_ENV_SEED_OFFSET, EVAL_RESET_SEED_OFFSET, evaluate
from embodireward.trainer.logger import Logger
from embodireward.trainer.resume import check_resume_config, record_changes
from embodireward.trainer.run_dir import check_run_dir_writable, choose_run_dir, creating
from embodireward.utils import distributed as dist_utils
from embodireward.utils.io import FileSystemError, atomic_write_json, make_dirs, read_json, writing
from embodireward.utils.memory import allocation_errors
from embodireward.utils.seed import seed_everything
from embodireward.utils.threads import sigterm_as_interrupt, torch_threads


class Trainer:
    """Builds everything from a config through the registries and runs the training loop."""

    def __init__(self, config: TrainConfig, resolved_config: Optional[Dict[str, Any]] = None):
        self.config = config
        runtime = config.runtime
        self.rank, self.world_size = dist_utils.rank(), dist_utils.world_size()
        self.is_main = self.rank == 0
        self._progress_bar = None
        self.env = self.eval_env = None
        if runtime.num_threads:
            torch.set_num_threads(runtime.num_threads)
        self.device = builder.resolve_device(runtime.device)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        seed = runtime.seed + self.rank
        seed_everything(seed)

        # every rank needs the registries (plugins) loaded, not only the rank writing config.json
        self.resolved_config = resolved_config or builder.validate_config(config)
        resume_path = resolve_checkpoint(runtime.resume) if runtime.resume else None
        resume_state = load_checkpoint(resume_path) if resume_path else None
        self.run_dir = choose_run_dir(config, resume_path)
        self.checkpoint_dir = self.run_dir / "checkpoints"
        self._config_changes = []
        if resume_state is not None:
            original, source = self._original_config(resume_state)
            self._config_changes = check_resume_config(original, self.resolved_config, source)
        init_state = load_checkpoint(runtime.init_from) if runtime.init_from else None

        try:
            self._build(seed)
            self.global_step, self.iteration, self.best_eval = 0, 0, None
            self._stop_reason: Optional[str] = None
            self._resume_obs = None
            if resume_state is not None:
                self._resume_obs = run_state.restore(self, resume_state, str(resume_path))
            elif init_state is not None:
                run_state.init_policy(self, init_state, str(resolve_checkpoint(runtime.init_from)))
            self.callbacks = CallbackList(builder.build_callbacks(config, self))
            if resume_state is not None:
                run_state.finish_restore(self, resume_state, str(resume_path))
            check_run_dir_writable(self.run_dir, "runtime.resume" if resume_path else "runtime.run_dir" if runtime.run_dir else "runtime.output_dir")
            self._create_run_files(resume_path is not None)
        except BaseException:
            self.close()
            raise
        # "auto" precision resolves per machine: say what this run computes in
        self.log_info(f"run {self.run_dir}: device {self.device}, precision {self.algo.precision.name}"
                      + (", compiled" if runtime.compile else ""))
        if resume_path is not None:
            self.log_info(f"resumed from {resume_path} at iteration {self.iteration}, global step {self.global_step}"
                          + ("" if self._resume_obs is not None else run_state.STATISTICAL_RESUME_NOTE.format(env=config.env.id)))

    # -- start-up -----------------------------------------------------------------------------
    def _original_config(self, state: Dict[str, Any]):
        path = self.run_dir / "config.json"
        if path.is_file():
            return read_json(path, lambda message: run_state.CheckpointError(message), f"{path} is unreadable"), str(path.name)
        return state.get("config", {}), "checkpoint"

    def _build(self, seed: int) -> None:
        config, runtime = self.config, self.config.runtime
        with allocation_errors("env.cfg", f"env '{config.env.id}' with num_envs={config.env.cfg.get('num_envs', 'default')}"):
            self.env = builder.build_env(config, self.device, seed)
            if runtime.eval_freq > 0 and self.is_main:
                self.eval_env = builder.build_env(config, self.device, runtime.seed + EVAL_ENV_SEED_OFFSET, for_eval=True)
        with allocation_errors("policy", f"policy '{config.policy.name}'"):
            self.policy = builder.build_policy(config, self.env.single_observation_space, self.env.single_action_space, self.device)
        with allocation_errors("algorithm.cfg", f"algorithm '{config.algorithm.name}' and its buffer"):
            self.algo = builder.build_algo(config, self.policy, self.device)
            self.algo.initialize_buffer(runtime.rollout_steps, self.env.num_envs, self.env.single_observation_space, self.env.single_action_space)
        self.episode_stats = EpisodeStats(self.env.num_envs, self.device)
        self.reward_hook = None
        if config.reward.use_reward_model:
            from embodireward.rewards.hook import build_reward_hook

            self.reward_hook = build_reward_hook(config.reward, self.env, self.device, runtime.precision)
        self._action_low = torch.as_tensor(self.env.single_action_space.low, device=self.device)
        self._action_high = torch.as_tensor(self.env.single_action_space.high, device=self.device)

    def _create_run_files(self, resumed: bool) -> None:
        if self.is_main:
            with creating(self.run_dir), writing(self.run_dir):
                if resumed:
                    if self._config_changes:
                        record_changes(self.run_dir, self._config_changes, self.iteration, self.global_step)
                else:
                    atomic_write_json(self.run_dir / "config.json", self.resolved_config)
                self.logger = self._make_logger(resumed)
        else:
            self.logger = self._make_logger(resumed)

    def _make_logger(self, resumed: bool) -> Logger:
        runtime = self.config.runtime
        log_dir = self.run_dir / "logs"
        # TensorBoard drops earlier events from the purge step on: after a resume those past the
        # checkpoint, after a fresh start into this directory (an earlier start killed before its
        # first checkpoint) all of them, so curves never fork or repeat
        purge_step = self.global_step + 1 if resumed else (1 if self.is_main and any(log_dir.glob("events.*")) else None)
        return Logger(log_dir, enabled=self.is_main, use_wandb=runtime.use_wandb, wandb_project=runtime.wandb_project_name,
                      run_name=self.run_dir.name, config=self.resolved_config, purge_step=purge_step)

    def close(self) -> None:
        """Close the envs (ManiSkill worker processes) and the logger; safe to call more than once.

        Called on the way out of a failed run too, so it must not raise over the original error.
        """
        for env in (self.env, self.eval_env):
            if env is not None:
                env.close()
        self.env = self.eval_env = None
        logger, self.logger = getattr(self, "logger", None), None
        if logger is not None:
            with contextlib.suppress(FileSystemError):
                logger.close()

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
        if self._resume_obs is not None:
            self._last_obs = self._resume_obs
        else:
            self._last_obs, _ = self.env.reset(seed=runtime.seed + self.rank + 1_000_003 * self.iteration)
        self.callbacks.on_train_start(self)
        # a live bar on a terminal; in a log file, a plain status line every tenth of the run instead
        self._interactive = self.is_main and runtime.progress_bar and sys.stdout.isatty()
        self._progress_bar = tqdm(total=runtime.iterations, initial=self.iteration, disable=not self._interactive,
                                  dynamic_ncols=True, desc=self.run_dir.name, file=sys.stdout)
        last_metrics: Dict[str, float] = {}
        try:
            with sigterm_as_interrupt():
                while self.iteration < runtime.iterations and not self._stop_agreed():
                    last_metrics = self._run_iteration()
        except KeyboardInterrupt:
            # no save here: mid-iteration state would not resume exactly; latest.pt is the last whole iteration
            self.log_info(f"interrupted during iteration {self.iteration + 1}; {self.checkpoint_dir / 'latest.pt'} holds "
                          f"iteration {self.iteration}: continue with --set runtime.resume={self.run_dir}")
            raise
        finally:
            self._progress_bar.close()
            self._progress_bar = None
        self.callbacks.on_train_end(self)
        self.logger.close()
        self.logger = None
        dist_utils.barrier()  # on every rank, returning means rank 0's final checkpoint is on disk
        if self.reward_hook is not None:
            last_metrics.update(self.reward_hook.total_metrics())
        return last_metrics

    def request_stop(self, reason: str) -> None:
        """End the run after the current iteration, as if it were the last one (for callbacks such
        as ``early_stopping``); its checkpoints are written and ``on_train_end`` runs as usual."""
        if self._stop_reason is None:
            self._stop_reason = reason
            self.log_info(f"stopping after iteration {self.iteration}: {reason}")

    def _stop_agreed(self) -> bool:
        """Every rank stops together: evaluation (hence most stop requests) runs on rank 0 alone."""
        requested = self._stop_reason is not None
        if self.world_size == 1:
            return requested
        return bool(dist_utils.all_reduce_sum(torch.tensor([float(requested)], device=self.device)).item() > 0)

    def _run_iteration(self) -> Dict[str, float]:
        runtime = self.config.runtime
        start = time.perf_counter()
        with torch_threads(runtime.rollout_threads):
            self.algo.collect_rollout(self._last_obs, runtime.rollout_steps, self._step_env)
        rollout_time = time.perf_counter() - start
        self.callbacks.on_rollout_end(self)
        update_metrics = self.algo.update(progress=self.iteration / runtime.iterations)
        self.iteration += 1
        self.callbacks.on_update_end(self, update_metrics)
        elapsed = time.perf_counter() - start
        steps = runtime.rollout_steps * self.env.num_envs * self.world_size
        metrics = self._log_iteration(update_metrics, steps / elapsed, rollout_time / elapsed)
        if runtime.eval_freq and (self.iteration % runtime.eval_freq == 0 or self.iteration == runtime.iterations):
            metrics.update(self._evaluate())
        self._save_checkpoints()
        self._progress_bar.update(1)
        return metrics

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
            postfix["env_return"] = f"{scalars['episode/env_return']:.2f}"
        if self.reward_hook is not None and "episode/return" in scalars:
            postfix["reward"] = f"{scalars['episode/return']:.2f}"  # what the algorithm trains on: the learned reward
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
            metrics, frames = evaluate(self.policy, self.eval_env, seed=runtime.seed + EVAL_RESET_SEED_OFFSET,
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

        path = make_dirs(self.run_dir / "videos") / f"eval_{self.global_step:010d}.gif"
        with writing(path):
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
        save_checkpoint(path, run_state.capture(self, for_resume=name == "latest.pt"))
        self.callbacks.on_checkpoint(self, str(path))
