"""Deterministic evaluation on a separate env: true env reward and success over whole episodes."""
from __future__ import annotations

import math
from typing import Dict, Optional, Tuple

import numpy as np
import torch

from embodireward.envs.base import VecEnv
from embodireward.policies.base import Policy


@torch.no_grad()
def evaluate(policy: Policy, env: VecEnv, seed: int, episodes: Optional[int] = None,
             video_envs: int = 0) -> Tuple[Dict[str, float], Optional[np.ndarray]]:
    """Run the policy's mean action until every eval env has finished ``ceil(episodes / num_envs)``
    episodes (one each by default), so at least ``episodes`` episodes count.

    Returns metrics (``eval/return``, ``eval/length``, ``eval/success_rate`` = success at the episode's
    end, ``eval/success_once``, ``eval/episodes``) and, if ``video_envs > 0``, frames
    ``[T, H, W * video_envs, 3]`` of the first episode of the first envs side by side.
    """
    was_training = policy.training
    policy.eval()
    obs, _ = env.reset(seed=seed)
    n, device = env.num_envs, env.device
    per_env = max(1, math.ceil(episodes / n)) if episodes else 1
    finished = torch.zeros(n, dtype=torch.long, device=device)  # episodes counted per env
    episode_return = torch.zeros(n, device=device)
    episode_length = torch.zeros(n, device=device)
    episode_success_once = torch.zeros(n, dtype=torch.bool, device=device)
    totals = {"return": 0.0, "length": 0.0, "success_rate": 0.0, "success_once": 0.0}
    count = 0
    has_success = False
    frames = []
    low = torch.as_tensor(env.single_action_space.low, device=device)
    high = torch.as_tensor(env.single_action_space.high, device=device)
    for _ in range(env.max_episode_steps * (per_env + 1)):  # bound: every episode ends by its time limit
        if video_envs and bool((finished[:video_envs] == 0).any()):
            frames.append(_tile(env.render_frames(), video_envs))
        actions, _ = policy.act(obs, deterministic=True)
        obs, reward, terminated, truncated, info = env.step(torch.clamp(actions, low, high))
        episode_return += reward
        episode_length += 1
        success = info.get("success")
        if success is not None:
            has_success = True
            episode_success_once |= success
        counted = (terminated | truncated) & (finished < per_env)
        if counted.any():
            count += int(counted.sum())
            totals["return"] += episode_return[counted].sum().item()
            totals["length"] += episode_length[counted].sum().item()
            if success is not None:
                totals["success_rate"] += success[counted].float().sum().item()
                totals["success_once"] += episode_success_once[counted].float().sum().item()
        done = terminated | truncated
        finished += counted.long()
        episode_return[done] = 0
        episode_length[done] = 0
        episode_success_once[done] = False
        if bool((finished >= per_env).all()):
            break
    policy.train(was_training)
    keys = ("return", "length", "success_rate", "success_once") if has_success else ("return", "length")
    metrics = {f"eval/{key}": totals[key] / max(count, 1) for key in keys}
    metrics["eval/episodes"] = float(count)
    return metrics, (np.stack(frames) if frames else None)


def _tile(frames, count: int) -> np.ndarray:
    images = next(iter(frames.images.values()))[:count]
    return torch.cat(list(images), dim=1).cpu().numpy()
