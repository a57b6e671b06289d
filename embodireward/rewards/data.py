"""Reward-model training data: read a collected data directory into memory, split it, augment it.

A data directory holds ``manifest.json`` and one of two formats (written by the
``reward_data_collection`` callback):

``trajectory``
    ``<positive_dir>/000000.npy``, ``<negative_dir>/...``: each a pickled dict
    ``{"images": {camera_key: float32 [T, C, H, W] in [0, 1]}, "labels": float32 [T]}``; one
    file is one trajectory and every frame is a sample labelled by its own label.
``frames``
    ``<positive_dir>/000000.png`` (default ``success``), ``<negative_dir>/...`` (default
    ``failure``): single RGB frames of one camera; ``manifest["frame_trajectories"]`` may map
    ``"success/000000.png"`` to a trajectory id (else each file is its own trajectory).

Everything is kept in memory as uint8 ``[N, 3, H, W]`` per camera (small images, fast epochs).
Train/val are split by trajectory, so frames of one episode never end up on both sides.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset

from embodireward.config import ConfigError, config_error
from embodireward.utils.io import read_json

MANIFEST = "manifest.json"
DEFAULT_DIRS = {"trajectory": ("positive", "negative"), "frames": ("success", "failure")}


class DataError(ConfigError):
    """Unusable reward data directory. One line, names the directory or file."""

    def __init__(self, message: str):
        super().__init__("", message)


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


@dataclass
class RewardData:
    """All frames of a data directory. Frames of one trajectory are contiguous and in time order."""

    images: Dict[str, torch.Tensor]  # camera_key -> uint8 [N, 3, H, W]
    labels: torch.Tensor  # float [N], 1 = success
    trajectory: torch.Tensor  # long [N], trajectory id
    step: torch.Tensor  # long [N], index of the frame within its trajectory
    manifest: Dict[str, Any]
    data_dir: Path
    skipped: int = 0  # unreadable files left out
    skipped_reasons: List[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.labels.numel())

    def counts(self, index: Optional[torch.Tensor] = None) -> Dict[str, int]:
        labels = self.labels if index is None else self.labels[index]
        trajectories = self.trajectory if index is None else self.trajectory[index]
        positive = int((labels > 0.5).sum())
        return {"samples": int(labels.numel()), "positive": positive, "negative": int(labels.numel()) - positive,
                "trajectories": int(trajectories.unique().numel())}


def load_manifest(data_dir: Path) -> Dict[str, Any]:
    path = data_dir / MANIFEST
    if not data_dir.is_dir():
        raise DataError(f"reward data directory '{data_dir}' not found")
    if not path.is_file():
        raise DataError(f"reward data directory '{data_dir}' has no {MANIFEST} (collect data with the reward_data_collection callback)")
    manifest = read_json(path, DataError, f"'{path}' is not valid JSON")
    if not isinstance(manifest, dict) or manifest.get("format") not in DEFAULT_DIRS:
        raise DataError(f"'{path}': 'format' must be 'trajectory' or 'frames', got {manifest.get('format') if isinstance(manifest, dict) else manifest!r}")
    cameras = manifest.get("camera_keys")
    if not isinstance(cameras, list) or not cameras or not all(isinstance(c, str) for c in cameras):
        raise DataError(f"'{path}': 'camera_keys' must be a non-empty list of strings, got {cameras!r}")
    return manifest


def class_dirs(manifest: Dict[str, Any]) -> Tuple[str, str]:
    positive, negative = DEFAULT_DIRS[manifest["format"]]
    return manifest.get("positive_dir") or positive, manifest.get("negative_dir") or negative


def _to_uint8(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.clip(np.rint(images * 255.0), 0, 255).astype(np.uint8))


def _read_trajectory(path: Path, camera_keys: Sequence[str]) -> Tuple[Dict[str, torch.Tensor], torch.Tensor]:
    """-> ``({cam: uint8 [T, 3, H, W]}, float labels [T])``; ValueError says what is wrong."""
    data = np.load(path, allow_pickle=True).item()
    if not isinstance(data, dict) or not isinstance(data.get("images"), dict) or "labels" not in data:
        raise ValueError("expected a dict with 'images' and 'labels'")
    labels = (np.asarray(data["labels"], dtype=np.float32).reshape(-1) > 0.5).astype(np.float32)  # BCE targets: 0 / 1
    images = {}
    for key in camera_keys:
        if key not in data["images"]:
            raise ValueError(f"no images for camera '{key}'")
        array = np.asarray(data["images"][key], dtype=np.float32)
        if array.ndim != 4 or array.shape[1] != 3 or array.shape[0] != labels.size or array.shape[0] == 0:
            raise ValueError(f"camera '{key}' images have shape {array.shape}, expected [T={labels.size}, 3, H, W]")
        if not np.isfinite(array).all():
            raise ValueError(f"camera '{key}' images are not finite")
        images[key] = _to_uint8(array)
    return images, torch.from_numpy(labels)


def _read_png(path: Path) -> torch.Tensor:
    """-> uint8 ``[1, 3, H, W]`` (any PNG mode converted to RGB)."""
    from PIL import Image

    with Image.open(path) as image:
        array = np.asarray(image.convert("RGB"))
    return torch.from_numpy(array.copy()).permute(2, 0, 1).unsqueeze(0)


def _kind(is_positive: bool) -> str:
    return "positive" if is_positive else "negative"


def _frame_trajectories(manifest: Dict[str, Any], data_dir: Path) -> Dict[str, int]:
    mapping = manifest.get("frame_trajectories") or {}
    if not isinstance(mapping, dict) or not all(isinstance(v, int) and not isinstance(v, bool) for v in mapping.values()):
        raise DataError(f"'{data_dir / MANIFEST}': 'frame_trajectories' must map file names to integer trajectory ids")
    return mapping


def load_reward_data(data_dir: str | Path, camera_keys: Optional[Sequence[str]] = None) -> RewardData:
    """Read every readable file of ``data_dir``; unreadable ones are skipped and counted."""
    data_dir = Path(data_dir)
    manifest = load_manifest(data_dir)
    camera_keys = list(camera_keys or manifest["camera_keys"])
    trajectory_format = manifest["format"] == "trajectory"
    if not trajectory_format and len(camera_keys) != 1:
        raise DataError(f"reward data '{data_dir}' is in 'frames' format (one camera); a model reading {camera_keys} needs trajectory data")
    frame_trajectories = _frame_trajectories(manifest, data_dir)
    next_id = max(frame_trajectories.values(), default=-1) + 1  # fresh ids for files without one
    images: Dict[str, List[torch.Tensor]] = {key: [] for key in camera_keys}
    labels, trajectory, step, skipped = [], [], [], []
    image_sizes = None  # {camera_key: (H, W)} of the first readable file
    for is_positive, subdir in zip((True, False), class_dirs(manifest)):
        suffix = ".npy" if trajectory_format else ".png"
        files = sorted((data_dir / subdir).glob(f"*{suffix}"))
        if not files:
            raise DataError(f"reward data '{data_dir}' has no {_kind(is_positive)} samples ('{subdir}/' holds no {suffix} files)")
        readable = len(files)
        for path in files:
            rel = f"{subdir}/{path.name}"
            try:
                if trajectory_format:
                    frames, frame_labels = _read_trajectory(path, camera_keys)
                else:
                    frames, frame_labels = {camera_keys[0]: _read_png(path)}, torch.full((1,), float(is_positive))
                sizes = {key: tuple(f.shape[-2:]) for key, f in frames.items()}
                if image_sizes is not None and sizes != image_sizes:
                    raise ValueError(f"image sizes {sizes} differ from the other files' {image_sizes}")
            except Exception as exc:  # any unreadable file: skip it, count it, keep going
                skipped.append(f"{rel}: {type(exc).__name__}: {' '.join(str(exc).split())}")
                readable -= 1
                continue
            image_sizes = sizes
            if rel in frame_trajectories:
                traj_id = frame_trajectories[rel]
            else:
                traj_id, next_id = next_id, next_id + 1
            for key in camera_keys:
                images[key].append(frames[key])
            labels.append(frame_labels)
            trajectory.append(torch.full((len(frame_labels),), traj_id, dtype=torch.long))
            step.append(torch.arange(len(frame_labels)))
        if readable == 0:
            raise DataError(f"reward data '{data_dir}' has no readable {_kind(is_positive)} samples (all {len(files)} files in '{subdir}/' are unreadable, e.g. {skipped[-1]})")
    if skipped:
        print(f"reward data '{data_dir}': skipped {len(skipped)} unreadable file(s), e.g. {skipped[0]}")
    data = RewardData(
        images={key: torch.cat(v) for key, v in images.items()},
        labels=torch.cat(labels).float(),
        trajectory=torch.cat(trajectory),
        step=torch.cat(step),
        manifest=manifest,
        data_dir=data_dir,
        skipped=len(skipped),
        skipped_reasons=skipped,
    )
    counts = data.counts()
    for kind in ("positive", "negative"):
        if counts[kind] == 0:
            raise DataError(f"reward data '{data_dir}' has no frames labelled {kind} ({counts['samples']} frames in total)")
    return data


def split_by_trajectory(data: RewardData, val_split: float, seed: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Frame indices ``(train, val)``; whole trajectories go to one side.

    Stratified: positive trajectories (any positive frame) and negative ones are split
    separately, each class with >= 2 trajectories giving at least one to validation.
    """
    generator = torch.Generator().manual_seed(seed)
    ids, inverse = data.trajectory.unique(return_inverse=True)
    positive = torch.zeros(len(ids)).scatter_reduce(0, inverse, (data.labels > 0.5).float(), "amax") > 0
    val_ids = []
    for members in (ids[positive], ids[~positive]):
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
    """Samples of ``data`` at ``index``: ``({cam: uint8 [3, H, W]} or [k, 3, H, W] windows, label)``.

    ``window=k`` makes each sample the ``k`` frames ending at the indexed frame (video models);
    ``augment`` (training only) draws one random augmentation per sample and camera.
    """

    def __init__(self, data: RewardData, index: torch.Tensor, window: Optional[int] = None,
                 augment: Optional[AugmentConfig] = None):
        self.data = data
        self.index = index
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
        return images, self.data.labels[self.index[i]]
