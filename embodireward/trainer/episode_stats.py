"""Per-env episode bookkeeping: returns, lengths, success, reward components."""
from __future__ import annotations

from collections import defaultdict
from typing import Dict, Optional, Union

import torch

from embodireward.utils.distributed import all_reduce_sum


EPISODE_KEYS = ("episode/return", "episode/env_return", "episode/length", "episode/success_once", "episode/success_at_end")


class EpisodeStats:
    """Accumulates per-step data and finished-episode results between two ``summary()`` calls.

    ``summary()`` averages over everything recorded since the last call, pooled over all
    distributed ranks, so every rank gets the same numbers and rank 0 logs them.
    """

    def __init__(self, num_envs: int, device: torch.device):
        self.return_ = torch.zeros(num_envs, device=device)  # the reward PPO trains on
        self.env_return = torch.zeros(num_envs, device=device)
        self.length = torch.zeros(num_envs, device=device)
        self.success_once = torch.zeros(num_envs, dtype=torch.bool, device=device)
        self._sums: Dict[str, Union[float, torch.Tensor]] = defaultdict(float)
        self._counts: Dict[str, float] = defaultdict(float)
        self._reset_window()

    def _reset_window(self) -> None:
        # Episode keys always exist (count 0 when no episode ended), so every rank reduces
        # tensors of the same length.
        self._sums.clear()
        self._counts.clear()
        for key in EPISODE_KEYS:
            self._add(key, 0.0, 0.0)

    def _add(self, key: str, total: Union[float, torch.Tensor], count: float) -> None:
        self._sums[key] += total
        self._counts[key] += count

    @torch.no_grad()
    def record(self, reward: torch.Tensor, env_reward: torch.Tensor, terminated: torch.Tensor, truncated: torch.Tensor,
               success: Optional[torch.Tensor], info: Dict) -> None:
        num_envs = reward.shape[0]
        self.return_ += reward
        self.env_return += env_reward
        self.length += 1
        for group in ("rewards", "metrics"):
            for key, value in info.get(group, {}).items():
                # a tensor sum, not .item(): no device sync per key per step; summary() converts once
                self._add(f"{group}/{key}", value.float().sum(), num_envs)
        if success is not None:
            self.success_once |= success
        done = terminated | truncated
        if done.any():
            n = done.sum().item()
            self._add("episode/return", self.return_[done].sum().item(), n)
            self._add("episode/env_return", self.env_return[done].sum().item(), n)
            self._add("episode/length", self.length[done].sum().item(), n)
            if success is not None:
                self._add("episode/success_once", self.success_once[done].float().sum().item(), n)
                self._add("episode/success_at_end", success[done].float().sum().item(), n)
            self.return_[done] = 0
            self.env_return[done] = 0
            self.length[done] = 0
            self.success_once[done] = False

    def state_dict(self) -> Dict[str, object]:
        """Episodes in progress and the open window, for an exact resume."""
        return {
            "return": self.return_.clone(), "env_return": self.env_return.clone(), "length": self.length.clone(),
            "success_once": self.success_once.clone(),
            "sums": {k: v.clone() if isinstance(v, torch.Tensor) else float(v) for k, v in self._sums.items()},
            "counts": dict(self._counts),
        }

    def load_state_dict(self, state: Dict[str, object]) -> None:
        for name, tensor in (("return", self.return_), ("env_return", self.env_return), ("length", self.length),
                             ("success_once", self.success_once)):
            tensor.copy_(state[name])
        self._sums.clear()
        self._counts.clear()
        self._sums.update({k: v.to(self.return_.device) if isinstance(v, torch.Tensor) else float(v) for k, v in state["sums"].items()})
        self._counts.update(state["counts"])

    def summary(self) -> Dict[str, float]:
        """Means since the last call (pooled over ranks); keys with no data are left out."""
        keys = sorted(self._sums)
        packed = torch.tensor([float(self._sums[k]) for k in keys] + [self._counts[k] for k in keys], dtype=torch.float64)
        packed = all_reduce_sum(packed)
        sums, counts = packed[: len(keys)], packed[len(keys):]
        self._reset_window()
        return {k: (sums[i] / counts[i]).item() for i, k in enumerate(keys) if counts[i] > 0}
