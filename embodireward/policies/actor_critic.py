"""Gaussian actor-critic with a state-independent learnable log-std."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.distributions import Normal

from embodireward.config import NetworkConfig, PolicySection, parse_dataclass
from embodireward.envs.base import Obs
from embodireward.policies.base import ActorCriticPolicy
from embodireward.policies.networks import build_encoder, orthogonal_init
from embodireward.policies.normalizer import ObsNormalization
from embodireward.registry import register_policy


@dataclass
class ActorCriticConfig:
    init_log_std: float = -0.5
    normalize_obs: bool = False
    normalize_key: str = "state"  # which dict entry is normalised when observations are dicts


@register_policy("actor_critic")
class ActorCritic(ObsNormalization, ActorCriticPolicy):
    """Gaussian actor-critic: separate actor/critic networks from JSON blocks, learnable log-std."""

    Config = ActorCriticConfig

    def __init__(self, section: PolicySection, obs_space: gym.Space, action_space: gym.spaces.Box):
        super().__init__()
        self.cfg = parse_dataclass(ActorCriticConfig, section.cfg, "policy.cfg")
        actor_block = section.actor or NetworkConfig()
        critic_block = section.critic or NetworkConfig()
        action_dim = int(np.prod(action_space.shape))

        self.init_normalizer(self.cfg.normalize_obs, obs_space, self.cfg.normalize_key)

        self.actor_encoder = build_encoder(actor_block, obs_space)
        self.actor_mean = orthogonal_init(nn.Linear(self.actor_encoder.out_dim, action_dim), gain=0.01)
        self.critic_encoder = build_encoder(critic_block, obs_space)
        self.critic_head = orthogonal_init(nn.Linear(self.critic_encoder.out_dim, 1), gain=1.0)
        self.log_std = nn.Parameter(torch.full((action_dim,), self.cfg.init_log_std))

    def metrics(self) -> Dict[str, float]:
        return {"log_std": self.log_std.mean().item()}

    # -- Policy interface ---------------------------------------------------------------------
    def _distribution(self, obs: Obs, validate: bool = True) -> Normal:
        # float32 distribution whatever precision the networks ran in: log-probs and PPO ratios
        # need float32's resolution (bf16 keeps ~3 significant digits)
        mean = self.actor_mean(self.actor_encoder(obs)).float()
        return Normal(mean, self.log_std.exp().expand_as(mean), validate_args=validate)

    def _value(self, obs: Obs) -> torch.Tensor:
        return self.critic_head(self.critic_encoder(obs)).squeeze(-1).float()

    def _sample(self, obs: Obs, deterministic: bool, validate: bool) -> Tuple[torch.Tensor, torch.Tensor]:
        dist = self._distribution(obs, validate)
        action = dist.mean if deterministic else dist.sample()
        return action, dist.log_prob(action).sum(-1)

    def get_action(self, obs: Obs, deterministic: bool = False) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        obs = self.normalize_obs(obs)
        return (*self._sample(obs, deterministic, validate=True), self._value(obs))

    def act(self, obs: Obs, deterministic: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
        # no argument checks on this per-step path; evaluate_actions in the update still catches NaNs
        return self._sample(self.normalize_obs(obs), deterministic, validate=False)

    def get_value(self, obs: Obs) -> torch.Tensor:
        return self._value(self.normalize_obs(obs))

    def evaluate_actions(self, obs: Obs, actions: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        obs = self.normalize_obs(obs)
        dist = self._distribution(obs)
        return dist.log_prob(actions).sum(-1), dist.entropy().sum(-1), self._value(obs)
