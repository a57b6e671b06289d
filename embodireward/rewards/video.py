"""Multi-frame success classifier: a shared ResNet encoder over ``k`` sampled frames, pooled over time.

Each camera's frames are encoded independently (the same encoder for all frames of that camera),
pooled over time (mean, or a GRU whose last state sees the frame order), concatenated across
cameras and classified by the same head as ``resnet_reward`` (binary or ``num_classes`` classes).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Literal

import torch
from torch import nn

from embodireward.config import config_error
from embodireward.registry import register_reward_model
from embodireward.rewards.base import BaseVideoRewardModel
from embodireward.rewards.encoders import CameraEncoders, build_head
from embodireward.rewards.resnet import ENCODER_DIM, ResNetRewardConfig, build_resnet_encoder


@dataclass
class VideoRewardConfig(ResNetRewardConfig):
    num_frames: int = 4  # k frames per sample; training windows are the k frames ending at a labelled frame
    frame_strategy: Literal["uniform", "last", "first_last", "random"] = "last"  # how k frames are picked from a longer clip
    temporal_pooling: Literal["mean", "gru"] = "gru"

    def validate(self, path: str) -> None:
        super().validate(path)
        if self.num_frames < 1:
            raise config_error(path, "num_frames", f"must be >= 1, got {self.num_frames}")
        if self.robot_state_dim:
            raise config_error(path, "robot_state_dim", "clip models read images only; use an image model (resnet_reward, vit_reward) for robot state")


@register_reward_model("video_reward")
class VideoRewardModel(BaseVideoRewardModel):
    """Multi-frame ResNet classifier over clips of k frames with mean or GRU temporal pooling."""

    Config = VideoRewardConfig

    def __init__(self, cfg: VideoRewardConfig):
        super().__init__(cfg)
        self.encoders = CameraEncoders(cfg.camera_keys, lambda: build_resnet_encoder(cfg.arch, cfg.pretrained, cfg.pretrained_path),
                                       cfg.freeze_encoder)
        self.temporal = nn.GRU(ENCODER_DIM, ENCODER_DIM, batch_first=True) if cfg.temporal_pooling == "gru" else None
        self.head = build_head(ENCODER_DIM * len(cfg.camera_keys), cfg.hidden_dim, cfg.head_activation, cfg.dropout, cfg.num_classes)
        self.to(memory_format=torch.channels_last)

    def pool(self, features: torch.Tensor) -> torch.Tensor:
        """``[B, k, F]`` -> ``[B, F]``."""
        if self.temporal is None:
            return features.mean(dim=1)
        _, last_hidden = self.temporal(features)
        return last_hidden[-1]

    def forward(self, clips: Dict[str, torch.Tensor]) -> torch.Tensor:
        batch, k = next(iter(clips.values())).shape[:2]
        frames = {key: clip.flatten(0, 1) for key, clip in clips.items()}
        pooled = [self.pool(f.view(batch, k, -1)) for f in self.encoders(frames).values()]
        return self.head(torch.cat(pooled, dim=-1))
