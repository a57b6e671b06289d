"""Algorithms: the ``Algorithm`` interface, the buffers, GAE and the registered ``ppo`` and ``sac``."""
from embodireward.algos.base import Algorithm
from embodireward.algos.gae import compute_gae
from embodireward.algos.ppo import PPO
from embodireward.algos.replay_buffer import ReplayBuffer
from embodireward.algos.rollout_buffer import RolloutBuffer
from embodireward.algos.sac import SAC

__all__ = ["Algorithm", "PPO", "SAC", "ReplayBuffer", "RolloutBuffer", "compute_gae"]
