"""Algorithms: the ``Algorithm`` interface, ``RolloutBuffer``, GAE and the registered ``ppo``."""
from embodireward.algos.base import Algorithm
from embodireward.algos.gae import compute_gae
from embodireward.algos.ppo import PPO
from embodireward.algos.rollout_buffer import RolloutBuffer

__all__ = ["Algorithm", "PPO", "RolloutBuffer", "compute_gae"]
