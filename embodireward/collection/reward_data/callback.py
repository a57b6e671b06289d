"""The ``reward_data_collection`` trainer callback: label frames while RL trains, and store them.

Construction (before the run directory exists) checks everything that can be checked without
writing: the env has the camera, reports success (``env.has_success``) and, for stage labels,
names its stages (``env.stage_names``); the data directory is writable and any data already there
was recorded the same way. ``on_train_start`` then opens the directory (see ``store``).

``state_dict`` holds everything a resumed run needs to collect exactly what an uninterrupted one
would: the random generator, each env's label bookkeeping, episode ids and buffered frames,
the numbering and counters.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch

from embodireward.collection.reward_data.config import CollectionConfig
from embodireward.collection.reward_data.labels import EpisodeLabels
from embodireward.collection.reward_data.reporting import note_early_caps, zero_files_reason
from embodireward.collection.reward_data.store import DataStore
from embodireward.config import ConfigError
from embodireward.envs.base import RenderRequest
from embodireward.registry import register_callback
from embodireward.rewards.frame_png import encode_frame
from embodireward.rewards.manifest import binary_class_names
from embodireward.trainer.callbacks import Callback, StepData
from embodireward.utils.io import is_writable_location

PATH = "reward_data_collection"


def stage_names_of(env: Any, env_id: str) -> List[str]:
    """The env's ``stage_names`` (>= 2 distinct names usable as directories, success last)."""
    names = getattr(env, "stage_names", None)
    if not isinstance(names, (tuple, list)) or len(names) < 2 or len(set(names)) != len(names) \
            or not all(isinstance(n, str) and n and "/" not in n for n in names):
        raise ConfigError(f"{PATH}.labels", f"'stage' needs env '{env_id}' to name its stages in a stage_names attribute "
                                            f"(>= 2 distinct names, success last), got {names!r}")
    return list(names)


