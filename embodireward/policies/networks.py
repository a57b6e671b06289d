"""Network blocks built from JSON: ``{"type": "mlp", ...}`` and ``{"type": "cnn", ...}``."""
from __future__ import annotations

from typing import Dict, List, Union

import gymnasium as gym
import numpy as np
import torch
from torch import nn

ACTIVATIONS: Dict[str, type] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "leaky_relu": nn.LeakyReLU,
}


def orthogonal_init(layer: nn.Module, gain: float = float(np.sqrt(2)), bias: float = 0.0) -> nn.Module:
    """Orthogonal weights, constant bias (the PPO implementation-details default)."""
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.constant_(layer.bias, bias)
    return layer


def mlp(in_dim: int, hidden_sizes: List[int], activation: str, layer_norm: bool = False) -> nn.Sequential:
    """Linear -> [LayerNorm] -> activation per hidden size (LayerNorm as in ManiSkill's SAC critics)."""
    layers: List[nn.Module] = []
    for size in hidden_sizes:
        layers += [orthogonal_init(nn.Linear(in_dim, size)), *([nn.LayerNorm(size)] if layer_norm else []), ACTIVATIONS[activation]()]
        in_dim = size
    return nn.Sequential(*layers)


def _space_dim(space: gym.Space) -> int:
    return int(np.prod(space.shape))


class MLPEncoder(nn.Module):
    """Flat state vector -> features. Reads ``obs["state"]`` when the observation is a dict."""

    def __init__(self, obs_space: gym.Space, hidden_sizes: List[int], activation: str, state_key: str = "state"):
        super().__init__()
        self.state_key = state_key if isinstance(obs_space, gym.spaces.Dict) else None
        space = obs_space[state_key] if self.state_key else obs_space
        if self.state_key and state_key not in obs_space.spaces:
            raise ValueError(f"mlp block reads observation key '{state_key}' but the env provides {list(obs_space.spaces)}")
        self.net = mlp(_space_dim(space), hidden_sizes, activation)
        self.out_dim = hidden_sizes[-1] if hidden_sizes else _space_dim(space)

    def forward(self, obs) -> torch.Tensor:
        x = obs[self.state_key] if self.state_key else obs
        return self.net(x.flatten(1))


class CNNEncoder(nn.Module):
    """uint8 image ``[B, H, W, C]`` (plus an optional state vector) -> features (Nature-CNN style)."""

    def __init__(self, obs_space: gym.Space, conv_layers: List[List[int]], hidden_sizes: List[int], activation: str,
                 image_key: str = "rgb", state_key: Union[str, None] = "state"):
        super().__init__()
        if not isinstance(obs_space, gym.spaces.Dict) or image_key not in obs_space.spaces:
            keys = list(obs_space.spaces) if isinstance(obs_space, gym.spaces.Dict) else "a flat state vector"
            raise ValueError(f"cnn block needs an image observation '{image_key}', but the env provides {keys}; set env obs_mode to include rgb")
        self.image_key = image_key
        self.state_key = state_key if state_key and state_key in obs_space.spaces else None
        height, width, channels = obs_space[image_key].shape
        convs: List[nn.Module] = []
        in_ch = channels
        for out_ch, kernel, stride in conv_layers:
            convs += [orthogonal_init(nn.Conv2d(in_ch, out_ch, kernel, stride)), ACTIVATIONS[activation]()]
            in_ch = out_ch
        self.conv = nn.Sequential(*convs, nn.Flatten())
        with torch.no_grad():
            conv_dim = self.conv(torch.zeros(1, channels, height, width)).shape[1]
        state_dim = _space_dim(obs_space[self.state_key]) if self.state_key else 0
        self.head = mlp(conv_dim + state_dim, hidden_sizes, activation)
        self.out_dim = hidden_sizes[-1] if hidden_sizes else conv_dim + state_dim

    def forward(self, obs) -> torch.Tensor:
        image = obs[self.image_key].permute(0, 3, 1, 2).float() / 255.0
        features = self.conv(image)
        if self.state_key:
            features = torch.cat([features, obs[self.state_key].flatten(1)], dim=1)
        return self.head(features)


def build_encoder(block, obs_space: gym.Space) -> nn.Module:
    """Build the encoder a ``NetworkConfig`` block describes."""
    if block.type == "mlp":
        return MLPEncoder(obs_space, block.hidden_sizes, block.activation, block.state_key or "state")
    if block.type == "cnn":
        return CNNEncoder(obs_space, block.conv_layers, block.hidden_sizes, block.activation, block.image_key, block.state_key)
    raise ValueError(f"unknown network type {block.type!r}; expected 'mlp' or 'cnn'")
