"""The interface every algorithm implements (EmbodiChain's algorithm interface).

The trainer is the same for every algorithm. Each iteration it calls::

    obs = algo.collect_rollout(obs, runtime.rollout_steps, step_env)   # act in the envs, store
    metrics = algo.update(progress)                                     # learn from what is stored

An on-policy algorithm (PPO) fills a rollout buffer and trains on it; an off-policy one (SAC)
adds the transitions to its replay buffer and makes ``utd x transitions`` gradient steps from
it. Everything else (env stepping with frames, the reward-model hook, callbacks, evaluation,
logging, checkpoints, torchrun) is the trainer's and works for both.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable, Dict, Optional, Tuple

import gymnasium as gym
import torch

from embodireward.envs.base import Obs
from embodireward.utils.precision import Precision

# ``step_env(actions) -> (next_obs, reward, terminated, truncated, info)``: the trainer's env step,
# which also renders requested frames, applies the reward-model hook and runs callbacks. The
# reward it returns is the one to learn from (the learned reward when the hook is on).
StepFn = Callable[[torch.Tensor], Tuple[Obs, torch.Tensor, torch.Tensor, torch.Tensor, Dict[str, Any]]]


class Algorithm(ABC):
    """Base class of registered algorithms, built as ``cls(cfg, policy, device, precision, compile)``.

    ``cfg`` is the algorithm's ``Config`` dataclass, ``precision`` a
    :class:`~embodireward.utils.precision.Precision` (``runtime.precision``), ``compile`` is
    ``runtime.compile``. The algorithm owns its buffer and its optimizers, and under torchrun
    averages its gradients over ranks itself (e.g. with ``utils.distributed.data_parallel``).
    ``policy_methods`` names the policy methods it calls; a policy lacking one is a config error.
    """

    policy_methods: Tuple[str, ...] = ("act",)
    # state_dict() entries too large to repeat in every checkpoint (a replay buffer): kept in
    # latest.pt, the one a resume continues from, and left out of best.pt and iter_*.pt
    resume_only_state: Tuple[str, ...] = ()

    def __init__(self, cfg: Any, policy: torch.nn.Module, device: torch.device,
                 precision: Optional[Precision] = None, compile: bool = False):
        self.cfg = cfg
        self.policy = policy
        self.device = device
        self.precision = precision or Precision("fp32", device)
        self.compile = compile

    @abstractmethod
    def initialize_buffer(self, num_steps: int, num_envs: int, obs_space: gym.Space, action_space: gym.spaces.Box) -> None:
        """Allocate storage for ``num_steps`` steps of ``num_envs`` envs per iteration.

        Raise ``ConfigError`` (before allocating) when the settings cannot work or will not fit in memory.
        """

    @abstractmethod
    def collect_rollout(self, obs: Obs, num_steps: int, step_env: StepFn) -> Obs:
        """Run ``num_steps`` env steps through ``step_env`` and store them; return the latest obs."""

    @abstractmethod
    def update(self, progress: float) -> Dict[str, float]:
        """Improve the policy from the stored data; return scalars to log. ``progress`` in [0, 1] drives schedules."""

    def state_dict(self) -> Dict[str, Any]:
        """Optimizers, generators, counters (and buffers worth keeping): saved in every checkpoint."""
        return {}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        pass
