"""``early_stopping``: end a run once an evaluation metric has reached a bar, e.g. eval success 0.9.

Like Stable-Baselines3's ``StopTrainingOnRewardThreshold``, but on any logged eval metric and with
a patience: the bar must hold for ``patience`` consecutive evaluations, so that one lucky eval of
few episodes does not end a run. The run then stops after that iteration as if it were its last
(checkpoints written, ``on_train_end`` called); a pipeline goes on to its next stage.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, Literal

from embodireward.config import config_error
from embodireward.registry import register_callback
from embodireward.trainer.callbacks import Callback
from embodireward.trainer.evaluator import EPISODE_METRICS, SUCCESS_KEYS

PATH = "early_stopping"
SUCCESS_METRICS = tuple(EPISODE_METRICS[key] for key in SUCCESS_KEYS)
EVAL_METRICS = (*SUCCESS_METRICS, *(name for name in EPISODE_METRICS.values() if name not in SUCCESS_METRICS))


@dataclass
class EarlyStoppingConfig:
    metric: str = "eval/success_rate"
    threshold: float = 0.9
    mode: Literal["max", "min"] = "max"  # "max": stop at metric >= threshold; "min": at metric <= threshold
    patience: int = 1  # consecutive evaluations at the bar

    def validate(self, path: str) -> None:
        if self.metric not in EVAL_METRICS:
            raise config_error(path, "metric", f"expected one of {', '.join(EVAL_METRICS)}, got {self.metric!r}")
        if not math.isfinite(self.threshold):
            raise config_error(path, "threshold", f"must be a finite number, got {self.threshold}")
        if self.patience < 1:
            raise config_error(path, "patience", f"must be >= 1, got {self.patience}")


@register_callback("early_stopping")
class EarlyStopping(Callback):
    """Stops the run after ``patience`` consecutive evaluations with ``metric`` at ``threshold``."""

    Config = EarlyStoppingConfig

    def __init__(self, cfg: EarlyStoppingConfig, trainer: Any = None):
        super().__init__(cfg, trainer)
        if trainer is not None and not trainer.config.runtime.eval_freq:
            raise config_error(PATH, "metric", "runtime.eval_freq is 0: the run never evaluates, so it could never stop early")
        if trainer is not None and cfg.metric in SUCCESS_METRICS and not getattr(trainer.env, "has_success", True):
            raise config_error(PATH, "metric", f"env '{trainer.config.env.id}' reports no success; use eval/return")
        self.streak = 0

    def state_dict(self) -> Dict[str, Any]:
        return {"streak": self.streak}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.streak = int(state.get("streak", 0))

    def on_eval_end(self, trainer: Any, metrics: Dict[str, float]) -> None:
        cfg = self.cfg
        value = metrics[cfg.metric]
        at_bar = value >= cfg.threshold if cfg.mode == "max" else value <= cfg.threshold
        self.streak = self.streak + 1 if at_bar else 0
        if self.streak >= cfg.patience:
            trainer.request_stop(f"{cfg.metric}={value:.3f} {'>=' if cfg.mode == 'max' else '<='} {cfg.threshold} "
                                 f"for {self.streak} evaluation(s) in a row (early_stopping)")
