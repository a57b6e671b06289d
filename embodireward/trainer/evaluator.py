"""Deterministic evaluation: one episode per eval env, true env reward and success."""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import numpy as np
import torch

from embodireward.envs.base import VecEnv
from embodireward.policies.base import Policy


@torch.no_grad()
def evaluate(policy: Policy, env: VecEnv, seed: int, video_envs: int = 0) -> Tuple[Dict[str, float], Optional[np.ndarray]]:
    """Run the first episode of every eval env with the policy's mean action.

    Returns metrics (``eval/return``, ``eval/length``, ``eval/success_rate`` = success at the episode's
    end, ``eval/success_once``) and, if ``video_envs > 0``, frames ``[T, H, W * video_envs, 3]`` of the
    first envs side by side.
    """
    was_training = policy.training
    policy.eval()
    obs, _ = env.reset(seed=seed)
    n = env.num_envs
    finished = torch.zeros(n, dtype=torch.bool, device=env.device)
    returns = torch.zeros(n, device=env.device)
    lengths = torch.zeros(n, device=env.device)
    success_once = torch.zeros(n, dtype=torch.bool, device=env.device)
    success_at_end = torch.zeros(n, dtype=torch.bool, device=env.device)
    frames = []
    low = torch.as_tensor(env.single_action_space.low, device=env.device)
    high = torch.as_tensor(env.single_action_space.high, device=env.device)
    for _ in range(env.max_episode_steps * 2):  # bound: every episode ends by its time limit
        if video_envs:
            frames.append(_tile(env.render_frames(), video_envs))
        actions, _, _ = policy.get_action(obs, deterministic=True)
        obs, reward, terminated, truncated, info = env.step(torch.clamp(actions, low, high))
        active = ~finished
        returns += reward * active
        lengths += active.float()
        success = info.get("success")
        if success is not None:
            success_once |= success & active
        done = (terminated | truncated) & active
        if success is not None:
            success_at_end[done] = success[done]
        finished |= done
        if finished.all():
            break
    policy.train(was_training)
    metrics = {"eval/return": returns.mean().item(), "eval/length": lengths.mean().item()}
    if "success" in info:
        metrics["eval/success_rate"] = success_at_end.float().mean().item()
        metrics["eval/success_once"] = success_once.float().mean().item()
    return metrics, (np.stack(frames) if frames else None)


def _tile(frames, count: int) -> np.ndarray:
    images = next(iter(frames.images.values()))[:count]
    return torch.cat(list(images), dim=1).cpu().numpy()
