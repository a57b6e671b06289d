"""The interfaces policies implement (EmbodiChain's ``Policy``).

:class:`Policy` is what the trainer and the evaluator use: ``act``. Each algorithm names the
further methods it needs in ``Algorithm.policy_methods`` (PPO: :class:`ActorCriticPolicy`'s
``get_value`` / ``evaluate_actions``; SAC: :class:`ActorQPolicy`'s ``normalize_obs`` / ``rsample``
and its ``critic``), and a config pairing an algorithm with a policy that lacks them is rejected
before anything runs.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Dict, Tuple

import torch
from torch import nn

from embodireward.envs.base import Obs


class Policy(nn.Module):
    """Base class of registered policies, built as ``cls(section, obs_space, action_space)``.

    ``section`` is the parsed ``policy`` JSON block (``embodireward.config.PolicySection``).
    """

    def act(self, obs: Obs, deterministic: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
        """Returns ``(action, log_prob)`` with leading dimension ``B``: what rollouts and evaluation need.

        ``deterministic`` asks for the policy's most likely action (evaluation).
        """
        action, log_prob, _ = self.get_action(obs, deterministic)
        return action, log_prob

    def get_action(self, obs: Obs, deterministic: bool = False) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns ``(action, log_prob, value)``; override ``act`` or this."""
        raise NotImplementedError(f"{type(self).__name__} implements neither act() nor get_action()")

    def update_normalizer(self, obs: Obs) -> None:
        """Feed a batch of observations to running statistics, if the policy keeps any."""

    def metrics(self) -> Dict[str, float]:
        """Policy-specific scalars logged after each update (e.g. the action noise)."""
        return {}


class ActorCriticPolicy(Policy, ABC):
    """A stochastic actor with a state-value critic: what on-policy algorithms (PPO) train."""

    @abstractmethod
    def get_action(self, obs: Obs, deterministic: bool = False) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns ``(action, log_prob, value)``, each with leading dimension ``B``."""

    @abstractmethod
    def get_value(self, obs: Obs) -> torch.Tensor:
        """Returns the value estimate ``[B]``."""

    @abstractmethod
    def evaluate_actions(self, obs: Obs, actions: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns ``(log_prob, entropy, value)`` of given actions, each ``[B]``."""

    def forward(self, obs: Obs, actions: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # Losses go through forward() so a DistributedDataParallel wrapper syncs gradients.
        return self.evaluate_actions(obs, actions)


class ActorQPolicy(Policy, ABC):
    """A stochastic actor with twin state-action critics: what off-policy algorithms (SAC) train.

    ``actor`` and ``critic`` are submodules, so checkpoints and ``init_from`` carry both; the
    algorithm optimises them separately and keeps a target copy of ``critic``.
    ``critic(obs, actions) -> (q1, q2)``, each ``[B]``, and :meth:`rsample` take observations that
    already went through :meth:`normalize_obs`; ``actions`` are in the env's action bounds.
    """

    actor: nn.Module
    critic: nn.Module

    @abstractmethod
    def normalize_obs(self, obs: Obs) -> Obs:
        """The observation as the networks see it (identity without a normaliser)."""

    @abstractmethod
    def rsample(self, obs: Obs) -> Tuple[torch.Tensor, torch.Tensor]:
        """A reparameterised action sample ``[B, A]`` and its float32 log-probability ``[B]``,
        differentiable with respect to the actor's parameters."""
