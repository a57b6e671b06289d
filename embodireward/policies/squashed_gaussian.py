"""Squashed-Gaussian actor with twin Q critics: SAC's policy (Haarnoja et al. 2018, appendix C).

The actor outputs a Gaussian over pre-squash actions ``u ~ N(mu(s), sigma(s)^2)``; the env action is
``a = scale * tanh(u) + bias`` with ``scale = (high - low) / 2`` and ``bias = (high + low) / 2``, so
it always lies inside the action bounds. By the change of variables,

    log pi(a|s) = sum_i [ log N(u_i; mu_i, sigma_i) - log(scale_i * (1 - tanh(u_i)^2)) ]

(CleanRL's ``sac_continuous_action.py`` adds 1e-6 inside the last log; here it is computed exactly
with ``log(1 - tanh(u)^2) = 2 * (log 2 - u - softplus(-2u))``, which has no such bias). ``log sigma``
is squashed into ``[log_std_min, log_std_max]`` by a tanh as in CleanRL. The deterministic action
is ``scale * tanh(mu) + bias``.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Tuple

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from embodireward.config import ConfigError, NetworkConfig, PolicySection, config_error, parse_dataclass
from embodireward.envs.base import Obs
from embodireward.policies.base import ActorQPolicy
from embodireward.policies.networks import build_encoder, mlp, orthogonal_init
from embodireward.policies.normalizer import ObsNormalization
from embodireward.registry import register_policy
from embodireward.utils.precision import full_precision


@dataclass
class SquashedGaussianConfig:
    normalize_obs: bool = False
    normalize_key: str = "state"  # which dict entry is normalised when observations are dicts
    log_std_min: float = -5.0
    log_std_max: float = 2.0
    critic_layer_norm: bool = True  # LayerNorm after each hidden layer of the Q networks (ManiSkill's SAC)

    def validate(self, path: str) -> None:
        if not self.log_std_min < self.log_std_max:
            raise config_error(path, "log_std_min", f"must be < log_std_max ({self.log_std_max}), got {self.log_std_min}")


class SquashedGaussianActor(nn.Module):
    """obs -> encoder -> (mean, log_std) heads."""

    def __init__(self, block: NetworkConfig, obs_space: gym.Space, action_dim: int, log_std_min: float, log_std_max: float):
        super().__init__()
        self.encoder = build_encoder(block, obs_space)
        self.mean = orthogonal_init(nn.Linear(self.encoder.out_dim, action_dim), gain=0.01)
        self.log_std = orthogonal_init(nn.Linear(self.encoder.out_dim, action_dim), gain=0.01)
        self.log_std_min, self.log_std_max = log_std_min, log_std_max

    def forward(self, obs: Obs) -> Tuple[torch.Tensor, torch.Tensor]:
        features = self.encoder(obs)
        squashed = torch.tanh(self.log_std(features))  # (-1, 1) -> [log_std_min, log_std_max]
        log_std = self.log_std_min + 0.5 * (self.log_std_max - self.log_std_min) * (squashed + 1)
        return self.mean(features), log_std


class QNetwork(nn.Module):
    """[features, action] -> MLP -> Q value ``[B]``."""

    def __init__(self, in_dim: int, block: NetworkConfig, layer_norm: bool):
        super().__init__()
        self.body = mlp(in_dim, block.hidden_sizes, block.activation, layer_norm)
        self.head = orthogonal_init(nn.Linear(block.hidden_sizes[-1] if block.hidden_sizes else in_dim, 1), gain=1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.body(x)
        # float32 Q values under autocast: TD errors are small differences of large values, which bf16 rounds
        with full_precision():
            return self.head(features.float()).squeeze(-1)


class TwinQCritic(nn.Module):
    """``(obs, action) -> (Q1, Q2)``: one observation encoder, two independent Q networks on [features, action].

    The block's encoder is built without its hidden layers (an MLP block then passes the state through,
    a CNN block gives its conv features), and ``hidden_sizes`` become each Q network's layers.
    """

    def __init__(self, block: NetworkConfig, obs_space: gym.Space, action_dim: int, layer_norm: bool):
        super().__init__()
        self.encoder = build_encoder(dataclasses.replace(block, hidden_sizes=[]), obs_space)
        self.q1, self.q2 = (QNetwork(self.encoder.out_dim + action_dim, block, layer_norm) for _ in range(2))

    def forward(self, obs: Obs, actions: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([self.encoder(obs), actions], dim=-1)
        return self.q1(x), self.q2(x)


@register_policy("squashed_gaussian")
class SquashedGaussianPolicy(ObsNormalization, ActorQPolicy):
    """Tanh-squashed Gaussian actor and twin Q critics built from the ``actor`` / ``critic`` JSON blocks."""

    Config = SquashedGaussianConfig

    def __init__(self, section: PolicySection, obs_space: gym.Space, action_space: gym.spaces.Box):
        super().__init__()
        self.cfg = parse_dataclass(SquashedGaussianConfig, section.cfg, "policy.cfg")
        low, high = np.asarray(action_space.low, np.float64), np.asarray(action_space.high, np.float64)
        if not (np.isfinite(low).all() and np.isfinite(high).all()):
            raise ConfigError("policy.name", "'squashed_gaussian' needs a bounded action space (finite low/high), "
                                             f"the env's is [{low.min()}, {high.max()}]")
        action_dim = int(np.prod(action_space.shape))
        self.init_normalizer(self.cfg.normalize_obs, obs_space, self.cfg.normalize_key)
        self.actor = SquashedGaussianActor(section.actor or NetworkConfig(), obs_space, action_dim,
                                           self.cfg.log_std_min, self.cfg.log_std_max)
        self.critic = TwinQCritic(section.critic or NetworkConfig(), obs_space, action_dim, self.cfg.critic_layer_norm)
        self.register_buffer("action_scale", torch.as_tensor((high - low) / 2, dtype=torch.float32))
        self.register_buffer("action_bias", torch.as_tensor((high + low) / 2, dtype=torch.float32))

    def _squash(self, mean: torch.Tensor, log_std: torch.Tensor, sample: bool) -> Tuple[torch.Tensor, torch.Tensor]:
        """Env action and log pi(a|s) (module docstring) of ``u = mean + std * noise`` (noise 0 unless ``sample``)."""
        # float32 even under autocast: log-densities of near-deterministic actions lose all precision in bf16
        with full_precision():
            mean, log_std = mean.float(), log_std.float()
            noise = torch.randn_like(mean) if sample else torch.zeros_like(mean)
            u = mean + log_std.exp() * noise  # reparameterisation: gradients flow through mean and log_std
            gaussian = -0.5 * noise.pow(2) - log_std - 0.5 * math.log(2 * math.pi)  # log N(u; mean, std)
            log_det = torch.log(self.action_scale) + 2 * (math.log(2) - u - F.softplus(-2 * u))
            action = self.action_scale * torch.tanh(u) + self.action_bias
            return action, (gaussian - log_det).sum(-1)

    def rsample(self, obs: Obs) -> Tuple[torch.Tensor, torch.Tensor]:
        return self._squash(*self.actor(obs), sample=True)

    def act(self, obs: Obs, deterministic: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
        return self._squash(*self.actor(self.normalize_obs(obs)), sample=not deterministic)
