"""Finding runs on disk and grouping the seeds of one experiment.

A *run* is a directory with TensorBoard event files, in ``logs/`` (training and reward-model runs)
or directly inside. A *pipeline* directory (``pipeline_summary.json`` or stage folders
``1_warmup``, ``2_reward_model``, ``3_learned_reward``) contributes one run per stage, and each
stage becomes its own panel.

Grouping rule: two runs are seeds of one experiment when

1. their names agree after removing a trailing timestamp (``_20250101_120000``, what
   ``<exp_name>_<timestamp>`` run directories carry) and then a trailing seed suffix
   (``_3``, ``-3``, ``_seed3``, ``_s3``, ``-seed-3``); a pipeline stage is named after its pipeline
   directory; and
2. their ``config.json`` (when both have one) are equal after dropping the keys that only say
   where or how a run ran: ``seed``, ``exp_name``, ``device``, ``progress_bar``, ``num_threads``,
   ``rollout_threads``, ``use_wandb``, ``wandb_project_name``, ``resume``, ``init_from``, and every
   key ending in ``_dir`` or ``_path``, at any depth.

A run's seed is ``runtime.seed`` of its ``config.json`` (else the name's seed suffix).
"""
from __future__ import annotations

import glob
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

from embodireward.cli import CommandError
from embodireward.pipeline import STAGE_DIRS
TIMESTAMP = re.compile(r"_\d{8}_\d{6}$")
SEED_SUFFIX = re.compile(r"[_-](?:seed|s)?[_-]?(\d+)$")
IGNORED_KEYS = {"seed", "exp_name", "device", "progress_bar", "num_threads", "rollout_threads", "use_wandb",
                "wandb_project_name", "resume", "init_from"}


@dataclass
class Run:
    log_dir: Path  # the folder holding the event files
    name: str  # what the legend and the CSV call it
    label: str  # the name without timestamp and seed suffix: the experiment it belongs to
    seed: Optional[int]
    config: Optional[Dict[str, Any]]


def is_pipeline(path: Path) -> bool:
    return (path / "pipeline_summary.json").is_file() or any((path / name).is_dir() for name in STAGE_DIRS.values())


def experiment_label(name: str) -> str:
    return SEED_SUFFIX.sub("", TIMESTAMP.sub("", name)) or name


def event_dir(path: Path) -> Optional[Path]:
    """Where ``path``'s event files are (``logs/`` or ``path`` itself), or None."""
    for candidate in (path / "logs", path):
        if candidate.is_dir() and any(candidate.glob("events.out.tfevents.*")):
            return candidate
    return None


def load_run(path: Path, name: str) -> Optional[Run]:
    log_dir = event_dir(path)
    if log_dir is None:
        return None
    config = None
    if (path / "config.json").is_file():
        try:
            config = json.loads((path / "config.json").read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise CommandError(f"{path / 'config.json'}: unreadable ({exc})") from None
    seed = config.get("runtime", {}).get("seed") if isinstance(config, dict) else None
    if seed is None and SEED_SUFFIX.search(TIMESTAMP.sub("", name)):
        seed = int(SEED_SUFFIX.search(TIMESTAMP.sub("", name)).group(1))
    return Run(log_dir, name, experiment_label(name), seed, config)


def expand(patterns: List[str]) -> List[Path]:
    """Directories matching each pattern (a path or a glob), in order, each once."""
    paths: List[Path] = []
    for pattern in patterns:
        matches = sorted(Path(p) for p in glob.glob(pattern) if Path(p).is_dir())
        if not matches:
            raise CommandError(f"'{pattern}': no run directory matches")
        paths += [p for p in matches if p not in paths]
    return paths


def collect(patterns: List[str]) -> Dict[str, List[Run]]:
    """Runs per panel: one panel per pipeline stage, and one (``""``) for plain runs."""
    panels: Dict[str, List[Run]] = {}
    for path in expand(patterns):
        if is_pipeline(path):
            for stage, folder in STAGE_DIRS.items():
                run = load_run(path / folder, path.name)
                if run is not None:
                    panels.setdefault(stage, []).append(run)
            continue
        run = load_run(path, path.name)
        if run is None:
            raise CommandError(f"{path}: no TensorBoard event files (in logs/ or the directory itself)")
        panels.setdefault("", []).append(run)
    return panels


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in IGNORED_KEYS and not k.endswith(("_dir", "_path"))}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _flatten(value: Any, prefix: str = "") -> Dict[str, Any]:
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _flatten(item, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): json.dumps(value)}


def group_runs(runs: List[Run]) -> Dict[str, List[Run]]:
    """Runs grouped by the module's rule, keyed by a label; runs sharing a name but not a config get
    the config values that tell them apart appended (``ppo (algorithm.cfg.learning_rate=0.001)``)."""
    groups: Dict[tuple, List[Run]] = {}
    for run in runs:
        key = (run.label, json.dumps(_strip(run.config), sort_keys=True) if run.config is not None else None)
        groups.setdefault(key, []).append(run)
    labelled: Dict[str, List[Run]] = {}
    for (label, config_key), members in groups.items():
        rivals = [json.loads(k) for (other, k) in groups if other == label and k is not None]
        if len(rivals) > 1 and config_key is not None:
            mine, flats = _flatten(json.loads(config_key)), [_flatten(r) for r in rivals]
            differing = [k for k in sorted(set().union(*flats)) if len({f.get(k) for f in flats}) > 1]
            settings = ", ".join(f"{k}={mine.get(k, 'unset')}" for k in differing[:2])
            label = f"{label} ({settings})"
        labelled[label] = members
    return labelled
