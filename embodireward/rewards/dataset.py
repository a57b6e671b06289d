"""Reward-model samples: a train/val split by trajectory, frame windows for clip models, augmentation.

Train/val are split by trajectory, so frames of one episode never end up on both sides, and
stratified by class, so every class is in both.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch
from torch.utils.data import Dataset

from embodireward.config import config_error
from embodireward.rewards.base import ROBOT_STATE_KEY
from embodireward.rewards.data import RewardData


@dataclass
class AugmentConfig:
    """Training-only augmentation (torchvision.transforms.v2); validation images are never augmented."""

    enabled: bool = True
    shift_pad: int = 4  # random crop back to full size after padding by this many pixels (edge padding)
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.02

    def validate(self, path: str) -> None:
        for key in ("shift_pad", "brightness", "contrast", "saturation", "hue"):
            if getattr(self, key) < 0:
                raise config_error(path, key, f"must be >= 0, got {getattr(self, key)}")
        if self.hue > 0.5:
            raise config_error(path, "hue", f"must be <= 0.5, got {self.hue}")


def trajectory_classes(data: RewardData) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(ids, class)``: each trajectory id and the highest class any of its frames has."""
    ids, inverse = data.trajectory.unique(return_inverse=True)
    highest = torch.zeros(len(ids), dtype=torch.long).scatter_reduce(0, inverse, data.labels, "amax")
    return ids, highest


def split_by_trajectory(data: RewardData, val_split: float, seed: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Frame indices ``(train, val)``; whole trajectories go to one side.

    Stratified: trajectories are grouped by their highest class (for success data: those with
    any success frame, and the others) and each group is split separately, every group with >= 2
    trajectories giving at least one to validation.
    """
    generator = torch.Generator().manual_seed(seed)
    ids, highest = trajectory_classes(data)
    val_ids = []
    for k in range(data.num_classes):
        members = ids[highest == k]
        n_val = min(len(members) - 1, max(1, round(val_split * len(members)))) if len(members) >= 2 else 0
        val_ids.append(members[torch.randperm(len(members), generator=generator)[:n_val]])
    is_val = torch.isin(data.trajectory, torch.cat(val_ids))
    return torch.nonzero(~is_val).squeeze(1), torch.nonzero(is_val).squeeze(1)


def window_indices(data: RewardData, index: torch.Tensor, k: int) -> torch.Tensor:
    """``[M, k]`` frame indices: the ``k`` frames ending at each frame, repeating its trajectory's first frame."""
    offsets = torch.arange(-(k - 1), 1)
    start = index - data.step[index]  # frames of a trajectory are contiguous
    return torch.maximum(index[:, None] + offsets, start[:, None])


def build_augmentation(cfg: AugmentConfig, image_size: Sequence[int]) -> Optional[Callable[[torch.Tensor], torch.Tensor]]:
    """uint8 ``[..., 3, H, W]`` -> augmented; one draw per call, so all frames of a clip move together."""
    from torchvision.transforms import v2

    if not cfg.enabled:
        return None
    steps = []
    if cfg.shift_pad > 0:
        steps.append(v2.RandomCrop(tuple(image_size), padding=cfg.shift_pad, padding_mode="edge"))
    if max(cfg.brightness, cfg.contrast, cfg.saturation, cfg.hue) > 0:
        steps.append(v2.ColorJitter(cfg.brightness, cfg.contrast, cfg.saturation, cfg.hue))
    return v2.Compose(steps) if steps else None


class RewardDataset(Dataset):
    """Samples of ``data`` at ``index``: ``({cam: uint8 [3, H, W]} or [k, 3, H, W] windows, class label)``.

    ``window=k`` makes each sample the ``k`` frames ending at the indexed frame (video models);
    ``augment`` (training only) draws one random augmentation per sample and camera;
    ``robot_state`` adds the frame's robot state under ``ROBOT_STATE_KEY`` (models that read it).
    """

    def __init__(self, data: RewardData, index: torch.Tensor, window: Optional[int] = None,
                 augment: Optional[AugmentConfig] = None, robot_state: bool = False):
        if robot_state and (data.robot_state is None or window):
            raise ValueError(f"reward data '{data.data_dir}' has no robot state with its frames" if data.robot_state is None
                             else "robot state is read with single frames, not frame windows")
        self.data = data
        self.index = index
        self.robot_state = data.robot_state if robot_state else None
        self.frames = window_indices(data, index, window) if window else index
        self.transforms = {
            key: build_augmentation(augment, images.shape[-2:]) if augment is not None else None
            for key, images in data.images.items()
        }

    def __len__(self) -> int:
        return int(self.index.numel())

    def labels(self) -> torch.Tensor:
        return self.data.labels[self.index]

    def __getitem__(self, i: int) -> Tuple[Dict[str, torch.Tensor], torch.Tensor]:
        frames = self.frames[i]
        images = {}
        for key, all_images in self.data.images.items():
            transform = self.transforms[key]
            images[key] = transform(all_images[frames]) if transform is not None else all_images[frames]
        if self.robot_state is not None:
            images[ROBOT_STATE_KEY] = self.robot_state[self.index[i]]
        return images, self.data.labels[self.index[i]]
