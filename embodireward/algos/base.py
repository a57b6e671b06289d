"""The interface every algorithm implements (EmbodiChain's algorithm interface)."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable, Dict, Tuple

import gymnasium as gym
import torch

from embodireward.envs.base import Obs

# ``step_env(actions) -> (next_obs, reward, terminated, truncated, info)``: the trainer's env step,
# which also renders requested frames, applies the reward-model hook and runs callbacks.
StepFn = Callable[[torch.Tensor], Tuple[Obs, torch.Tensor, torch.Tensor, torch.Tensor, Dict[str, Any]]]


class Algorithm(ABC):
    """Base class of registered algorithms, built as ``cls(cfg, policy, device)``.

    The algorithm owns its buffer and controls data collection: the trainer hands it a
    ``step_env`` function and the current observation. Losses must go through
    ``self.train_module(obs, actions)``: the trainer sets it to the policy, or under torchrun to
    its DistributedDataParallel wrapper, which averages gradients over ranks.
    """

    @abstractmethod
    def initialize_buffer(self, num_steps: int, num_envs: int, obs_space: gym.Space, action_space: gym.spaces.Box) -> None: ...

    @abstractmethod
    def collect_rollout(self, obs: Obs, num_steps: int, step_env: StepFn) -> Obs:
        """Run ``num_steps`` env steps, fill the buffer, compute advantages; return the latest obs."""

    @abstractmethod
    def update(self, progress: float) -> Dict[str, float]:
        """Improve the policy from the buffer. ``progress`` in [0, 1] drives schedules."""

    def state_dict(self) -> Dict[str, Any]:
        return {}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        pass
