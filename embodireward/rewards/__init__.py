"""Learned reward models: success classifiers over camera images, their checkpoints and training.

Importing this package registers the built-in models (``resnet_reward``, ``vit_reward``, ``video_reward``).
"""
from embodireward.rewards import resnet, video, vit  # noqa: F401  (run the @register_reward_model decorators)
from embodireward.rewards.base import BaseImageRewardModel, BaseRewardModel, BaseVideoRewardModel
from embodireward.rewards.checkpoint import RewardCheckpointError, check_env_compatibility, load_reward_model, save_reward_model

__all__ = [
    "BaseRewardModel",
    "BaseImageRewardModel",
    "BaseVideoRewardModel",
    "RewardCheckpointError",
    "check_env_compatibility",
    "load_reward_model",
    "save_reward_model",
]
