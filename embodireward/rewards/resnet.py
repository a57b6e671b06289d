"""ResNet success classifier (HIL-SERL / RLinf style) and the encoder pieces the video model reuses.

One ResNet encoder per camera (fc removed, 512-d features), features concatenated, then the head
``Linear -> LayerNorm -> Tanh|ReLU -> Dropout -> Linear(1)`` gives a logit.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Literal, Optional

import torch
import torchvision
from torch import nn
from torchvision.models.resnet import BasicBlock, ResNet

from embodireward.config import ConfigError, config_error
from embodireward.registry import register_reward_model
from embodireward.rewards.base import BaseImageRewardModel

ENCODER_DIM = 512  # BasicBlock ResNets (10/18/34) end in 512 channels
TORCHVISION_WEIGHTS = {
    "resnet18": torchvision.models.ResNet18_Weights.IMAGENET1K_V1,
    "resnet34": torchvision.models.ResNet34_Weights.IMAGENET1K_V1,
}


@dataclass
class ResNetRewardConfig:
    arch: Literal["resnet10", "resnet18", "resnet34"] = "resnet10"
    hidden_dim: int = 256
    dropout: float = 0.1
    head_activation: Literal["relu", "tanh"] = "relu"
    image_size: List[int] = field(default_factory=lambda: [64, 64])  # [H, W] the encoder sees
    camera_keys: List[str] = field(default_factory=lambda: ["top_camera"])  # one encoder per camera
    freeze_encoder: bool = False
    imagenet_norm: bool = True
    pretrained: bool = False  # torchvision ImageNet weights, only from the local torch hub cache
    pretrained_path: Optional[str] = None  # local encoder weights (.safetensors / .pt state dict)

    def validate(self, path: str) -> None:
        if self.hidden_dim < 1:
            raise config_error(path, "hidden_dim", f"must be >= 1, got {self.hidden_dim}")
        if not 0.0 <= self.dropout < 1.0:
            raise config_error(path, "dropout", f"must be in [0, 1), got {self.dropout}")
        if len(self.image_size) != 2 or min(self.image_size) < 8:
            raise config_error(path, "image_size", f"expected [H, W] with both >= 8, got {self.image_size}")
        if not self.camera_keys or len(set(self.camera_keys)) != len(self.camera_keys):
            raise config_error(path, "camera_keys", f"expected a non-empty list of distinct camera keys, got {self.camera_keys}")
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


def read_state_dict(path: Path) -> Dict[str, torch.Tensor]:
    """A state dict from ``.safetensors`` or a torch ``.pt``/``.pth`` file; ValueError names the file."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"cannot read weights file '{path}': {type(exc).__name__}: {exc}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"weights file '{path}' does not hold a state dict of tensors")
    return state


def build_resnet_encoder(arch: str, pretrained: bool = False, pretrained_path: Optional[str] = None) -> nn.Module:
    """ResNet without its fc layer: float ``[N, 3, H, W]`` -> ``[N, 512]``."""
    if arch == "resnet10":
        encoder = ResNet(BasicBlock, [1, 1, 1, 1])
    else:
        encoder = getattr(torchvision.models, arch)(weights=None)
    weights_file = None
    if pretrained:
        try:
            weights_file = imagenet_weights_file(arch)
        except ValueError as exc:
            raise ConfigError("pretrained", str(exc)) from None
    elif pretrained_path:
        weights_file = Path(pretrained_path)
        if not weights_file.is_file():
            raise ConfigError("pretrained_path", f"encoder weights file '{weights_file}' not found")
    if weights_file is not None:
        try:
            state = {k: v for k, v in read_state_dict(weights_file).items() if not k.startswith("fc.")}
        except ValueError as exc:
            raise ConfigError("pretrained_path", str(exc)) from None
        missing, unexpected = encoder.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith("fc.")]
        if missing or unexpected:
            raise ConfigError(
                "pretrained_path",
                f"'{weights_file}' is not a {arch} state dict (missing {missing[:3]}, unexpected {unexpected[:3]})",
            )
    encoder.fc = nn.Identity()
    return encoder


def build_head(in_dim: int, hidden_dim: int, activation: str, dropout: float) -> nn.Sequential:
    """Features -> one logit per sample (``[N, 1]``)."""
    act = nn.Tanh() if activation == "tanh" else nn.ReLU()
    return nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.LayerNorm(hidden_dim), act, nn.Dropout(dropout), nn.Linear(hidden_dim, 1))


class CameraEncoders(nn.Module):
    """One ResNet encoder per camera; ``{cam: [N, 3, H, W]}`` -> ``{cam: [N, 512]}``."""

    def __init__(self, cfg: ResNetRewardConfig):
        super().__init__()
        self.camera_keys = list(cfg.camera_keys)
        self.frozen = cfg.freeze_encoder
        self.encoders = nn.ModuleDict(
            {key: build_resnet_encoder(cfg.arch, cfg.pretrained, cfg.pretrained_path) for key in self.camera_keys}
        )
        if self.frozen:
            self.encoders.requires_grad_(False)

    def train(self, mode: bool = True) -> "CameraEncoders":
        # A frozen encoder keeps its BatchNorm statistics too.
        return super().train(mode and not self.frozen)

    def forward(self, images: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        return {key: self.encoders[key](images[key]) for key in self.camera_keys}


@register_reward_model("resnet_reward")
class ResNetRewardModel(BaseImageRewardModel):
    """ResNet-10/18/34 binary success classifier over one or more camera images."""

    Config = ResNetRewardConfig

    def __init__(self, cfg: ResNetRewardConfig):
        super().__init__(cfg)
        self.encoders = CameraEncoders(cfg)
        self.head = build_head(ENCODER_DIM * len(cfg.camera_keys), cfg.hidden_dim, cfg.head_activation, cfg.dropout)

    def forward(self, images: Dict[str, torch.Tensor]) -> torch.Tensor:
        features = torch.cat(list(self.encoders(images).values()), dim=-1)
        return self.head(features).squeeze(-1)
