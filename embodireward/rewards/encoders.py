"""Pieces every image reward model shares: one encoder per camera, the classifier head, local weights.

A model encodes each camera's image with its own encoder (``{cam: [N, 3, H, W]}`` ->
``{cam: [N, F]}``), concatenates the features and classifies them with
``Linear -> LayerNorm -> Tanh|ReLU -> Dropout -> Linear(num_classes)``. Pretrained encoder weights
come only from local files (nothing is downloaded).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, Iterable, Sequence

import torch
from torch import nn

from embodireward.config import ConfigError
from embodireward.rewards.base import ROBOT_STATE_KEY, BaseImageRewardModel, Images


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


def load_encoder_weights(encoder: nn.Module, path: Path, what: str, ignored_prefixes: Sequence[str] = (),
                         key: str = "pretrained_path") -> None:
    """Load a local state dict into ``encoder`` (keys under ``ignored_prefixes``, e.g. a classifier, skipped).

    Any problem is a one-line ConfigError on ``key`` naming the file: not found, unreadable, or
    not a ``what`` state dict (missing / unexpected / wrong-shape keys).
    """
    if not path.is_file():
        raise ConfigError(key, f"encoder weights file '{path}' not found")
    try:
        state = {k: v for k, v in read_state_dict(path).items() if not k.startswith(tuple(ignored_prefixes))}
    except ValueError as exc:
        raise ConfigError(key, str(exc)) from None
    expected = encoder.state_dict()
    missing = sorted(k for k in set(expected) - set(state) if not k.startswith(tuple(ignored_prefixes)))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = sorted(k for k in state if k in expected and state[k].shape != expected[k].shape)
    if missing or unexpected or wrong_shape:
        raise ConfigError(key, f"'{path}' is not a {what} state dict (missing {missing[:3]}, unexpected {unexpected[:3]}, "
                               f"wrong shape {wrong_shape[:3]})")
    encoder.load_state_dict(state, strict=False)


def build_head(in_dim: int, hidden_dim: int, activation: str, dropout: float, num_classes: int = 1) -> nn.Sequential:
    """Features ``[N, in_dim]`` -> logits: ``[N]`` for ``num_classes`` 1, else ``[N, num_classes]``."""
    act = nn.Tanh() if activation == "tanh" else nn.ReLU()
    layers = [nn.Linear(in_dim, hidden_dim), nn.LayerNorm(hidden_dim), act, nn.Dropout(dropout), nn.Linear(hidden_dim, num_classes)]
    if num_classes == 1:
        layers.append(nn.Flatten(start_dim=-2))  # [N, 1] -> [N]: one logit per sample
    return nn.Sequential(*layers)


class CameraEncoders(nn.Module):
    """One encoder per camera; ``{cam: [N, 3, H, W]}`` -> ``{cam: [N, F]}``.

    ``frozen`` encoders get no gradients and stay in eval mode (BatchNorm statistics, dropout).
    """

    def __init__(self, camera_keys: Iterable[str], build_encoder: Callable[[], nn.Module], frozen: bool = False):
        super().__init__()
        self.camera_keys = list(camera_keys)
        self.frozen = frozen
        self.encoders = nn.ModuleDict({key: build_encoder() for key in self.camera_keys})
        if self.frozen:
            self.encoders.requires_grad_(False)

    def train(self, mode: bool = True) -> "CameraEncoders":
        return super().train(mode and not self.frozen)

    def forward(self, images: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        return {key: self.encoders[key](images[key]) for key in self.camera_keys}


ROBOT_STATE_FEATURES = 64
STD_FLOOR = 1e-3  # the smallest scale a robot-state value is divided by


class RobotStateEncoder(nn.Module):
    """Robot state ``[N, D]`` -> features ``[N, ROBOT_STATE_FEATURES]``: standardised, then ``Linear -> LayerNorm -> ReLU``.

    The standardisation (``mean``, ``std``) is fitted once on the training frames
    (:meth:`fit_normalization`) and saved with the weights, so inference scales like training.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))
        self.net = nn.Sequential(nn.Linear(dim, ROBOT_STATE_FEATURES), nn.LayerNorm(ROBOT_STATE_FEATURES), nn.ReLU())

    @torch.no_grad()
    def fit_normalization(self, states: torch.Tensor) -> None:
        # a joint that never moved in the data keeps its scale (std floor) instead of blowing up
        self.mean.copy_(states.float().mean(dim=0))
        self.std.copy_(states.float().std(dim=0, unbiased=False).clamp(min=STD_FLOOR))

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return self.net((states.float() - self.mean) / self.std)


class CameraClassifier(BaseImageRewardModel):
    """Single-frame model: an encoder per camera, features concatenated, the classifier head on top.

    Subclasses pass how to build one camera's encoder and its feature width; ``cfg`` has the
    head keys ``hidden_dim``, ``head_activation``, ``dropout`` and ``freeze_encoder``. With
    ``robot_state_dim`` > 0 the robot state's features (:class:`RobotStateEncoder`) join the
    cameras' before the head.
    """

    def __init__(self, cfg, build_encoder: Callable[[], nn.Module], feature_dim: int):
        super().__init__(cfg)
        self.encoders = CameraEncoders(cfg.camera_keys, build_encoder, cfg.freeze_encoder)
        self.robot_state_encoder = RobotStateEncoder(cfg.robot_state_dim) if cfg.robot_state_dim else None
        state_features = ROBOT_STATE_FEATURES if cfg.robot_state_dim else 0
        self.head = build_head(feature_dim * len(cfg.camera_keys) + state_features, cfg.hidden_dim, cfg.head_activation, cfg.dropout, cfg.num_classes)

    def preprocess(self, observations: Images) -> Dict[str, torch.Tensor]:
        inputs = self.preprocess_images(observations)
        if self.robot_state_encoder is not None:
            state = observations.get(ROBOT_STATE_KEY) if isinstance(observations, dict) else None
            dim = self.cfg.robot_state_dim
            if state is None or state.dim() != 2 or state.shape[-1] != dim:
                got = "none" if state is None else f"shape {tuple(state.shape)}"
                raise ValueError(f"this model reads the robot state: pass '{ROBOT_STATE_KEY}' [B, {dim}] beside the images, got {got}")
            inputs[ROBOT_STATE_KEY] = state.to(self.device, non_blocking=True)
        return inputs

    def forward(self, inputs: Dict[str, torch.Tensor]) -> torch.Tensor:
        features = list(self.encoders(inputs).values())
        if self.robot_state_encoder is not None:
            features.append(self.robot_state_encoder(inputs[ROBOT_STATE_KEY]))
        return self.head(torch.cat(features, dim=-1))
