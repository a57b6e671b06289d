"""Vision-transformer success (or K-class) classifier: torchvision's ``VisionTransformer``, small, from scratch.

Each camera's image is cut into ``patch_size`` x ``patch_size`` patches, embedded, and run through
``num_layers`` pre-norm transformer blocks of width ``embed_dim`` (torchvision's ``hidden_dim``)
with a class token (Dosovitskiy et al., 2021). The class token's final state is the camera's
feature; features of all cameras are concatenated and classified by the same head as
``resnet_reward``. At 64x64 with patch 8 a camera is 64 tokens plus the class token.

Weights start random: no small ViT of this shape has downloadable weights, and nothing is
downloaded here anyway. ``pretrained_path`` loads a local state dict of one camera's encoder
(e.g. from an earlier run's ``best_model.safetensors`` keys ``encoders.encoders.<cam>.*``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

from torch import nn
from torchvision.models.vision_transformer import VisionTransformer

from embodireward.config import config_error
from embodireward.registry import register_reward_model
from embodireward.rewards.base import ImageRewardConfig
from embodireward.rewards.encoders import CameraClassifier, load_encoder_weights


@dataclass
class ViTRewardConfig(ImageRewardConfig):
    patch_size: int = 8
    num_layers: int = 4
    num_heads: int = 3
    embed_dim: int = 192  # token width (torchvision's hidden_dim); a multiple of num_heads
    mlp_dim: int = 768  # width of each block's MLP
    encoder_dropout: float = 0.0
    attention_dropout: float = 0.0
    hidden_dim: int = 256  # head, as in resnet_reward
    dropout: float = 0.1  # head
    head_activation: Literal["relu", "tanh"] = "relu"
    freeze_encoder: bool = False
    pretrained_path: Optional[str] = None  # local encoder weights (.safetensors / .pt state dict of one camera's ViT)

    def validate(self, path: str) -> None:
        super().validate(path)
        height, width = self.image_size
        if height != width:
            raise config_error(path, "image_size", f"the ViT needs square images, got {self.image_size}")
        if self.patch_size < 1 or height % self.patch_size:
            raise config_error(path, "patch_size", f"must be >= 1 and divide the image size {height}, got {self.patch_size}")
        for key in ("num_layers", "num_heads", "embed_dim", "mlp_dim", "hidden_dim"):
            if getattr(self, key) < 1:
                raise config_error(path, key, f"must be >= 1, got {getattr(self, key)}")
        if self.embed_dim % self.num_heads:
            raise config_error(path, "embed_dim", f"must be a multiple of num_heads ({self.num_heads}), got {self.embed_dim}")
        for key in ("encoder_dropout", "attention_dropout", "dropout"):
            if not 0.0 <= getattr(self, key) < 1.0:
                raise config_error(path, key, f"must be in [0, 1), got {getattr(self, key)}")
        if self.pretrained_path and not Path(self.pretrained_path).is_file():
            raise config_error(path, "pretrained_path", f"encoder weights file '{self.pretrained_path}' not found "
                                                        "(ViT weights are never downloaded: give a local file)")


def build_vit_encoder(cfg: ViTRewardConfig) -> nn.Module:
    """``VisionTransformer`` without its classification head: float ``[N, 3, S, S]`` -> ``[N, embed_dim]``."""
    encoder = VisionTransformer(image_size=cfg.image_size[0], patch_size=cfg.patch_size, num_layers=cfg.num_layers,
                                num_heads=cfg.num_heads, hidden_dim=cfg.embed_dim, mlp_dim=cfg.mlp_dim,
                                dropout=cfg.encoder_dropout, attention_dropout=cfg.attention_dropout)
    encoder.heads = nn.Identity()  # the class token's state is the feature
    if cfg.pretrained_path:
        load_encoder_weights(encoder, Path(cfg.pretrained_path), f"ViT ({cfg.num_layers} layers, width {cfg.embed_dim}, "
                             f"patch {cfg.patch_size}, {cfg.image_size[0]}px)", ignored_prefixes=("heads.",))
    return encoder


@register_reward_model("vit_reward")
class ViTRewardModel(CameraClassifier):
    """Small vision transformer (torchvision) success classifier over one or more camera images, trained from scratch."""

    Config = ViTRewardConfig

    def __init__(self, cfg: ViTRewardConfig):
        super().__init__(cfg, lambda: build_vit_encoder(cfg), cfg.embed_dim)
