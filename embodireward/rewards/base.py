"""Base classes of learned reward models: success classifiers that map images to P(success).

A model's ``forward`` takes *preprocessed* inputs and returns logits ``[B]``; ``preprocess``
turns raw observations (what an env renders or a data file holds) into those inputs. Training
and inference both go through ``preprocess``, so they see exactly the same pixels.

Subclasses of :class:`BaseImageRewardModel` / :class:`BaseVideoRewardModel` have a ``Config``
dataclass with at least ``image_size`` ([H, W]), ``camera_keys`` (list of str) and
``imagenet_norm`` (bool); video models add ``num_frames`` and ``frame_strategy``.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

Images = Union[torch.Tensor, Dict[str, torch.Tensor]]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FRAME_STRATEGIES = ("uniform", "last", "first_last", "random")


class BaseRewardModel(nn.Module):
    """Root of all reward models: observations -> probability of success per sample."""

    Config: type
    registry_name: str  # set by @register_reward_model

    def __init__(self, cfg: Any):
        super().__init__()
        self.cfg = cfg
        # What the checkpoint sidecar recorded (data manifest, threshold, metrics); {} if untrained.
        self.sidecar: Dict[str, Any] = {}

    def preprocess(self, observations: Any) -> Any:
        """Raw observations -> what ``forward`` takes."""
        raise NotImplementedError

    def predict_logits(self, observations: Any) -> torch.Tensor:
        return self(self.preprocess(observations))

    @torch.no_grad()
    def compute_reward(self, observations: Any, task_descriptions: Optional[List[str]] = None) -> torch.Tensor:
        """Probability of success per sample, float ``[B]``. Call ``eval()`` first (loaders do)."""
        return torch.sigmoid(self.predict_logits(observations).float())

    def load_checkpoint(self, path: str) -> None:
        """Load weights from a ``.safetensors`` file written by ``save_reward_model``."""
        from embodireward.rewards.checkpoint import load_weights

        load_weights(self, path)

    @staticmethod
    def scale_reward(
        probs: torch.Tensor,
        threshold: float = 0.5,
        use_soft: bool = False,
        success_reward: float = 1.0,
        fail_reward: float = 0.0,
    ) -> torch.Tensor:
        """Map probabilities to rewards.

        Hard: ``success_reward`` where ``p >= threshold`` else ``fail_reward``.
        Soft: ``fail_reward + p * (success_reward - fail_reward)`` (threshold unused).
        """
        probs = probs.float()
        if use_soft:
            return fail_reward + probs * (success_reward - fail_reward)
        success = torch.full_like(probs, success_reward)
        return torch.where(probs >= threshold, success, torch.full_like(probs, fail_reward))

    def to_device(self, device: Union[str, torch.device]) -> "BaseRewardModel":
        return self.to(device)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device


def to_float_nchw(images: torch.Tensor, image_size: Sequence[int], imagenet_norm: bool, name: str = "images") -> torch.Tensor:
    """``[N, C, H, W]`` or ``[N, H, W, C]``, uint8 or float in [0, 1] -> float ``[N, 3, *image_size]``."""
    if images.dim() != 4:
        raise ValueError(f"{name}: expected a [B, C, H, W] or [B, H, W, C] tensor, got shape {tuple(images.shape)}")
    if images.shape[1] != 3 and images.shape[-1] == 3:
        images = images.permute(0, 3, 1, 2)
    if images.shape[1] != 3:
        raise ValueError(f"{name}: expected 3 colour channels (RGB), got shape {tuple(images.shape)}")
    images = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    if tuple(images.shape[-2:]) != tuple(image_size):
        images = F.interpolate(images, size=tuple(image_size), mode="bilinear", align_corners=False, antialias=True)
    if imagenet_norm:
        mean = images.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = images.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
        images = (images - mean) / std
    return images.contiguous()


def per_camera(images: Images, camera_keys: Sequence[str]) -> Dict[str, torch.Tensor]:
    """A bare tensor is the single camera's images; a dict must hold every camera key."""
    if isinstance(images, torch.Tensor):
        if len(camera_keys) != 1:
            raise ValueError(f"model reads cameras {list(camera_keys)}: pass a dict {{camera_key: images}}, not one tensor")
        return {camera_keys[0]: images}
    missing = [k for k in camera_keys if k not in images]
    if missing:
        raise KeyError(f"images lack camera(s) {missing}; got {sorted(images)}, model reads {list(camera_keys)}")
    return {k: images[k] for k in camera_keys}


