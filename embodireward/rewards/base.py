"""Base classes of learned reward models: classifiers that map images to P(success) or class probabilities.

A model's ``forward`` takes *preprocessed* inputs and returns logits: ``[B]`` for a binary success
classifier (``num_classes`` 1: sigmoid, BCE), ``[B, K]`` for a ``K``-class model (``num_classes``
K >= 2: softmax, cross-entropy; e.g. task stages failed / partial / success). The last class is
success, so every model has a P(success): ``sigmoid(z)`` or ``softmax(z)[K-1]``. ``preprocess``
turns raw observations (what an env renders or a data file holds) into those inputs. Training and
inference both go through ``preprocess``, so they see exactly the same pixels.

Subclasses of :class:`BaseImageRewardModel` / :class:`BaseVideoRewardModel` have a ``Config``
dataclass deriving from :class:`ImageRewardConfig` (``image_size``, ``camera_keys``,
``imagenet_norm``, ``num_classes``); video models add ``num_frames`` and ``frame_strategy``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from embodireward.config import config_error

Images = Union[torch.Tensor, Dict[str, torch.Tensor]]

# key of the robot state (``Frames.robot_state``) beside the camera images in a model's input dict
ROBOT_STATE_KEY = "robot_state"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FRAME_STRATEGIES = ("uniform", "last", "first_last", "random")


@dataclass
class ImageRewardConfig:
    """Config keys every image / clip reward model has (model configs derive from it)."""

    image_size: List[int] = field(default_factory=lambda: [64, 64])  # [H, W] the encoder sees
    camera_keys: List[str] = field(default_factory=lambda: ["top_camera"])  # one encoder per camera
    imagenet_norm: bool = True
    # 1: binary success classifier (sigmoid + BCE); K >= 2: K classes from the data (softmax +
    # cross-entropy), the last class being success
    num_classes: int = 1
    # > 0: single-frame models also read the robot's state of this size (joint positions and
    # velocities, ``Frames.robot_state``) beside the images, e.g. to tell a still arm from a moving one
    robot_state_dim: int = 0

    def validate(self, path: str) -> None:
        if len(self.image_size) != 2 or min(self.image_size) < 8:
            raise config_error(path, "image_size", f"expected [H, W] with both >= 8, got {self.image_size}")
        if not self.camera_keys or len(set(self.camera_keys)) != len(self.camera_keys) or ROBOT_STATE_KEY in self.camera_keys:
            raise config_error(path, "camera_keys", f"expected a non-empty list of distinct camera keys (not '{ROBOT_STATE_KEY}'), got {self.camera_keys}")
        if self.robot_state_dim < 0:
            raise config_error(path, "robot_state_dim", f"must be >= 0, got {self.robot_state_dim}")
        if self.num_classes < 1:
            raise config_error(path, "num_classes", f"must be 1 (binary success) or >= 2 (classes), got {self.num_classes}")


def robot_state_mismatch(model_dim: int, given: int, source: str) -> Optional[str]:
    """What is wrong when a model reading ``model_dim`` robot-state values meets ``source`` giving ``given``; None if fine.

    ``source`` reads as the subject of a sentence with its verb, e.g. ``"the data's frames carry"``.
    """
    if not model_dim or model_dim == given:
        return None
    return f"the model reads {model_dim} robot-state values; {source} {given or 'none'}"


def success_probability(logits: torch.Tensor) -> torch.Tensor:
    """P(success) ``[B]``: ``sigmoid(z)`` of binary logits ``[B]``, ``softmax(z)[:, K-1]`` of ``[B, K]`` logits."""
    logits = logits.float()
    return torch.sigmoid(logits) if logits.dim() == 1 else torch.softmax(logits, dim=-1)[:, -1]


def class_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """``[B, K]`` class probabilities; binary logits ``[B]`` give ``K = 2``: ``[1 - p, p]``."""
    logits = logits.float()
    if logits.dim() == 1:
        p = torch.sigmoid(logits)
        return torch.stack([1.0 - p, p], dim=-1)
    return torch.softmax(logits, dim=-1)


class BaseRewardModel(nn.Module):
    """Root of all reward models: observations -> probability of success (or of each class) per sample."""

    Config: type
    registry_name: str  # set by @register_reward_model

    def __init__(self, cfg: Any):
        super().__init__()
        self.cfg = cfg
        # What the checkpoint sidecar recorded (data manifest, threshold, metrics); {} if untrained.
        self.sidecar: Dict[str, Any] = {}

    @property
    def num_classes(self) -> int:
        """1 for a binary success classifier, else the number of classes ``K``."""
        return int(getattr(self.cfg, "num_classes", 1))

    @property
    def robot_state_dim(self) -> int:
        """Robot-state values the model reads beside the images (0: images only)."""
        return int(getattr(self.cfg, "robot_state_dim", 0))

    @property
    def class_names(self) -> List[str]:
        """Names of the ``max(2, num_classes)`` outputs of :meth:`class_probabilities`; the last is success."""
        k = max(2, self.num_classes)
        names = self.sidecar.get("manifest", {}).get("class_names")
        if isinstance(names, list) and len(names) == k:
            return [str(name) for name in names]
        return ["failure", "success"] if k == 2 else [f"class_{i}" for i in range(k)]

    def preprocess(self, observations: Any) -> Any:
        """Raw observations -> what ``forward`` takes."""
        raise NotImplementedError

    def predict_logits(self, observations: Any) -> torch.Tensor:
        return self(self.preprocess(observations))

    @torch.no_grad()
    def compute_reward(self, observations: Any, task_descriptions: Optional[List[str]] = None) -> torch.Tensor:
        """Probability of success per sample, float ``[B]``. Call ``eval()`` first (loaders do)."""
        return success_probability(self.predict_logits(observations))

    @torch.no_grad()
    def compute_class_probabilities(self, observations: Any) -> torch.Tensor:
        """Class probabilities, float ``[B, K]`` (``K = 2``, ``[1 - p, p]``, for a binary model)."""
        return class_probabilities(self.predict_logits(observations))

    def for_inference(self) -> "BaseRewardModel":
        """The model as frozen inference runs it (the reward hook): the same outputs, possibly faster.

        The default is the model itself; subclasses may return a copy with eval-mode constants folded.
        """
        return self

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

    @staticmethod
    def class_reward(probs: torch.Tensor, class_rewards: Sequence[float], use_soft: bool = False) -> torch.Tensor:
        """Map class probabilities ``[B, K]`` to rewards ``[B]`` with one reward ``r_k`` per class.

        Soft: the expected reward ``sum_k p_k r_k``. Hard: ``r_argmax_k p_k``.
        """
        rewards = probs.new_tensor(list(class_rewards), dtype=torch.float32)
        probs = probs.float()
        return probs @ rewards if use_soft else rewards[probs.argmax(dim=-1)]

    def to_device(self, device: Union[str, torch.device]) -> "BaseRewardModel":
        return self.to(device)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device


def to_float_nchw(images: torch.Tensor, image_size: Sequence[int], imagenet_norm: bool, name: str = "images") -> torch.Tensor:
    """``[N, C, H, W]`` or ``[N, H, W, C]``, uint8 or float in [0, 1] -> float ``[N, 3, *image_size]``.

    One pass computes ``(x / 255 - mean) / std`` as ``x * scale + shift`` with per-channel
    ``scale = 1 / (255 std)``, ``shift = -mean / std``. ``[N, H, W, C]`` input (what envs render)
    is only permuted, so the result is channels_last in memory, the layout convolutions run
    fastest in; no copy reorders it. Images are resized (antialiased bilinear) only if their
    size differs; resizing averages with weights summing to 1, so it commutes with the affine
    normalisation.
    """
    if images.dim() != 4:
        raise ValueError(f"{name}: expected a [B, C, H, W] or [B, H, W, C] tensor, got shape {tuple(images.shape)}")
    if images.shape[1] != 3 and images.shape[-1] == 3:
        images = images.permute(0, 3, 1, 2)
    if images.shape[1] != 3:
        raise ValueError(f"{name}: expected 3 colour channels (RGB), got shape {tuple(images.shape)}")
    scale = 1.0 / 255.0 if images.dtype == torch.uint8 else 1.0
    if images.dtype != torch.uint8 and images.dtype != torch.float32:
        images = images.float()
    if tuple(images.shape[-2:]) != tuple(image_size):
        images = F.interpolate(images.float(), size=tuple(image_size), mode="bilinear", align_corners=False, antialias=True)
    mean = torch.tensor(IMAGENET_MEAN if imagenet_norm else (0.0, 0.0, 0.0), device=images.device)
    std = torch.tensor(IMAGENET_STD if imagenet_norm else (1.0, 1.0, 1.0), device=images.device)
    return torch.addcmul((-mean / std).view(1, 3, 1, 1), images, (scale / std).view(1, 3, 1, 1))


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
