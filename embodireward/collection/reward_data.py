"""Collect success/failure-labelled camera frames while an RL run trains (reward-model data).

The data directory holds ``manifest.json`` plus one of two formats, both read by the reward-model
trainer:

``trajectory``
    one ``{counter:06d}.npy`` per finished episode: a pickled dict ``{"images": {camera_key:
    float32 [T, C, H, W] in [0, 1]}, "labels": float32 [T]}``, under ``positive_dir`` when the
    episode succeeded at any step, else ``negative_dir``. A frame's label is the env's success of
    that state, or 1 within ``steps_after_success`` steps after the episode's first success.
``frames``
    single ``{n:06d}.png`` frames under ``positive_dir`` (default ``success``) or ``negative_dir``
    (default ``failure``) by their label (as above), subsampled by ``sample_rate_success`` /
    ``sample_rate_fail``; ``manifest["frame_trajectories"]`` maps each file to its episode id so a
    train/val split can keep episodes whole.

Files are never overwritten: numbering continues after what the directory already holds and a
name taken meanwhile (another rank) is skipped. Caps count every file in the directory.
"""
from __future__ import annotations

import fcntl
import io
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Literal, Optional, Tuple, Union

import imageio.v3 as iio
import numpy as np
import torch

from embodireward.config import ConfigError, config_error
from embodireward.envs.base import RenderRequest
from embodireward.registry import register_callback
from embodireward.rewards.checkpoint import check_env_compatibility
from embodireward.trainer.callbacks import Callback, StepData
from embodireward.utils.io import atomic_write_json, create_exclusive, read_json

KINDS = ("positive", "negative")
MANIFEST = "manifest.json"
FORMAT_VERSION = 1
_NUMBERED = re.compile(r"^(\d{6,})\.(npy|png)$")


