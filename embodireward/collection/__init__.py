"""Reward-model data collection during RL training (registered as a trainer callback)."""
from embodireward.collection.reward_data import RewardDataCollection

__all__ = ["RewardDataCollection"]
