"""Configuration of reward-model training, and the model it builds from it and the data manifest."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional

import torch

from embodireward.config import ConfigError, apply_overrides, config_error, load_json, parse_dataclass
from embodireward.builder import lookup
from embodireward.registry import REWARD_MODELS
from embodireward.rewards.base import BaseRewardModel, robot_state_mismatch
from embodireward.rewards.dataset import AugmentConfig
from embodireward.rewards.manifest import class_names

MONITOR_MODES = {"val/f1": "max", "val/balanced_accuracy": "max", "val/auroc": "max", "val/accuracy": "max", "val/loss": "min"}


@dataclass
class ModelSection:
    name: str = "resnet_reward"
    # model Config keys; camera_keys and image_size default to the data manifest's
    cfg: Dict[str, Any] = field(default_factory=dict)


@dataclass
class RewardTrainConfig:
    data_path: str
    output_dir: str = "outputs/reward_model"
    model: ModelSection = field(default_factory=ModelSection)
    plugins: List[str] = field(default_factory=list)  # modules / .py files registering custom reward models
    epochs: int = 10
    batch_size: int = 64
    lr: float = 3e-4
    weight_decay: float = 1e-4
    val_split: float = 0.2  # fraction of trajectories (per class) held out
    # fewest frames of any class worth training on: below it the validation metrics rest on a
    # handful of frames (a warm-up that never succeeded gives a model that predicts noise)
    min_class_frames: int = 10
    early_stopping_patience: int = 5  # epochs without a better ``monitor``; 0 disables
    monitor: Literal["val/f1", "val/balanced_accuracy", "val/auroc", "val/loss", "val/accuracy"] = "val/f1"
    scheduler: Literal["cosine", "warmup_cosine", "constant"] = "cosine"
    warmup_epochs: int = 1  # warmup_cosine only
    grad_clip: float = 1.0  # max gradient norm; 0 disables
    # class imbalance: "pos_weight" weights the loss (binary: BCE pos_weight = negatives / positives;
    # K classes: cross-entropy weight n / (K n_k)), "sampler" draws every class equally often
    balance: Literal["pos_weight", "sampler", "none"] = "pos_weight"
    num_workers: int = 0
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:<i>
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "fp32"  # forward/backward compute type (utils.precision); validation runs fp32
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    max_train_samples: Optional[int] = None  # random subset of the training frames
    num_threads: int = 0  # torch CPU threads; 0 keeps torch's default
    progress_bar: bool = True

    def validate(self, path: str) -> None:
        for key in ("epochs", "batch_size"):
            if getattr(self, key) < 1:
                raise config_error(path, key, f"must be >= 1, got {getattr(self, key)}")
        for key in ("lr", "weight_decay", "grad_clip", "val_split"):
            if not math.isfinite(getattr(self, key)):
                raise config_error(path, key, f"must be a finite number, got {getattr(self, key)}")
        for key in ("min_class_frames", "weight_decay", "early_stopping_patience", "warmup_epochs", "grad_clip", "num_workers", "num_threads"):
            if getattr(self, key) < 0:
                raise config_error(path, key, f"must be >= 0, got {getattr(self, key)}")
        if self.lr <= 0:
            raise config_error(path, "lr", f"must be > 0, got {self.lr}")
        if not 0.0 < self.val_split < 1.0:
            raise config_error(path, "val_split", f"must be in (0, 1), got {self.val_split}")
        if self.max_train_samples is not None and self.max_train_samples < 1:
            raise config_error(path, "max_train_samples", f"must be >= 1 or null, got {self.max_train_samples}")
        if self.device != "auto":
            try:
                torch.device(self.device)
            except RuntimeError:
                raise config_error(path, "device", f"expected 'auto', 'cpu', 'cuda' or 'cuda:<index>', got {self.device!r}")


def load_reward_train_config(path: str | Path, overrides: Optional[List[str]] = None) -> RewardTrainConfig:
    return parse_dataclass(RewardTrainConfig, apply_overrides(load_json(path), overrides or []), "")


def check_model_section(section: ModelSection, path: str = "model") -> None:
    """The model name is registered and its ``cfg`` parses; checked before any data exists (a
    pipeline does so before its warm-up stage), so ``camera_keys`` / ``image_size`` may be absent."""
    parse_dataclass(lookup(REWARD_MODELS, section.name, f"{path}.name").Config, section.cfg, f"{path}.cfg")


def build_reward_model(section: ModelSection, manifest: Dict[str, Any], path: str = "model") -> BaseRewardModel:
    """A fresh model for ``section``; ``camera_keys`` / ``image_size`` not given come from the data manifest.

    A ``num_classes`` >= 2 model must have as many classes as the data; a binary model trains on
    any data, its positive class being the data's last class (success).
    """
    cls = lookup(REWARD_MODELS, section.name, f"{path}.name")
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    from_data = {"camera_keys": manifest.get("camera_keys"), "image_size": manifest.get("image_size")}
    cfg_data = {k: v for k, v in from_data.items() if k in fields and v} | section.cfg
    cfg = parse_dataclass(cls.Config, cfg_data, f"{path}.cfg")
    unknown = [k for k in getattr(cfg, "camera_keys", []) if k not in manifest.get("camera_keys", [])]
    if unknown:
        raise ConfigError(f"{path}.cfg.camera_keys", f"camera(s) {unknown} are not in the data (it has {manifest.get('camera_keys')})")
    problem = robot_state_mismatch(getattr(cfg, "robot_state_dim", 0), manifest.get("robot_state_dim", 0), "the data's frames carry")
    if problem:
        raise ConfigError(f"{path}.cfg.robot_state_dim", f"{problem} (collect with reward_data_collection robot_state: true)")
    num_classes = getattr(cfg, "num_classes", 1)
    data_classes = class_names(manifest) if "format" in manifest else None
    if num_classes >= 2 and data_classes is not None and num_classes != len(data_classes):
        raise ConfigError(f"{path}.cfg.num_classes", f"the model has {num_classes} classes but the data has "
                                                     f"{len(data_classes)} ({', '.join(data_classes)})")
    return cls(cfg)
