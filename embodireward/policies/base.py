"""The interface every policy implements (EmbodiChain's ``Policy``)."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Dict, Tuple

import torch
from torch import nn

from embodireward.envs.base import Obs


class Policy(nn.Module, ABC):
    """Base class of registered policies, built as ``cls(section, obs_space, action_space)``.

    ``section`` is the parsed ``policy`` JSON block (``embodireward.config.PolicySection``).
    """

    @abstractmethod
    def get_action(self, obs: Obs, deterministic: bool = False) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns ``(action, log_prob, value)``, each with leading dimension ``B``."""

    def act(self, obs: Obs, deterministic: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
        """Returns ``(action, log_prob)``: what rollouts and evaluation need, without the value.

        Override it to skip the critic; PPO computes the rollout's values afterwards in large batches.
        """
        action, log_prob, _ = self.get_action(obs, deterministic)
        return action, log_prob

    @abstractmethod
    def get_value(self, obs: Obs) -> torch.Tensor:
        """Returns the value estimate ``[B]``."""

    @abstractmethod
    def evaluate_actions(self, obs: Obs, actions: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns ``(log_prob, entropy, value)`` of given actions, each ``[B]``."""

    def update_normalizer(self, obs: Obs) -> None:
        """Feed a batch of observations to running statistics, if the policy keeps any."""

    def metrics(self) -> Dict[str, float]:
        """Policy-specific scalars logged after each update (e.g. the action noise)."""
        return {}

    def forward(self, obs: Obs, actions: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # Losses go through forward() so a DistributedDataParallel wrapper syncs gradients.
        return self.evaluate_actions(obs, actions)
