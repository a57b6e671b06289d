"""Evaluation on a separate env: true env reward and success over whole episodes.

:func:`run_episodes` plays the policy (its mean action by default) and keeps one record per
episode, and optionally the frames of the first episodes; :func:`evaluate` condenses that into the
``eval/*`` scalars the trainer logs. ``embodireward eval`` (``embodireward.tools.eval_policy``)
uses the records directly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

from embodireward.envs.base import VecEnv
from embodireward.policies.base import Policy

# The trainer builds its eval env with seed ``runtime.seed + EVAL_ENV_SEED_OFFSET`` and resets it
# with ``runtime.seed + EVAL_RESET_SEED_OFFSET`` (trainer.py); a re-evaluation with the same seeds
# plays the very same episodes.
EVAL_ENV_SEED_OFFSET = 10_000
EVAL_RESET_SEED_OFFSET = 20_000
# per-episode row key -> the metric of its mean; the success ones only for envs that report success
EPISODE_METRICS = {"return": "eval/return", "length": "eval/length", "success": "eval/success_rate", "success_once": "eval/success_once"}
SUCCESS_KEYS = ("success", "success_once")


@dataclass
class EpisodeVideo:
    """The first episode of each of the first ``K`` eval envs, one frame per env step.

    A frame shows the state the step ended in (the terminal state on an episode's last step).
    ``images``: ``{camera_key: uint8 [T, K, H, W, 3]}``; ``success``: bool ``[T, K]``, the true
    success of each frame's state (None when the env reports none); ``lengths``: ``[K]`` frames
    that belong to each episode; an episode shorter than ``T`` repeats its last frame.
    """

    images: Dict[str, np.ndarray]
    success: Optional[np.ndarray]
    lengths: np.ndarray


@dataclass
class EvalEpisodes:
    """What :func:`run_episodes` saw: one row per counted episode, and the video if asked for.

    A row holds ``env`` (index of the eval env), ``return`` (sum of the env's reward), ``length``
    and, when the env reports success, ``success`` (at the episode's last step) and
    ``success_once`` (at any step).
    """

    episodes: List[Dict[str, float]]
    video: Optional[EpisodeVideo]

    @property
    def has_success(self) -> bool:
        return bool(self.episodes) and "success" in self.episodes[0]

    def metrics(self) -> Dict[str, float]:
        """Means over the episodes: ``eval/return``, ``eval/length``, ``eval/success_rate`` (success at the
        episode's end), ``eval/success_once``; and ``eval/episodes``."""
        keys = EPISODE_METRICS if self.has_success else {k: v for k, v in EPISODE_METRICS.items() if k not in SUCCESS_KEYS}
        count = max(len(self.episodes), 1)
        metrics = {name: sum(float(row[key]) for row in self.episodes) / count for key, name in keys.items()}
        metrics["eval/episodes"] = float(len(self.episodes))
        return metrics


@torch.no_grad()
def run_episodes(policy: Policy, env: VecEnv, seed: int, episodes: Optional[int] = None, video_envs: int = 0,
                 deterministic: bool = True, progress: Optional[Callable[[int], None]] = None) -> EvalEpisodes:
    """Play until every env has finished ``ceil(episodes / num_envs)`` episodes (one each by default).

    Every env contributes the same number of episodes, so episodes that end early (success with
    ``terminate_on_success``) are not over-represented. ``video_envs > 0`` records the first episode
    of the first envs (see :class:`EpisodeVideo`); ``progress(n)`` is called with the number of
    episodes that each step finished.
    """
    was_training = policy.training
    policy.eval()
    obs, _ = env.reset(seed=seed)
    n, device = env.num_envs, env.device
    per_env = max(1, math.ceil(episodes / n)) if episodes else 1
    video_envs = min(video_envs, n)
    finished = torch.zeros(n, dtype=torch.long, device=device)  # episodes counted per env
    episode_return = torch.zeros(n, device=device)
    episode_length = torch.zeros(n, dtype=torch.long, device=device)
    episode_success_once = torch.zeros(n, dtype=torch.bool, device=device)
    rows: List[Dict[str, float]] = []
    recorder = _VideoRecorder(video_envs) if video_envs else None
    low = torch.as_tensor(env.single_action_space.low, device=device)
    high = torch.as_tensor(env.single_action_space.high, device=device)
    for _ in range(env.max_episode_steps * (per_env + 1)):  # bound: every episode ends by its time limit
        recording = recorder is not None and bool((finished[:video_envs] == 0).any())
        actions, _ = policy.act(obs, deterministic=deterministic)
        obs, reward, terminated, truncated, info = env.step(torch.clamp(actions, low, high),
                                                            render="every_step" if recording else "never")
        success = info.get("success")
        if recording:
            recorder.add(info["frames"].images, success, finished[:video_envs] == 0)
        episode_return += reward
        episode_length += 1
        if success is not None:
            episode_success_once |= success
        done = terminated | truncated
        counted = done & (finished < per_env)
        if counted.any():
            ids = counted.nonzero().flatten()
            columns = {"env": ids, "return": episode_return[ids], "length": episode_length[ids]}
            if success is not None:
                columns.update(success=success[ids], success_once=episode_success_once[ids])
            values = {key: value.tolist() for key, value in columns.items()}
            rows += [{key: values[key][i] for key in values} for i in range(len(ids))]
            if progress is not None:
                progress(len(ids))
        finished += counted.long()
        episode_return[done] = 0
        episode_length[done] = 0
        episode_success_once[done] = False
        if bool((finished >= per_env).all()):
            break
    policy.train(was_training)
    return EvalEpisodes(rows, recorder.video() if recorder is not None else None)


class _VideoRecorder:
    """Collects the frames of the first ``count`` envs while their first episode lasts."""

    def __init__(self, count: int):
        self.count = count
        self.images: Dict[str, List[np.ndarray]] = {}
        self.success: List[np.ndarray] = []
        self.lengths = np.zeros(count, dtype=np.int64)

    def add(self, images: Dict[str, torch.Tensor], success: Optional[torch.Tensor], active: torch.Tensor) -> None:
        active = active.cpu().numpy()
        for key, batch in images.items():
            frame = batch[: self.count].cpu().numpy()
            history = self.images.setdefault(key, [])
            if history:  # episodes that are over keep showing their last frame
                frame = np.where(active[:, None, None, None], frame, history[-1])
            history.append(frame)
        if success is not None:
            flags = success[: self.count].cpu().numpy()
            self.success.append(np.where(active, flags, self.success[-1]) if self.success else flags)
        self.lengths += active

    def video(self) -> EpisodeVideo:
        return EpisodeVideo(images={key: np.stack(frames) for key, frames in self.images.items()},
                            success=np.stack(self.success) if self.success else None, lengths=self.lengths.copy())


def evaluate(policy: Policy, env: VecEnv, seed: int, episodes: Optional[int] = None,
             video_envs: int = 0) -> Tuple[Dict[str, float], Optional[np.ndarray]]:
    """Deterministic evaluation for the trainer: the metrics of :meth:`EvalEpisodes.metrics` and, if
    ``video_envs > 0``, frames ``[T, H, W * video_envs, 3]`` of the first episodes side by side."""
    result = run_episodes(policy, env, seed, episodes=episodes, video_envs=video_envs)
    frames = None
    if result.video is not None:
        images = next(iter(result.video.images.values()))  # [T, K, H, W, 3], the first camera
        frames = np.concatenate(list(images.transpose(1, 0, 2, 3, 4)), axis=2)
    return result.metrics(), frames
