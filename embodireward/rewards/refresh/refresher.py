"""``reward.refresh``: re-label what the policy now produces and fine-tune the reward model on it.

A frozen classifier's blind spots become the policy's goal (reward hacking). Every ``every``
iterations (or when predicted and true success rates drift apart), the refresh:

1. picks frames scored since the last refresh: the ones the model is most sure are successes,
   plus a random sample (:mod:`.pool`);
2. sends them to the labeller (:mod:`.labellers`) and takes the labels that have arrived, within
   ``label_budget`` for labellers that cost labels;
3. writes the labelled frames to ``data_dir``, a reward-data directory (each frame once);
4. fine-tunes a copy of the model on the original data plus all refresh labels (:mod:`.finetune`),
   saves it with its sidecar as ``<run_dir>/reward_models/refresh_<k>``, and swaps it into the
   reward hook in one assignment;
5. logs, and appends to ``<run_dir>/reward_models/refreshes.json``: labels used, and the precision
   and recall against true success on the random sample, scored by the model before and after.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from embodireward.builder import lookup, parse_component_cfg
from embodireward.collection.reward_data.store import DataStore
from embodireward.config import ConfigError, RefreshSection
from embodireward.registry import LABELLERS
from embodireward.rewards.base import ROBOT_STATE_KEY
from embodireward.rewards.checkpoint import load_reward_model, save_reward_model
from embodireward.rewards.data import load_reward_data
from embodireward.rewards.frame_png import encode_frame
from embodireward.rewards.hook import agreement_metrics, confusion_counts
from embodireward.rewards.manifest import MANIFEST, load_manifest
from embodireward.rewards.refresh.finetune import finetune, grow
from embodireward.rewards.refresh.labellers import LabellerContext
from embodireward.rewards.refresh.pool import CandidatePool
from embodireward.trainer.callbacks import Callback
from embodireward.utils.io import atomic_write_json, is_writable_location, make_dirs

PATH = "reward.refresh"
HEADER_KEYS = ("format", "labels", "env", "camera_keys", "image_size", "render", "class_names", "num_classes", "negative_dir", "positive_dir",
               "robot_state_dim")  # what the refresh data shares with the model's training data


class RewardRefresh(Callback):
    """Built by the Trainer when ``reward.refresh`` is set; see the module docstring."""

    def __init__(self, cfg: RefreshSection, trainer: Any):
        super().__init__(cfg, trainer)
        hook = trainer.reward_hook
        self.hook = hook
        if hook.model.num_classes != 1:
            raise ConfigError(PATH, f"refreshes binary success models; the checkpoint has {hook.model.num_classes} classes")
        if len(hook.model.cfg.camera_keys) != 1:
            raise ConfigError(PATH, f"refreshes single-camera models; the checkpoint reads {hook.model.cfg.camera_keys}")
        if trainer.world_size > 1:
            raise ConfigError(PATH, "is not supported under torchrun yet (each rank would label and fine-tune apart); run it in one process")
        split = hook.model.sidecar.get("data_split") or {}
        self.original_path = Path(split.get("data_path", ""))
        if not split or not (self.original_path / MANIFEST).is_file():
            raise ConfigError(PATH, f"needs the model's training data; its sidecar points at '{split.get('data_path')}', which holds no reward data")
        self.split = split
        self.run_dir = Path(trainer.run_dir)
        self.data_dir = Path(cfg.data_dir.replace("{run_dir}", str(self.run_dir))).resolve()
        for path, where in ((f"{PATH}.data_dir", self.data_dir), (PATH, self.run_dir / "reward_models")):
            problem = is_writable_location(where)
            if problem:
                raise ConfigError(path, f"cannot write to '{where}': {problem}")
        labeller_cls = lookup(LABELLERS, cfg.labeller.name, f"{PATH}.labeller.name")
        context = LabellerContext(self.run_dir, bool(getattr(trainer.env, "has_success", True)), trainer.log_info)
        self.labeller = labeller_cls(parse_component_cfg(labeller_cls, cfg.labeller.cfg, f"{PATH}.labeller.cfg"), context)
        self.camera_key = hook.model.cfg.camera_keys[0]
        self.pool = CandidatePool(trainer.env.num_envs, self.camera_key, cfg.frames_per_refresh, cfg.pool_size, trainer.config.runtime.seed,
                                  cfg.confident_selection)
        hook.observers.append(self.pool.add)
        self.original = None  # the model's training data, read at the first refresh
        self.refreshes = 0
        self.labels_used = 0
        self.labelled_ids: set = set()  # frames sent to the labeller
        self.added_ids: set = set()  # frames written to the data set
        self.model_path: Optional[str] = None  # the latest refreshed model and its threshold (restored on resume)
        self.model_threshold: Optional[float] = None
        self.records: List[Dict[str, Any]] = []

    # ------------------------------------------------------------------ run lifecycle

    def on_train_start(self, trainer: Any) -> None:
        manifest = load_manifest(self.original_path)  # the header only: the frames are read at the first refresh
        header = {k: manifest[k] for k in HEADER_KEYS if k in manifest} | {"format": "frames", "camera_keys": [self.camera_key]}
        self.store = DataStore(self.data_dir, header)
        existing = self.store.read_manifest()
        if existing is not None:
            self.store.check_compatible(existing)
        self.store.open()
        self.labeller.on_train_start()
        if self.model_path is not None:  # resumed: score with the model the run had reached
            self.hook.swap_model(load_reward_model(self.model_path, device=self.hook.manager.device), self.model_threshold)
        trainer.log_info(f"reward refresh: every {self.cfg.every or '-'} iteration(s), labeller '{self.cfg.labeller.name}', "
                         f"budget {self.cfg.label_budget if self.labeller.uses_budget else 'none needed'}, labels -> {self.data_dir}")

    def on_update_end(self, trainer: Any, metrics: Dict[str, float]) -> None:
        cfg = self.cfg
        due = bool(cfg.every) and trainer.iteration % cfg.every == 0
        drift = self.pool.drift()
        drifted = cfg.drift_threshold is not None and drift is not None and drift > cfg.drift_threshold
        if due or drifted:
            self.refresh(trainer, "schedule" if due else f"drift {drift:.3f}")

    # ------------------------------------------------------------------ one refresh

    def budget_left(self) -> Optional[int]:
        if not self.labeller.uses_budget or self.cfg.label_budget is None:
            return None
        return max(0, self.cfg.label_budget - self.labels_used)

    def refresh(self, trainer: Any, reason: str) -> Dict[str, Any]:
        cfg, hook = self.cfg, self.hook
        start = time.perf_counter()
        left = self.budget_left()
        count = cfg.frames_per_refresh if left is None else min(cfg.frames_per_refresh, left)
        requested = 0
        if count:
            frames = self.pool.select(count, cfg.confident_fraction, self.labelled_ids)
            if frames:
                self.labeller.submit(frames)
                requested = len(frames["frame_id"])
                self.labels_used += requested if self.labeller.uses_budget else 0
                self.labelled_ids.update(frames["frame_id"].tolist())  # never offered again
        added = self._add_to_data(self.labeller.ready())
        record: Dict[str, Any] = {"refresh": self.refreshes + 1, "iteration": trainer.iteration, "global_step": trainer.global_step,
                                  "reason": reason, "requested": requested, "labels_added": added["total"],
                                  "labels_added_success": added["success"], "labels_used": self.labels_used,
                                  "threshold": hook.threshold}
        sample = self.pool.random_sample()
        record |= self._agreement(sample, sample["predicted"] if sample else None, "before")
        if added["total"] >= max(1, cfg.min_new_labels):
            record |= self._finetune_and_swap(trainer, sample)
        record["seconds"] = round(time.perf_counter() - start, 3)
        self.records.append(record)
        atomic_write_json(make_dirs(self.run_dir / "reward_models") / "refreshes.json", self.records)
        trainer.logger.add_scalars({f"refresh/{k}": float(v) for k, v in record.items() if isinstance(v, (int, float)) and k != "refresh"},
                                   trainer.global_step)
        shown = ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items() if k not in ("iteration", "global_step"))
        trainer.log_info(f"reward refresh at iteration {trainer.iteration}: {shown}")
        self.pool.clear()
        return record

    def _add_to_data(self, labelled: List[tuple]) -> Dict[str, int]:
        """Write newly labelled frames into ``data_dir`` (once each); count them."""
        success_class = len(self.store.dirs) - 1
        written = {"total": 0, "success": 0}
        for frame_id, trajectory, image, label, *rest in labelled:
            if frame_id in self.added_ids:  # e.g. a queue answer given twice
                continue
            robot_state = rest[0] if rest else None
            if robot_state is None and self.store.header.get("robot_state_dim"):
                raise RuntimeError(f"reward refresh: labeller '{self.cfg.labeller.name}' returned frame {frame_id} without its robot state, "
                                   "which the model reads; build its labels with embodireward.rewards.refresh.labelled_rows(frames, labels)")
            self.added_ids.add(frame_id)
            png = encode_frame(image.numpy(), None if robot_state is None else robot_state.numpy())
            self.store.write(success_class if label == 1 else 0, png, trajectory_id=trajectory)
            written["total"] += 1
            written["success"] += int(label == 1)
        self.store.commit()
        return written

    def _finetune_and_swap(self, trainer: Any, sample: Optional[Dict[str, torch.Tensor]]) -> Dict[str, Any]:
        hook = self.hook
        if self.original is None:
            self.original = load_reward_data(self.original_path, [self.camera_key])
        new = load_reward_data(self.data_dir, [self.camera_key], require_every_class=False)
        grown = grow(self.original, self.split, new, self.cfg.val_split)
        fixed = hook.section.threshold  # a threshold the config sets stays; else re-chosen on validation
        model, threshold, val = finetune(hook.model, grown, self.cfg, hook.precision, trainer.config.runtime.seed + self.refreshes, fixed)
        self.refreshes += 1
        stem = f"refresh_{self.refreshes:03d}"
        sidecar = {"recommended_threshold": threshold, "metrics": val, "data_split": self.split,
                   "refresh": {"index": self.refreshes, "iteration": trainer.iteration, "data_dir": str(self.data_dir),
                               "labels_used": self.labels_used, "frames_added": len(new)}}
        try:
            path = save_reward_model(model, self.run_dir / "reward_models", stem, sidecar)
        except OSError as exc:  # full or read-only disk: keep scoring with the current model, say so
            self.refreshes -= 1
            trainer.log_info(f"!!! reward refresh: could not save {stem} ({type(exc).__name__}: {exc}); the current model stays !!!")
            return {"error": f"{type(exc).__name__}: {exc}"}
        hook.swap_model(model, threshold)
        self.model_path, self.model_threshold = str(path), threshold
        after = None
        if sample:
            inputs = {self.camera_key: sample["images"]}
            if "robot_state" in sample:
                inputs[ROBOT_STATE_KEY] = sample["robot_state"]
            with hook.precision.autocast():
                after = hook.manager.compute_rewards(inputs).cpu() >= threshold
        return {"model": stem, "new_threshold": threshold, "val_precision": val.get("val/precision"), "val_recall": val.get("val/recall"),
                **self._agreement(sample, after, "after")}

    @staticmethod
    def _agreement(sample: Optional[Dict[str, torch.Tensor]], predicted: Optional[torch.Tensor], when: str) -> Dict[str, float]:
        """Precision / recall of ``predicted`` against the sample's true success (when there is a sample)."""
        if not sample or predicted is None:
            return {}
        m = agreement_metrics("", *confusion_counts(predicted, sample["success"]))
        return {f"{key[1:]}_{when}": value for key, value in m.items() if key[1:] in ("precision", "recall")} | {f"predicted_rate_{when}": float(predicted.float().mean())}

    # ------------------------------------------------------------------ resume

    def state_dict(self) -> Dict[str, Any]:
        return {"pool": self.pool.state_dict(), "refreshes": self.refreshes, "labels_used": self.labels_used,
                "labelled_ids": sorted(self.labelled_ids), "added_ids": sorted(self.added_ids), "model_path": self.model_path, "model_threshold": self.model_threshold, "records": list(self.records),
                "labeller": self.labeller.state_dict()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.pool.load_state_dict(state["pool"])
        self.refreshes = int(state["refreshes"])
        self.labels_used = int(state["labels_used"])
        self.labelled_ids = set(int(i) for i in state["labelled_ids"])
        self.added_ids = set(int(i) for i in state["added_ids"])
        self.model_path, self.model_threshold = state["model_path"], state["model_threshold"]
        self.records = list(state["records"])
        self.labeller.load_state_dict(state["labeller"])

    def progress(self) -> Dict[str, Any]:
        return {"refreshes": self.refreshes, "labels": self.labels_used} if self.labeller.uses_budget else {"refreshes": self.refreshes}