class BaseImageRewardModel(BaseRewardModel):
    """Single-frame reward model: images ``[B, ...]`` (one tensor or one per camera) -> P(success)."""

    def preprocess_images(self, images: Images) -> Dict[str, torch.Tensor]:
        """-> ``{camera_key: float [B, 3, H, W]}`` on the model's device, resized and normalised."""
        device = self.device
        return {
            key: to_float_nchw(x.to(device, non_blocking=True), self.cfg.image_size, self.cfg.imagenet_norm, key)
            for key, x in per_camera(images, self.cfg.camera_keys).items()
        }

    def preprocess(self, observations: Images) -> Dict[str, torch.Tensor]:
        return self.preprocess_images(observations)

    @staticmethod
    def apply_threshold(probs: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
        """Bool ``[B]``: classified as success."""
        return probs >= threshold


def sample_frame_indices(num_frames: int, strategy: str, k: int) -> torch.Tensor:
    """Which ``k`` of ``num_frames`` frames to keep, in temporal order.

    ``uniform``: evenly spaced; ``last``: the last ``k``; ``first_last``: the first frame and the
    last ``k - 1``; ``random``: ``k`` random frames. Clips shorter than ``k`` are left-padded by
    repeating the first frame, so with ``num_frames <= k`` every strategy keeps all frames.
    """
    if strategy not in FRAME_STRATEGIES:
        raise ValueError(f"unknown frame strategy {strategy!r}; expected one of {', '.join(FRAME_STRATEGIES)}")
    if num_frames < 1 or k < 1:
        raise ValueError(f"need at least one frame and k >= 1, got {num_frames} frames and k={k}")
    if num_frames <= k:
        return torch.cat([torch.zeros(k - num_frames, dtype=torch.long), torch.arange(num_frames)])
    if strategy == "uniform":
        return torch.linspace(0, num_frames - 1, k).round().long()
    if strategy == "last" or k == 1:
        return torch.arange(num_frames - k, num_frames)
    if strategy == "first_last":
        return torch.cat([torch.zeros(1, dtype=torch.long), torch.arange(num_frames - k + 1, num_frames)])
    return torch.randperm(num_frames)[:k].sort().values


class BaseVideoRewardModel(BaseRewardModel):
    """Multi-frame reward model: clips ``[B, T, ...]`` (one tensor or one per camera) -> P(success)."""

    @staticmethod
    def sample_frames(images: torch.Tensor, strategy: str, k: int) -> torch.Tensor:
        """``[B, T, ...]`` -> ``[B, k, ...]``; an unbatched ``[T, C, H, W]`` clip -> ``[k, C, H, W]``."""
        time_dim = 1 if images.dim() == 5 else 0
        index = sample_frame_indices(images.shape[time_dim], strategy, k).to(images.device)
        return images.index_select(time_dim, index)

    def preprocess_video(self, images: Images) -> Dict[str, torch.Tensor]:
        """-> ``{camera_key: float [B, k, 3, H, W]}``: frames sampled, resized and normalised."""
        device = self.device
        out = {}
        for key, clip in per_camera(images, self.cfg.camera_keys).items():
            if clip.dim() != 5:
                raise ValueError(f"{key}: expected a [B, T, C, H, W] or [B, T, H, W, C] clip, got shape {tuple(clip.shape)}")
            clip = self.sample_frames(clip.to(device, non_blocking=True), self.cfg.frame_strategy, self.cfg.num_frames)
            frames = to_float_nchw(clip.flatten(0, 1), self.cfg.image_size, self.cfg.imagenet_norm, key)
            out[key] = frames.view(clip.shape[0], clip.shape[1], *frames.shape[1:])
        return out

    def preprocess(self, observations: Images) -> Dict[str, torch.Tensor]:
        return self.preprocess_video(observations)
