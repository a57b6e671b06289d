"""Reward-model training data: read a collected data directory into memory.

A data directory holds ``manifest.json`` (see ``rewards.manifest``) and one directory per class
(class ``k``'s directory is ``class_names[k]``; success is the last class):

``trajectory``
    ``<class dir>/000000.npy``: each a pickled dict ``{"images": {camera_key: float32 [T, C, H, W]
    in [0, 1]}, "labels": [T]}`` (integer class labels; old success data: float 0/1), under the
    directory of the highest class the episode reached; every frame is a sample with its own label.
``frames``
    ``<class dir>/000000.png``: single RGB frames of one camera, labelled by their directory;
    ``manifest["frame_trajectories"]`` may map ``"success/000000.png"`` to a trajectory id (else
    each file is its own trajectory). With ``manifest["robot_state_dim"]`` each PNG also carries
    the robot's state (``rewards.frame_png``).

Everything is kept in memory as uint8 ``[N, 3, H, W]`` per camera (small images, fast epochs).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from embodireward.rewards.frame_png import read_frame
from embodireward.rewards.manifest import SUFFIXES, DataError, check_listed_files_exist, class_names, load_manifest


@dataclass
class RewardData:
    """All frames of a data directory. Frames of one trajectory are contiguous and in time order."""

    images: Dict[str, torch.Tensor]  # camera_key -> uint8 [N, 3, H, W]
    labels: torch.Tensor  # long [N], class index; num_classes - 1 is success
    class_names: List[str]
    trajectory: torch.Tensor  # long [N], trajectory id
    step: torch.Tensor  # long [N], index of the frame within its trajectory
    manifest: Dict[str, Any]
    data_dir: Path
    robot_state: Optional[torch.Tensor] = None  # float [N, robot_state_dim] when the frames carry it
    skipped: int = 0  # unreadable files left out
    skipped_reasons: List[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.labels.numel())

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def counts(self, index: Optional[torch.Tensor] = None) -> Dict[str, Any]:
        """Samples, success (``positive``) and other (``negative``) frames, trajectories, frames per class."""
        labels = self.labels if index is None else self.labels[index]
        trajectories = self.trajectory if index is None else self.trajectory[index]
        per_class = torch.bincount(labels, minlength=self.num_classes).tolist()
        return {"samples": int(labels.numel()), "positive": per_class[-1], "negative": int(labels.numel()) - per_class[-1],
                "trajectories": int(trajectories.unique().numel()), "classes": dict(zip(self.class_names, per_class))}


def _to_uint8(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.clip(np.rint(images * 255.0), 0, 255).astype(np.uint8))


def _class_labels(raw: Any, num_classes: int) -> np.ndarray:
    """Stored labels -> int64 class indices; two-class data also accepts float 0/1 (older files)."""
    labels = np.asarray(raw).reshape(-1)
    if not np.issubdtype(labels.dtype, np.number) or not np.isfinite(labels).all():
        raise ValueError("labels are not finite numbers")
    if num_classes == 2:
        return (labels > 0.5).astype(np.int64)
    if (labels != np.round(labels)).any() or labels.min(initial=0) < 0 or labels.max(initial=0) >= num_classes:
        raise ValueError(f"labels must be integer classes in [0, {num_classes - 1}], got values {sorted(set(labels.tolist()))[:5]}")
    return labels.astype(np.int64)


def _read_trajectory(path: Path, camera_keys: Sequence[str], num_classes: int) -> Tuple[Dict[str, torch.Tensor], torch.Tensor]:
    """-> ``({cam: uint8 [T, 3, H, W]}, long labels [T])``; ValueError says what is wrong."""
    data = np.load(path, allow_pickle=True).item()
    if not isinstance(data, dict) or not isinstance(data.get("images"), dict) or "labels" not in data:
        raise ValueError("expected a dict with 'images' and 'labels'")
    labels = _class_labels(data["labels"], num_classes)
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


def load_reward_data(data_dir: str | Path, camera_keys: Optional[Sequence[str]] = None, require_every_class: bool = True) -> RewardData:
    """Read every readable file of ``data_dir``; unreadable ones are skipped and counted.

    ``require_every_class``: a class without frames is an error (training needs them all; data
    that only grows an existing set, like refresh labels, may lack one).

    Files the manifest lists but that are gone are an error (one line: how many, the first one).
    """
    data_dir = Path(data_dir)
    manifest = load_manifest(data_dir)
    check_listed_files_exist(manifest, data_dir)
    camera_keys = list(camera_keys or manifest["camera_keys"])
    trajectory_format = manifest["format"] == "trajectory"
    if not trajectory_format and len(camera_keys) != 1:
        raise DataError(f"reward data '{data_dir}' is in 'frames' format (one camera); a model reading {camera_keys} needs trajectory data")
    names = class_names(manifest)
    frame_trajectories = manifest.get("frame_trajectories") or {}
    next_id = max(frame_trajectories.values(), default=-1) + 1  # fresh ids for files without one
    images: Dict[str, List[torch.Tensor]] = {key: [] for key in camera_keys}
    robot_state_dim = int(manifest.get("robot_state_dim") or 0)
    labels, trajectory, step, skipped, robot_states = [], [], [], [], []
    image_sizes = None  # {camera_key: (H, W)} of the first readable file
    suffix = SUFFIXES[manifest["format"]]
    for class_index, subdir in enumerate(names):
        files = sorted((data_dir / subdir).glob(f"*{suffix}"))
        readable = len(files)
        for path in files:
            rel = f"{subdir}/{path.name}"
            try:
                if trajectory_format:
                    frames, frame_labels = _read_trajectory(path, camera_keys, len(names))
                else:
                    image, robot_state = read_frame(path, robot_state_dim)
                    frames, frame_labels = {camera_keys[0]: image}, torch.full((1,), class_index)
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
            if robot_state_dim:
                robot_states.append(robot_state)
            trajectory.append(torch.full((len(frame_labels),), traj_id, dtype=torch.long))
            step.append(torch.arange(len(frame_labels)))
        if files and readable == 0:
            raise DataError(f"reward data '{data_dir}' has no readable '{subdir}' files (all {len(files)} files in '{subdir}/' are unreadable, e.g. {skipped[-1]})")
    if not labels:
        raise DataError(f"reward data '{data_dir}' holds no {suffix} files (class directories: {', '.join(names)})")
    if skipped:
        print(f"reward data '{data_dir}': skipped {len(skipped)} unreadable file(s), e.g. {skipped[0]}")
    data = RewardData(
        images={key: torch.cat(v) for key, v in images.items()},
        labels=torch.cat(labels).long(),
        class_names=names,
        trajectory=torch.cat(trajectory),
        step=torch.cat(step),
        manifest=manifest,
        data_dir=data_dir,
        robot_state=torch.cat(robot_states) if robot_state_dim else None,
        skipped=len(skipped),
        skipped_reasons=skipped,
    )
    empty = [name for name, count in data.counts()["classes"].items() if count == 0]
    if empty and require_every_class:
        raise DataError(f"reward data '{data_dir}' has no frames of class(es) {empty} ({len(data)} frames in total: {data.counts()['classes']})")
    return data
