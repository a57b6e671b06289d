"""ResNet success classifier (HIL-SERL / RLinf style); its encoder is reused by the video model.

One ResNet encoder per camera (fc removed, 512-d features), features concatenated, then the head
``Linear -> LayerNorm -> Tanh|ReLU -> Dropout -> Linear(num_classes)`` gives the logits.
Parameters are kept channels_last: oneDNN / cuDNN convolutions run fastest on NHWC memory, which
is also the layout envs render frames in (see ``rewards.base.to_float_nchw``).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

import torch
import torchvision
from torch import nn
from torchvision.models.resnet import BasicBlock, ResNet

from embodireward.config import ConfigError, config_error
from embodireward.registry import register_reward_model
from embodireward.rewards.base import ImageRewardConfig
from embodireward.rewards.encoders import CameraClassifier, load_encoder_weights

ENCODER_DIM = 512  # BasicBlock ResNets (10/18/34) end in 512 channels
TORCHVISION_WEIGHTS = {
    "resnet18": torchvision.models.ResNet18_Weights.IMAGENET1K_V1,
    "resnet34": torchvision.models.ResNet34_Weights.IMAGENET1K_V1,
}


@dataclass
class ResNetRewardConfig(ImageRewardConfig):
    arch: Literal["resnet10", "resnet18", "resnet34"] = "resnet10"
    hidden_dim: int = 256
    dropout: float = 0.1
    head_activation: Literal["relu", "tanh"] = "relu"
    freeze_encoder: bool = False
    pretrained: bool = False  # torchvision ImageNet weights, only from the local torch hub cache
    pretrained_path: Optional[str] = None  # local encoder weights (.safetensors / .pt state dict)

    def validate(self, path: str) -> None:
        super().validate(path)
        if self.hidden_dim < 1:
            raise config_error(path, "hidden_dim", f"must be >= 1, got {self.hidden_dim}")
        if not 0.0 <= self.dropout < 1.0:
            raise config_error(path, "dropout", f"must be in [0, 1), got {self.dropout}")
        if self.pretrained and self.pretrained_path:
            raise config_error(path, "pretrained_path", "set either pretrained or pretrained_path, not both")
        if self.pretrained_path and not Path(self.pretrained_path).is_file():
            raise config_error(path, "pretrained_path", f"encoder weights file '{self.pretrained_path}' not found")
        if self.pretrained:
            try:
                imagenet_weights_file(self.arch)
            except ValueError as exc:
                raise config_error(path, "pretrained", str(exc)) from None


def imagenet_weights_file(arch: str) -> Path:
    """Where torchvision would cache ``arch``'s ImageNet weights; raises ValueError if not there."""
    if arch not in TORCHVISION_WEIGHTS:
        raise ValueError(f"torchvision has no ImageNet weights for {arch}; use pretrained_path with a local weights file")
    url = TORCHVISION_WEIGHTS[arch].url
    path = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
    if not path.is_file():
        raise ValueError(
            f"ImageNet weights for {arch} are not in the local torch hub cache ({path}) and cannot be "
            f"downloaded here; put the file there or set pretrained_path to a local encoder weights file"
        )
    return path


def build_resnet_encoder(arch: str, pretrained: bool = False, pretrained_path: Optional[str] = None) -> nn.Module:
    """ResNet without its fc layer: float ``[N, 3, H, W]`` -> ``[N, 512]``."""
    if arch == "resnet10":
        encoder = ResNet(BasicBlock, [1, 1, 1, 1])
    else:
        encoder = getattr(torchvision.models, arch)(weights=None)
    if pretrained:
        try:
            load_encoder_weights(encoder, imagenet_weights_file(arch), arch, ignored_prefixes=("fc.",), key="pretrained")
        except ValueError as exc:
            raise ConfigError("pretrained", str(exc)) from None
    elif pretrained_path:
        load_encoder_weights(encoder, Path(pretrained_path), arch, ignored_prefixes=("fc.",))
    encoder.fc = nn.Identity()
    return encoder


@register_reward_model("resnet_reward")
class ResNetRewardModel(CameraClassifier):
    """ResNet-10/18/34 success (or K-class) classifier over one or more camera images."""

    Config = ResNetRewardConfig

    def __init__(self, cfg: ResNetRewardConfig):
        super().__init__(cfg, lambda: build_resnet_encoder(cfg.arch, cfg.pretrained, cfg.pretrained_path), ENCODER_DIM)
        self.to(memory_format=torch.channels_last)

    def for_inference(self) -> "ResNetRewardModel":
        """An eval-mode copy with every BatchNorm folded into the convolution before it.

        In eval mode ``BN(conv(x)) = conv'(x)`` with ``W' = W gamma / sqrt(var + eps)`` and
        ``b' = (b - mean) gamma / sqrt(var + eps) + beta``, so one pass over the activations per
        layer disappears (BatchNorm was ~15% of the hook's inference time in the profile).
        """
        from torch.fx.experimental.optimization import fuse

        folded = copy.deepcopy(self).eval()
        for key, encoder in folded.encoders.encoders.items():
            folded.encoders.encoders[key] = fuse(encoder)
        return folded.to(memory_format=torch.channels_last)
