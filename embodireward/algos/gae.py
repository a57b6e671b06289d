"""Generalised Advantage Estimation (Schulman et al. 2016) with time-limit bootstrapping."""
from __future__ import annotations

from typing import Tuple

import torch


def compute_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    last_values: torch.Tensor,
    bootstrap_values: torch.Tensor,
    terminated: torch.Tensor,
    dones: torch.Tensor,
    gamma: float,
    gae_lambda: float,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Advantages and returns for a ``[T, N]`` rollout.

    ``values[t] = V(s_t)``; ``last_values = V(s_T)`` for the observation after the rollout.
    When an episode ends at step ``t`` (``dones[t]``), the next state is the true final one:
    terminated -> its value is 0; truncated by the time limit -> ``bootstrap_values[t]`` (its value
    estimate), since the task itself did not end there. The lambda-chain never crosses an episode end.

        delta_t = r_t + gamma * V(s_{t+1}) * (1 - terminated_t) - V(s_t)
        A_t     = delta_t + gamma * lambda * (1 - done_t) * A_{t+1}
        R_t     = A_t + V(s_t)
    """
    num_steps = rewards.shape[0]
    advantages = torch.zeros_like(rewards)
    next_advantage = torch.zeros_like(last_values)
    not_terminated = (~terminated).float()
    not_done = (~dones).float()
    for t in reversed(range(num_steps)):
        following_value = last_values if t == num_steps - 1 else values[t + 1]
        next_value = torch.where(dones[t], bootstrap_values[t], following_value)
        delta = rewards[t] + gamma * next_value * not_terminated[t] - values[t]
        next_advantage = delta + gamma * gae_lambda * not_done[t] * next_advantage
        advantages[t] = next_advantage
    return advantages, advantages + values
