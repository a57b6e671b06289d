"""Off-policy transition storage: a ring buffer of the last ``capacity`` transitions, sampled uniformly.

Each transition is ``(obs, action, reward, next_obs, terminated, truncated)``. ``next_obs`` is what
the action led to: at an episode end the true final observation (``info["final_obs"]``), not the
first observation of the next episode that the auto-resetting env returns. ``terminated`` (a real
end: no future reward) and ``truncated`` (a time-limit cut) are kept apart, so the learner decides
where to bootstrap. uint8 observation entries (images) are stored as uint8.
"""
from __future__ import annotations

from typing import Any, Dict

import gymnasium as gym
import torch

from embodireward.config import ConfigError
from embodireward.envs.base import Obs
from embodireward.utils import memory
from embodireward.utils.obs import obs_assign, obs_batch_size, obs_index, obs_map, obs_nbytes, obs_storage, obs_to

_FIELDS = ("actions", "rewards", "terminated", "truncated")


def transition_nbytes(obs_space: gym.Space, action_dim: int) -> int:
    """Bytes per stored transition: obs and next_obs, float32 action and reward, two bools."""
    return 2 * obs_nbytes(obs_space) + 4 * action_dim + 4 + 2


def check_fits(capacity: int, obs_space: gym.Space, action_dim: int, device: torch.device) -> None:
    """Raise ``ConfigError`` on ``algorithm.cfg.buffer_size`` if the buffer would not fit in ``device``'s free memory."""
    memory.check_fits(capacity * transition_nbytes(obs_space, action_dim), torch.device(device), "algorithm.cfg.buffer_size",
                      f"a replay buffer of {capacity} transitions (lower buffer_size)")


class ReplayBuffer:
    """Ring buffer on ``device``; :meth:`add` takes a batch of transitions, :meth:`sample` draws uniformly."""

    def __init__(self, capacity: int, obs_space: gym.Space, action_dim: int, device: torch.device):
        self.capacity, self.device = capacity, torch.device(device)
        self.obs = obs_storage(obs_space, (capacity,), self.device)
        self.next_obs = obs_storage(obs_space, (capacity,), self.device)
        self.actions = torch.zeros(capacity, action_dim, device=self.device)
        self.rewards = torch.zeros(capacity, device=self.device)
        self.terminated = torch.zeros(capacity, dtype=torch.bool, device=self.device)
        self.truncated = torch.zeros(capacity, dtype=torch.bool, device=self.device)
        self.pos = 0  # next row to write
        self.size = 0  # rows holding data

    def __len__(self) -> int:
        return self.size

    def add(self, obs: Obs, actions: torch.Tensor, rewards: torch.Tensor, next_obs: Obs,
            terminated: torch.Tensor, truncated: torch.Tensor) -> None:
        """Store ``N`` transitions (one per env), overwriting the oldest once full."""
        n = obs_batch_size(obs)
        if n > self.capacity:
            raise ValueError(f"cannot add {n} transitions to a replay buffer of {self.capacity}")
        rows = torch.arange(self.pos, self.pos + n, device=self.device) % self.capacity
        obs_assign(self.obs, rows, obs_to(obs, self.device))
        obs_assign(self.next_obs, rows, obs_to(next_obs, self.device))
        for name, value in zip(_FIELDS, (actions, rewards, terminated, truncated)):
            getattr(self, name)[rows] = value.to(self.device)
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def recent_obs(self, n: int) -> Obs:
        """The observations of the last ``min(n, size)`` transitions added."""
        n = min(n, self.size)
        return obs_index(self.obs, torch.arange(self.pos - n, self.pos, device=self.device) % self.capacity)

    def sample(self, batch_size: int, generator: torch.Generator, device: torch.device) -> Dict[str, Any]:
        """``batch_size`` transitions drawn uniformly (with replacement) from the stored ones, on ``device``."""
        index = torch.randint(self.size, (batch_size,), generator=generator, device=generator.device).to(self.device)
        batch: Dict[str, Any] = {name: getattr(self, name)[index].to(device, non_blocking=True) for name in _FIELDS}
        batch["obs"] = obs_to(obs_index(self.obs, index), device)
        batch["next_obs"] = obs_to(obs_index(self.next_obs, index), device)
        return batch

    # -- checkpointing ------------------------------------------------------------------------
    def state_dict(self) -> Dict[str, Any]:
        """The filled rows (on the CPU) and the write position."""
        filled = slice(0, self.size)
        state: Dict[str, Any] = {name: getattr(self, name)[filled].cpu() for name in _FIELDS}
        state.update(obs=obs_map(lambda v: v[filled].cpu(), self.obs), next_obs=obs_map(lambda v: v[filled].cpu(), self.next_obs),
                     pos=self.pos, size=self.size, capacity=self.capacity)
        return state

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        if state["capacity"] != self.capacity:
            raise ConfigError("algorithm.cfg.buffer_size", f"the checkpoint's replay buffer was saved with buffer_size "
                                                           f"{state['capacity']}, this run has {self.capacity}")
        filled = slice(0, state["size"])
        for name in _FIELDS:
            getattr(self, name)[filled] = state[name].to(self.device)
        obs_assign(self.obs, filled, obs_to(state["obs"], self.device))
        obs_assign(self.next_obs, filled, obs_to(state["next_obs"], self.device))
        self.pos, self.size = int(state["pos"]), int(state["size"])
