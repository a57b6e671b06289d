"""``manifest.json`` of a reward-data directory: what the collector writes and the loader reads.

Keys (written by the ``reward_data_collection`` callback)::

    format         "trajectory" (one .npy per episode) | "frames" (one .png per frame)
    labels         "success" (2 classes: failure, success) | "stage" (the env's task stages)
    class_names    class k's name, which is also its directory; the last class is success
    num_classes    len(class_names)
    env, camera_keys, image_size, render    what the data was recorded with (checked downstream)
    robot_state_dim   frames format, optional: each PNG carries that many robot-state values
    counts         {class name: files in its directory}
    frame_trajectories   frames format: {"<class dir>/<file>.png": episode id}
    trajectory_files     trajectory format: ["<class dir>/<file>.npy", ...]

Data written before class labels existed has no ``labels`` / ``class_names``: its classes are
``[negative_dir, positive_dir]`` (defaults ``negative``/``positive`` or ``failure``/``success``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

from embodireward.config import ConfigError
from embodireward.utils.io import read_json

MANIFEST = "manifest.json"
FORMAT_VERSION = 2
DEFAULT_DIRS = {"trajectory": ("positive", "negative"), "frames": ("success", "failure")}
SUFFIXES = {"trajectory": ".npy", "frames": ".png"}


class DataError(ConfigError):
    """Unusable reward data directory. One line, names the directory or file."""

    def __init__(self, message: str):
        super().__init__("", message)


def binary_class_names(fmt: str, positive_dir: str | None = None, negative_dir: str | None = None) -> List[str]:
    """Classes of success-labelled data: ``[negative dir, positive dir]`` (success last)."""
    positive, negative = DEFAULT_DIRS[fmt]
    return [negative_dir or negative, positive_dir or positive]


def class_names(manifest: Dict[str, Any]) -> List[str]:
    names = manifest.get("class_names")
    if names is None:
        return binary_class_names(manifest["format"], manifest.get("positive_dir"), manifest.get("negative_dir"))
    return list(names)


def listed_files(manifest: Dict[str, Any]) -> List[str]:
    """Data files the manifest lists (relative paths); old data may list none."""
    if manifest["format"] == "frames":
        return list((manifest.get("frame_trajectories") or {}).keys())
    return list(manifest.get("trajectory_files") or [])


def load_manifest(data_dir: Path) -> Dict[str, Any]:
    """Read and check ``data_dir/manifest.json``; every problem is a one-line DataError naming the file."""
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
    names = manifest.get("class_names")
    if names is not None and (not isinstance(names, list) or len(names) < 2 or len(set(names)) != len(names)
                              or not all(isinstance(n, str) and n and "/" not in n for n in names)):
        raise DataError(f"'{path}': 'class_names' must be a list of >= 2 distinct directory names, got {names!r}")
    if names is not None and manifest.get("num_classes", len(names)) != len(names):
        raise DataError(f"'{path}': 'num_classes' is {manifest.get('num_classes')!r} but 'class_names' has {len(names)} entries")
    state_dim = manifest.get("robot_state_dim", 0)
    if not isinstance(state_dim, int) or isinstance(state_dim, bool) or state_dim < 0 or (state_dim and manifest["format"] != "frames"):
        raise DataError(f"'{path}': 'robot_state_dim' must be an integer >= 0 (frames format only), got {state_dim!r}")
    mapping = manifest.get("frame_trajectories") or {}
    if not isinstance(mapping, dict) or not all(isinstance(v, int) and not isinstance(v, bool) for v in mapping.values()):
        raise DataError(f"'{path}': 'frame_trajectories' must map file names to integer trajectory ids")
    if not isinstance(manifest.get("trajectory_files") or [], list):
        raise DataError(f"'{path}': 'trajectory_files' must be a list of file names")
    return manifest


def check_listed_files_exist(manifest: Dict[str, Any], data_dir: Path) -> None:
    """DataError if the manifest lists files that are gone (training on what is left would be silent data loss)."""
    missing = sorted(name for name in listed_files(manifest) if not (data_dir / name).is_file())
    if missing:
        raise DataError(f"'{data_dir / MANIFEST}' lists {len(missing)} file(s) that are missing, first '{data_dir / missing[0]}' "
                        "(restore them, or start a collection run on this directory, which drops missing entries)")