@register_callback("reward_data_collection")
class RewardDataCollection(Callback):
    """Saves success/failure-labelled camera frames of training episodes for reward-model training."""

    @dataclass
    class Config:
        data_dir: str = "{run_dir}/reward_data"  # relative to the working dir; {run_dir} is replaced
        format: Literal["trajectory", "frames"] = "trajectory"
        camera_key: Optional[str] = None  # None: the env's first camera
        # episode_end: terminal frames only; every_step: all frames; p in (0, 1]: each step renders
        # every env with probability p (terminal frames are always kept)
        render: Union[Literal["episode_end", "every_step"], float] = "episode_end"
        steps_after_success: int = 0  # frames after the first success also labelled positive
        positive_dir: Optional[str] = None  # default: "positive" (trajectory) / "success" (frames)
        negative_dir: Optional[str] = None  # default: "negative" (trajectory) / "failure" (frames)
        max_positive_trajectories: Optional[int] = None  # trajectory format; None: no cap
        max_negative_trajectories: Optional[int] = None
        target_success: Optional[int] = None  # frames format; None: no cap
        target_failure: Optional[int] = None
        sample_rate_success: float = 1.0  # frames format: fraction of success frames kept
        sample_rate_fail: float = 1.0
        seed: int = 0

        def validate(self, path: str) -> None:
            if isinstance(self.render, float) and not 0.0 < self.render <= 1.0:
                raise config_error(path, "render", f"a render probability must be in (0, 1], got {self.render}")
            for key in ("sample_rate_success", "sample_rate_fail"):
                if not 0.0 <= getattr(self, key) <= 1.0:
                    raise config_error(path, key, f"must be in [0, 1], got {getattr(self, key)}")
            for key in ("steps_after_success", "max_positive_trajectories", "max_negative_trajectories", "target_success", "target_failure"):
                if (getattr(self, key) or 0) < 0:
                    raise config_error(path, key, f"must be >= 0, got {getattr(self, key)}")
            # a key of the other format would be silently ignored: reject it
            other = {
                "trajectory": {"target_success": None, "target_failure": None, "sample_rate_success": 1.0, "sample_rate_fail": 1.0},
                "frames": {"max_positive_trajectories": None, "max_negative_trajectories": None},
            }[self.format]
            for key, default in other.items():
                if getattr(self, key) != default:
                    raise config_error(path, key, f"not used with format '{self.format}' (it belongs to the other format)")

    def __init__(self, cfg: "RewardDataCollection.Config", trainer: Any = None):
        self.cfg = cfg
        self.counts: Dict[str, int] = {}  # files in the directory, per kind
        self.written = {kind: 0 for kind in KINDS}  # files this run wrote
        self.stopped = False  # all caps reached
        self._requested: RenderRequest = "never"

    # ------------------------------------------------------------------ setup

    def on_train_start(self, trainer: Any) -> None:
        cfg = self.cfg
        env = trainer.env
        desc = env.describe()
        cameras = list(getattr(env, "camera_keys", ()) or desc.get("camera_keys", []))
        if not cameras:
            raise ConfigError("reward_data_collection", f"env '{desc.get('env_id')}' has no cameras; it cannot collect images")
        self.camera_key = cfg.camera_key or cameras[0]
        if self.camera_key not in cameras:
            raise ConfigError("reward_data_collection.camera_key", f"{self.camera_key!r} is not a camera of env '{desc.get('env_id')}' (cameras: {', '.join(cameras)})")
        frames = cfg.format == "frames"
        self.dirs = {
            "positive": cfg.positive_dir or ("success" if frames else "positive"),
            "negative": cfg.negative_dir or ("failure" if frames else "negative"),
        }
        self.caps = {
            "positive": cfg.target_success if frames else cfg.max_positive_trajectories,
            "negative": cfg.target_failure if frames else cfg.max_negative_trajectories,
        }
        self.sample_rates = {"positive": cfg.sample_rate_success, "negative": cfg.sample_rate_fail}
        self.data_dir = Path(cfg.data_dir.replace("{run_dir}", str(trainer.run_dir))).resolve()
        self.manifest_path = self.data_dir / MANIFEST
        self._manifest = {
            "format": cfg.format,
            "env": desc,
            "camera_keys": [self.camera_key],
            "image_size": list(desc.get("image_size") or []),
            "render": cfg.render,
            "positive_dir": self.dirs["positive"],
            "negative_dir": self.dirs["negative"],
        }
        self.data_dir.mkdir(parents=True, exist_ok=True)
        existing = self._read_manifest()
        if existing is not None:
            self._check_compatible(existing)
        self._next_number = {kind: max(self._numbers(kind), default=-1) + 1 for kind in KINDS}
        self._pending_frames: Dict[str, int] = {}  # frames format: file -> trajectory id, not yet in the manifest

        n, rank, world = env.num_envs, int(trainer.rank), int(trainer.world_size)
        self._rng = np.random.default_rng(cfg.seed + rank)
        self._success_once = torch.zeros(n, dtype=torch.bool)
        self._since_success = torch.full((n,), -1, dtype=torch.long)  # steps since first success, -1: none yet
        self._buffers: List[List[Tuple[torch.Tensor, bool]]] = [[] for _ in range(n)]
        # episode ids unique across ranks and earlier runs: base + rank + world_size * k
        first_id = max((existing or {}).get("frame_trajectories", {}).values(), default=-1) + 1
        self._episode_ids = iter(range(first_id + rank, 2**62, world))
        self._current_episode = [next(self._episode_ids) for _ in range(n)]
        self._stats = {"episodes": 0, "frames": 0, "env_steps": 0}

        self._write_manifest()
        self.capped_at_start = any(self._capped(kind) for kind in KINDS)
        self._check_stop(trainer)
        trainer.log_info(f"reward_data_collection: {cfg.format} data of camera '{self.camera_key}' -> {self.data_dir} (pos={self.counts['positive']}, neg={self.counts['negative']} already there)")

    def _read_manifest(self) -> Optional[Dict[str, Any]]:
        if not self.manifest_path.is_file():
            return None
        return read_json(self.manifest_path, lambda message: ConfigError(str(self.manifest_path), message),
                         "unreadable (fix or remove it)")

    def _check_compatible(self, existing: Dict[str, Any]) -> None:
        source = str(self.manifest_path)
        check_env_compatibility(existing.get("env", {}), self._manifest["env"], source)
        for key in ("format", "camera_keys", "image_size", "render", "positive_dir", "negative_dir"):
            if existing.get(key) != self._manifest[key]:
                raise ConfigError(source, f"'{key}' is {existing.get(key)!r} in the existing data but {self._manifest[key]!r} in this run; use a new data_dir or matching settings")

    # ------------------------------------------------------------------ per step

    def frame_request(self) -> RenderRequest:
        render = self.cfg.render
        if self.stopped:
            self._requested = "never"
        elif isinstance(render, float):
            # terminal frames are always rendered: success usually shows only in the last frame
            self._requested = "every_step" if self._rng.random() < render else "episode_end"
        else:
            self._requested = render
        return self._requested

    def on_step(self, trainer: Any, step: StepData) -> None:
        if self.stopped:
            return
        if step.success is None:
            raise RuntimeError("reward_data_collection: the env reports no info['success'], so frames cannot be labelled")
        success = step.success.detach().cpu().bool()
        done = step.done.detach().cpu()
        labels = self._update_labels(success)
        self._stats["env_steps"] += 1

        if self._requested == "every_step":
            wanted = torch.arange(success.numel())
        elif self._requested == "episode_end":
            wanted = done.nonzero().flatten()
        else:
            wanted = done.new_zeros(0, dtype=torch.long)
        if wanted.numel():
            if step.frames is None:
                raise RuntimeError(f"reward_data_collection asked for '{self._requested}' frames but the step has none; pass frame_request() to env.step")
            images = step.frames.select(wanted).images[self.camera_key].detach().cpu()
            self._stats["frames"] += int(wanted.numel())
            for i, env_id in enumerate(wanted.tolist()):
                self._add_frame(env_id, images[i].clone(), bool(labels[env_id]))

        for env_id in done.nonzero().flatten().tolist():
            self._finish_episode(env_id)
        self._check_stop(trainer)

    def _update_labels(self, success: torch.Tensor) -> torch.Tensor:
        """Per-env label of this step's frame; advances the success bookkeeping."""
        self._since_success[self._success_once] += 1
        self._since_success[success & ~self._success_once] = 0
        self._success_once |= success
        after = (self._since_success >= 0) & (self._since_success <= self.cfg.steps_after_success)
        return success | after

    def _add_frame(self, env_id: int, image: torch.Tensor, label: bool) -> None:
        if self.cfg.format == "trajectory":
            self._buffers[env_id].append((image, label))
            return
        kind = "positive" if label else "negative"
        if self._capped(kind) or self._rng.random() >= self.sample_rates[kind]:
            return
        name = self._write(kind, iio.imwrite("<bytes>", image.numpy(), extension=".png"), ".png")
        self._pending_frames[f"{self.dirs[kind]}/{name}"] = self._current_episode[env_id]

    def _finish_episode(self, env_id: int) -> None:
        self._stats["episodes"] += 1
        buffer = self._buffers[env_id]
        kind = "positive" if self._success_once[env_id] else "negative"
        if buffer and not self._capped(kind):
            images = torch.stack([image for image, _ in buffer]).permute(0, 3, 1, 2).float().div_(255.0)
            labels = np.array([label for _, label in buffer], dtype=np.float32)
            data = {"images": {self.camera_key: images.numpy()}, "labels": labels}
            raw = io.BytesIO()
            np.save(raw, data, allow_pickle=True)
            self._write(kind, raw.getvalue(), ".npy")
        self._buffers[env_id] = []
        self._success_once[env_id] = False
        self._since_success[env_id] = -1
        self._current_episode[env_id] = next(self._episode_ids)

    def _capped(self, kind: str) -> bool:
        cap = self.caps[kind]
        return cap is not None and self.counts[kind] >= cap

    def _check_stop(self, trainer: Any) -> None:
        if self.stopped or not all(self._capped(kind) for kind in KINDS):
            return
        self.stopped = True
        self._buffers = [[] for _ in self._buffers]
        trainer.log_info(f"reward_data_collection: caps reached (pos={self.counts['positive']}/{self.caps['positive']}, neg={self.counts['negative']}/{self.caps['negative']}); no more frames are rendered for it")

    # ------------------------------------------------------------------ files

    def _numbers(self, kind: str) -> List[int]:
        folder = self.data_dir / self.dirs[kind]
        if not folder.is_dir():
            return []
        return [int(m.group(1)) for m in map(_NUMBERED.match, (p.name for p in folder.iterdir())) if m]

    def _write(self, kind: str, data: bytes, suffix: str) -> str:
        """Write ``data`` under the next free number of ``kind``; returns the file name."""
        while True:
            name = f"{self._next_number[kind]:06d}{suffix}"
            self._next_number[kind] += 1
            if create_exclusive(self.data_dir / self.dirs[kind] / name, data):
                self.counts[kind] += 1
                self.written[kind] += 1
                return name

    @contextmanager
    def _manifest_lock(self) -> Iterator[None]:
        # ranks sharing a data dir merge their frame_trajectories into one manifest
        with open(self.data_dir / ".manifest.lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _write_manifest(self) -> None:
        with self._manifest_lock():
            manifest = dict(self._manifest)
            manifest["counts"] = {kind: len(self._numbers(kind)) for kind in KINDS}
            manifest["version"] = FORMAT_VERSION
            if self.cfg.format == "frames":
                frames = (self._read_manifest() or {}).get("frame_trajectories", {})
                frames.update(self._pending_frames)
                manifest["frame_trajectories"] = frames
            atomic_write_json(self.manifest_path, manifest)
        self._pending_frames.clear()
        self.counts = dict(manifest["counts"])  # includes files other ranks wrote

    # ------------------------------------------------------------------ reporting

    def progress(self) -> Dict[str, Any]:
        return {"pos": self.counts["positive"], "neg": self.counts["negative"]} if self.counts else {}

    def on_rollout_end(self, trainer: Any) -> None:
        self._write_manifest()
        trainer.logger.add_scalar("collection/positive", self.counts["positive"], trainer.global_step)
        trainer.logger.add_scalar("collection/negative", self.counts["negative"], trainer.global_step)

    def on_train_end(self, trainer: Any) -> None:
        self._write_manifest()
        if sum(self.written.values()) == 0:
            trainer.log_info(f"!!! WARNING: reward_data_collection wrote NO files to {self.data_dir}: {self._zero_files_reason(trainer)} !!!")
        else:
            trainer.log_info(f"reward_data_collection: wrote {self.written['positive']} positive and {self.written['negative']} negative files to {self.data_dir}")

    def _zero_files_reason(self, trainer: Any) -> str:
        cfg = self.cfg
        if self.capped_at_start:
            keys = "target_success/target_failure" if cfg.format == "frames" else "max_positive_trajectories/max_negative_trajectories"
            return f"the directory already held pos={self.counts['positive']}, neg={self.counts['negative']} files, at the caps ({keys}); raise them or use a new data_dir"
        if self._stats["episodes"] == 0 and (cfg.format == "trajectory" or cfg.render == "episode_end"):
            limit = getattr(trainer.env, "max_episode_steps", "?")
            return f"no episode finished (each env ran {self._stats['env_steps']} steps, episodes last up to {limit}); raise runtime.iterations or runtime.rollout_steps"
        if self._stats["frames"] == 0:
            return f"no frames were rendered (render={cfg.render!r})"
        return f"sample_rate_success={cfg.sample_rate_success} / sample_rate_fail={cfg.sample_rate_fail} dropped all {self._stats['frames']} frames"
