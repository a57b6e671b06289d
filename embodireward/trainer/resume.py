"""What may change when a run is resumed, and the record of what did.

A resumed run must run the config it started with: any other change is an error that lists the
changed keys. Keys in :data:`RESUME_SAFE_KEYS` only steer how long the run goes, how often it logs,
evaluates and saves, and where it reports; changing them is allowed and appended to
``config_history.json`` in the run directory (``config.json`` keeps the original). Keys in
:data:`RESUME_IGNORED_KEYS` say how the run was started or where it lives, which a resume
decides by itself.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

from embodireward.config import ConfigError
from embodireward.utils.io import atomic_write_json

RESUME_SAFE_KEYS = (
    "runtime.iterations",
    "runtime.log_freq",
    "runtime.eval_freq",
    "runtime.eval_episodes",
    "runtime.save_freq",
    "runtime.progress_bar",
    "runtime.use_wandb",
    "runtime.wandb_project_name",
    "runtime.record_video",
    "runtime.video_episodes",
    "runtime.num_threads",  # safe, but another thread count changes float rounding: not bit-identical
    "runtime.rollout_threads",
    "reward.debug_save_dir",
    "reward.debug_save_max",
)
RESUME_IGNORED_KEYS = ("runtime.resume", "runtime.init_from", "runtime.run_dir", "runtime.output_dir", "runtime.exp_name")
HISTORY_FILE = "config_history.json"

Change = Tuple[str, Any, Any]


def flatten(config: Any, prefix: str = "") -> Dict[str, Any]:
    """``{"a": {"b": 1}, "l": [{"c": 2}]}`` -> ``{"a.b": 1, "l[0].c": 2}``; lists of scalars stay whole."""
    if isinstance(config, dict):
        items = {}
        for key, value in config.items():
            items.update(flatten(value, f"{prefix}.{key}" if prefix else key))
        return items or {prefix: {}}
    if isinstance(config, list) and any(isinstance(item, (dict, list)) for item in config):
        items = {}
        for i, value in enumerate(config):
            items.update(flatten(value, f"{prefix}[{i}]"))
        return items or {prefix: []}
    return {prefix: config}


def config_changes(original: Dict[str, Any], new: Dict[str, Any]) -> List[Change]:
    """``(key, old, new)`` for every leaf that differs (a missing side is ``None``), ignored keys left out."""
    old_flat, new_flat = flatten(original), flatten(new)
    changes = []
    for key in sorted(set(old_flat) | set(new_flat)):
        old, value = old_flat.get(key), new_flat.get(key)
        if key not in RESUME_IGNORED_KEYS and json.dumps(old) != json.dumps(value):
            changes.append((key, old, value))
    return changes


def _describe(changes: List[Change]) -> str:
    return ", ".join(f"{key} {json.dumps(old)} -> {json.dumps(new)}" for key, old, new in changes)


def check_resume_config(original: Dict[str, Any], new: Dict[str, Any], source: str) -> List[Change]:
    """Raise on changes outside the allow-list; return the allowed ones."""
    changes = config_changes(original, new)
    refused = [change for change in changes if change[0] not in RESUME_SAFE_KEYS]
    if refused:
        raise ConfigError("runtime.resume", f"config differs from the run's {source}: {_describe(refused)} "
                                            f"(only {', '.join(k.split('.', 1)[1] for k in RESUME_SAFE_KEYS if k.startswith('runtime.'))} "
                                            "may change on resume; start a new run or use init_from)")
    return changes


def record_changes(run_dir: Path, changes: List[Change], iteration: int, global_step: int) -> None:
    """Append one entry to ``config_history.json`` (rewritten atomically)."""
    path = run_dir / HISTORY_FILE
    history = json.loads(path.read_text()) if path.is_file() else []
    history.append({"resumed_at": time.strftime("%Y-%m-%d %H:%M:%S"), "iteration": iteration, "global_step": global_step,
                    "changes": {key: {"old": old, "new": new} for key, old, new in changes}})
    atomic_write_json(path, history)