@register_callback("reward_data_collection")
class RewardDataCollection(Callback):
    """Saves class-labelled camera frames of training episodes (success/failure or task stages) for reward-model training."""

    Config = CollectionConfig

    def __init__(self, cfg: CollectionConfig, trainer: Any = None):
        super().__init__(cfg, trainer)
        self.store: Optional[DataStore] = None
        self.stopped = False  # all caps reached
        self._requested: RenderRequest = "never"
        self._restored: Optional[Dict[str, Any]] = None  # state loaded before on_train_start
        if trainer is not None:
            self._configure(trainer)

    # ------------------------------------------------------------------ setup (no files written)

    def _configure(self, trainer: Any) -> None:
        cfg, env = self.cfg, trainer.env
        desc = env.describe()
        env_id = desc.get("env_id")
        cameras = list(getattr(env, "camera_keys", ()) or desc.get("camera_keys", []))
        if not cameras:
            raise ConfigError(PATH, f"env '{env_id}' has no cameras; it cannot collect images")
        self.camera_key = cfg.camera_key or cameras[0]
        if self.camera_key not in cameras:
            raise ConfigError(f"{PATH}.camera_key", f"{self.camera_key!r} is not a camera of env '{env_id}' (cameras: {', '.join(cameras)})")
        if not getattr(env, "has_success", True):
            raise ConfigError(PATH, f"env '{env_id}' reports no success (has_success is false), so frames cannot be labelled")
        if cfg.labels == "stage":
            names = stage_names_of(env, env_id)
        else:
            names = binary_class_names(cfg.format, cfg.positive_dir, cfg.negative_dir)
        self.class_names = names
        last = len(names) - 1
        self.caps = [cfg.success_cap if k == last else cfg.failure_cap for k in range(len(names))]
        self.sample_rates = [cfg.sample_rate_success if k == last else cfg.sample_rate_fail for k in range(len(names))]
        run_dir = getattr(trainer, "run_dir", None)
        self.data_dir = Path(cfg.data_dir.replace("{run_dir}", str(run_dir))).resolve()
        problem = is_writable_location(self.data_dir)
        if problem:
            raise ConfigError(f"{PATH}.data_dir", f"cannot collect into '{self.data_dir}': {problem}")
        header = {"format": cfg.format, "labels": cfg.labels, "env": desc, "camera_keys": [self.camera_key],
                  "image_size": list(desc.get("image_size") or []), "render": cfg.render,
                  "class_names": names, "num_classes": len(names)}
        if cfg.robot_state:
            state_dim = int(getattr(env, "robot_state_dim", 0))
            if state_dim <= 0:
                raise ConfigError(f"{PATH}.robot_state", f"env '{env_id}' reports no robot state with its frames (robot_state_dim 0)")
            header["robot_state_dim"] = state_dim
        if cfg.labels == "success":  # older readers find the two classes here
            header |= {"negative_dir": names[0], "positive_dir": names[1]}
        self.store = DataStore(self.data_dir, header)
        existing = self.store.read_manifest()
        if existing is not None:
            self.store.check_compatible(existing)

        n = env.num_envs
        self.rank, self.world_size = int(getattr(trainer, "rank", 0)), int(getattr(trainer, "world_size", 1))
        self._log_info = getattr(trainer, "log_info", print)
        self._rng = np.random.default_rng(cfg.seed + self.rank)
        self.labels = EpisodeLabels(n, len(names), cfg.steps_after_success)
        self._buffers: List[List[Tuple[torch.Tensor, int]]] = [[] for _ in range(n)]
        self._episode_ids: List[int] = []  # set in on_train_start, after the manifest is repaired
        self._next_episode_id = 0
        self.stats = {"episodes": 0, "frames": 0, "env_steps": 0}
        self.noted_caps: set = set()  # classes whose cap was reached (and reported)

    def on_train_start(self, trainer: Any) -> None:
        if self.store is None:
            self._configure(trainer)
        store = self.store
        resumed = self._restored is not None and self.world_size == 1
        fixed = store.open(rollback_to=self._restored["next_number"] if resumed else None)
        if fixed:
            trainer.log_info(f"reward_data_collection: repaired {store.manifest_path}: {'; '.join(fixed)}")
        if self._restored is None:
            # episode ids unique across ranks and earlier runs: base + rank + world_size * k
            listed = [i for i in store.listing(store.read_manifest()).values() if i is not None]
            self._next_episode_id = max(listed, default=-1) + 1 + self.rank
            self._episode_ids = [self._new_episode_id() for _ in range(len(self._buffers))]
        self.capped_at_start = all(self.capped(k) for k in range(len(self.class_names)))
        self.noted_caps = {k for k in range(len(self.class_names)) if self.capped(k)}
        self._check_stop(trainer)
        counts = ", ".join(f"{name}={count}" for name, count in zip(self.class_names, store.counts))
        trainer.log_info(f"reward_data_collection: {self.cfg.format} data of camera '{self.camera_key}' -> {self.data_dir} ({counts} already there)")

    def _new_episode_id(self) -> int:
        episode_id, self._next_episode_id = self._next_episode_id, self._next_episode_id + self.world_size
        return episode_id

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
        labels = self.labels.update(success, self._stage(step) if self.cfg.labels == "stage" else None)
        self.stats["env_steps"] += 1

        if self._requested == "every_step":
            wanted = torch.arange(success.numel())
        elif self._requested == "episode_end":
            wanted = done.nonzero().flatten()
        else:
            wanted = done.new_zeros(0, dtype=torch.long)
        if wanted.numel():
            if step.frames is None:
                raise RuntimeError(f"reward_data_collection asked for '{self._requested}' frames but the step has none; pass frame_request() to env.step")
            frames = step.frames.select(wanted)
            images = frames.images[self.camera_key].detach().cpu()
            states = None
            if self.cfg.robot_state:
                if frames.robot_state is None:
                    raise RuntimeError("reward_data_collection: robot_state is set but the step's frames carry no robot_state")
                states = frames.robot_state.detach().cpu().numpy()
            self.stats["frames"] += int(wanted.numel())
            for i, env_id in enumerate(wanted.tolist()):
                self._add_frame(env_id, images[i].clone(), int(labels[env_id]), None if states is None else states[i])

        for env_id in done.nonzero().flatten().tolist():
            self._finish_episode(env_id)
        self._check_stop(trainer)

    def _stage(self, step: StepData) -> torch.Tensor:
        stage = step.info.get("stage")
        if stage is None:
            raise RuntimeError("reward_data_collection: labels 'stage' but the env's step info has no 'stage'")
        stage = torch.as_tensor(stage).detach().cpu().long()
        if stage.numel() and (stage.min() < 0 or stage.max() >= len(self.class_names)):
            raise RuntimeError(f"reward_data_collection: info['stage'] must be in [0, {len(self.class_names) - 1}] (stage_names {self.class_names}), got {sorted(set(stage.tolist()))}")
        return stage

    def _add_frame(self, env_id: int, image: torch.Tensor, label: int, robot_state: Optional[np.ndarray] = None) -> None:
        if self.cfg.format == "trajectory":
            self._buffers[env_id].append((image, label))
            return
        if self.capped(label) or self._rng.random() >= self.sample_rates[label]:
            return
        self.store.write(label, encode_frame(image.numpy(), robot_state), self._episode_ids[env_id])

    def _finish_episode(self, env_id: int) -> None:
        self.stats["episodes"] += 1
        buffer = self._buffers[env_id]
        episode_class = int(self.labels.episode_class[env_id])
        if buffer and not self.capped(episode_class):
            images = torch.stack([image for image, _ in buffer]).permute(0, 3, 1, 2).float().div_(255.0)
            labels = np.array([label for _, label in buffer], dtype=np.int64)
            raw = io.BytesIO()
            np.save(raw, {"images": {self.camera_key: images.numpy()}, "labels": labels}, allow_pickle=True)
            self.store.write(episode_class, raw.getvalue())
        self._buffers[env_id] = []
        self.labels.finish(env_id)
        self._episode_ids[env_id] = self._new_episode_id()

    def capped(self, k: int) -> bool:
        cap = self.caps[k]
        return cap is not None and self.store.counts[k] >= cap

    def _check_stop(self, trainer: Any) -> None:
        if self.stopped or not all(self.capped(k) for k in range(len(self.class_names))):
            return
        self.stopped = True
        self._buffers = [[] for _ in self._buffers]
        caps = ", ".join(f"{name}={count}/{cap}" for name, count, cap in zip(self.class_names, self.store.counts, self.caps))
        trainer.log_info(f"reward_data_collection: caps reached ({caps}); no more frames are rendered for it")
        if self.cfg.stop_run_when_full:
            trainer.request_stop(f"reward_data_collection: caps reached ({caps}) and stop_run_when_full is set")

    # ------------------------------------------------------------------ resume

    def state_dict(self) -> Dict[str, Any]:
        buffers = [{"images": torch.stack([image for image, _ in buffer]) if buffer else torch.zeros(0, dtype=torch.uint8),
                    "labels": torch.tensor([label for _, label in buffer], dtype=torch.long)} for buffer in self._buffers]
        return {"rank": self.rank, "world_size": self.world_size, "rng": self._rng.bit_generator.state,
                "labels": self.labels.state_dict(), "episode_ids": list(self._episode_ids), "next_episode_id": self._next_episode_id,
                "buffers": buffers, "pending": dict(self.store.pending), "next_number": list(self.store.next_number),
                "written": list(self.store.written), "stats": dict(self.stats), "stopped": self.stopped}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        if (state["rank"], state["world_size"]) != (self.rank, self.world_size):
            self._log_info(f"reward_data_collection: the checkpoint holds rank {state['rank']}/{state['world_size']}'s state, "
                  f"this is rank {self.rank}/{self.world_size}: collecting from a fresh state")
            return
        if len(state["buffers"]) != len(self._buffers):
            raise ValueError(f"reward_data_collection state holds {len(state['buffers'])} envs, this run has {len(self._buffers)}")
        self._rng.bit_generator.state = state["rng"]
        self.labels.load_state_dict(state["labels"])
        self._episode_ids = [int(i) for i in state["episode_ids"]]
        self._next_episode_id = int(state["next_episode_id"])
        self._buffers = [list(zip(buffer["images"], buffer["labels"].tolist())) for buffer in state["buffers"]]
        self.store.pending = dict(state["pending"])
        self.store.written = list(state["written"])
        self.stats = dict(state["stats"])
        self.stopped = bool(state["stopped"])
        self._restored = state

    # ------------------------------------------------------------------ reporting

    def progress(self) -> Dict[str, Any]:
        if self.store is None:
            return {}
        return {"pos": self.store.counts[-1], "neg": sum(self.store.counts[:-1])}

    def on_rollout_end(self, trainer: Any) -> None:
        self.store.commit()
        counts = self.store.counts
        trainer.logger.add_scalar("collection/positive", counts[-1], trainer.global_step)
        trainer.logger.add_scalar("collection/negative", sum(counts[:-1]), trainer.global_step)
        if self.cfg.labels == "stage":
            for name, count in zip(self.class_names, counts):
                trainer.logger.add_scalar(f"collection/{name}", count, trainer.global_step)
        note_early_caps(self, trainer)

    def on_train_end(self, trainer: Any) -> None:
        self.store.commit()
        written = self.store.written
        if sum(written) == 0:
            trainer.log_info(f"!!! WARNING: reward_data_collection wrote NO files to {self.data_dir}: {zero_files_reason(self, trainer)} !!!")
        else:
            per_class = ", ".join(f"{count} {name}" for name, count in zip(self.class_names, written))
            trainer.log_info(f"reward_data_collection: wrote {per_class} files to {self.data_dir}")
