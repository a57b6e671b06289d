"""On-policy rollout storage ``[num_steps, num_envs, ...]`` and its minibatch iterator."""
from __future__ import annotations

from typing import Dict, Iterator, Optional

import gymnasium as gym
import torch

from embodireward.envs.base import Obs
from embodireward.utils.obs import obs_assign, obs_index, obs_map, obs_nbytes, obs_storage


def _obs_flatten(obs: Obs) -> Obs:
    return obs_map(lambda value: value.flatten(0, 1), obs)


class RolloutBuffer:
    """Holds one rollout of every env; PPO computes advantages into it and samples minibatches.

    ``terminated[t]`` marks episode ends whose next value is zero; ``bootstrap_values[t]`` is
    ``V(final_obs)`` for the other episode ends at step ``t`` (time-limit cuts, and every end under
    PPO's ``bootstrap_at_done: always``): the value GAE bootstraps from there (zero elsewhere).
    """

    @staticmethod
    def estimate_bytes(num_steps: int, num_envs: int, obs_space: gym.Space, action_dim: int) -> int:
        """Storage of one rollout: observations, actions and the 9 per-step scalars."""
        return num_steps * num_envs * (obs_nbytes(obs_space) + 4 * action_dim + 4 * 9)

    def __init__(self, num_steps: int, num_envs: int, obs_space: gym.Space, action_dim: int, device: torch.device):
        self.num_steps, self.num_envs, self.device = num_steps, num_envs, device
        shape = (num_steps, num_envs)
        self.obs = obs_storage(obs_space, shape, device)
        self.actions = torch.zeros(*shape, action_dim, device=device)
        self.log_probs = torch.zeros(shape, device=device)
        self.values = torch.zeros(shape, device=device)
        self.rewards = torch.zeros(shape, device=device)
        self.terminated = torch.zeros(shape, dtype=torch.bool, device=device)
        self.dones = torch.zeros(shape, dtype=torch.bool, device=device)
        self.bootstrap_values = torch.zeros(shape, device=device)
        self.advantages = torch.zeros(shape, device=device)
        self.returns = torch.zeros(shape, device=device)
        self.step = 0

    def add(self, obs: Obs, actions, log_probs, rewards, terminated, dones) -> None:
        """Store one step; values, bootstrap values and advantages are filled in after the rollout."""
        if self.step >= self.num_steps:
            raise RuntimeError("rollout buffer is full; call clear() before a new rollout")
        t = self.step
        obs_assign(self.obs, t, obs)
        self.actions[t] = actions
        self.log_probs[t] = log_probs
        self.rewards[t] = rewards
        self.terminated[t] = terminated
        self.dones[t] = dones
        self.step += 1

    def clear(self) -> None:
        self.step = 0

    def observations(self) -> Obs:
        """All stored observations flattened to ``[num_steps * num_envs, ...]``."""
        return _obs_flatten(self.obs)

    def minibatches(self, num_minibatches: int, generator: Optional[torch.Generator] = None) -> Iterator[Dict[str, torch.Tensor]]:
        """Shuffled minibatches over all ``num_steps * num_envs`` transitions."""
        batch_size = self.num_steps * self.num_envs
        minibatch_size = batch_size // num_minibatches
        obs = _obs_flatten(self.obs)
        flat = {
            "actions": self.actions.flatten(0, 1),
            "log_probs": self.log_probs.flatten(),
            "values": self.values.flatten(),
            "advantages": self.advantages.flatten(),
            "returns": self.returns.flatten(),
        }
        order = torch.randperm(batch_size, generator=generator).to(self.device)
        for start in range(0, minibatch_size * num_minibatches, minibatch_size):
            index = order[start : start + minibatch_size]
            batch = {key: value[index] for key, value in flat.items()}
            batch["obs"] = obs_index(obs, index)
            yield batch
