"""Running mean/std observation normalisation (parallel Welford update)."""
from __future__ import annotations

from typing import Optional

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from embodireward.envs.base import Obs
from embodireward.utils.distributed import all_reduce_sum


class RunningMeanStd(nn.Module):
    """Tracks mean and variance of a stream of ``[B, D]`` batches; ``forward`` normalises and clips.

    Statistics live in buffers so they are saved in the policy's ``state_dict`` (checkpoints).
    """

    def __init__(self, dim: int, clip: float = 10.0, epsilon: float = 1e-8):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("var", torch.ones(dim))
        self.register_buffer("count", torch.tensor(epsilon, dtype=torch.float64))
        self.clip = clip
        self.epsilon = epsilon

    @torch.no_grad()
    def update(self, batch: torch.Tensor) -> None:
        """Add a batch; under torch.distributed the batch statistics are pooled over all ranks."""
        batch = batch.reshape(-1, self.mean.shape[0]).double()
        moments = torch.cat([batch.new_tensor([batch.shape[0]]), batch.sum(0), batch.pow(2).sum(0)])
        moments = all_reduce_sum(moments)  # identical statistics on every rank
        count, total, total_sq = moments[0], moments[1 : 1 + batch.shape[1]], moments[1 + batch.shape[1] :]
        batch_mean = total / count
        self.merge(batch_mean, (total_sq / count - batch_mean.pow(2)).clamp_min(0.0), count.item())

    @torch.no_grad()
    def merge(self, batch_mean: torch.Tensor, batch_var: torch.Tensor, batch_count: float) -> None:
        """Combine stored statistics with another batch's (Chan et al. parallel algorithm)."""
        mean, var, count = self.mean.double(), self.var.double(), self.count
        total = count + batch_count
        delta = batch_mean.double() - mean
        new_mean = mean + delta * batch_count / total
        m2 = var * count + batch_var.double() * batch_count + delta.pow(2) * count * batch_count / total
        self.mean.copy_(new_mean.float())
        self.var.copy_((m2 / total).float())
        self.count.copy_(total)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((x - self.mean) / torch.sqrt(self.var + self.epsilon)).clamp(-self.clip, self.clip)


class ObsNormalization:
    """Policy mixin: optional running normalisation of the observation (its ``key`` entry for dicts).

    Call :meth:`init_normalizer` in ``__init__``; the statistics live in ``self.normalizer``.
    """

    normalizer: Optional[RunningMeanStd]
    normalize_key: str

    def init_normalizer(self, enabled: bool, obs_space: gym.Space, key: str) -> None:
        self.normalize_key = key
        self.normalizer = None
        if enabled:
            space = obs_space[key] if isinstance(obs_space, gym.spaces.Dict) else obs_space
            self.normalizer = RunningMeanStd(int(np.prod(space.shape)))

    def normalize_obs(self, obs: Obs) -> Obs:
        if self.normalizer is None:
            return obs
        if isinstance(obs, dict):
            return {**obs, self.normalize_key: self.normalizer(obs[self.normalize_key])}
        return self.normalizer(obs)

    def update_normalizer(self, obs: Obs) -> None:
        if self.normalizer is not None:
            self.normalizer.update(obs[self.normalize_key] if isinstance(obs, dict) else obs)
