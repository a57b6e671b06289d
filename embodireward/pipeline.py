"""One config, three stages: warm-up PPO + data collection -> reward-model training -> learned-reward PPO.

A pipeline config has a ``pipeline`` section, a ``base`` training config shared by both PPO stages,
and one block per stage::

    {"pipeline": {"exp_name": "push_cube_2d_pipeline", "output_dir": "outputs"},
     "base": {<training config: runtime, env, policy, algorithm>},
     "warmup": {<overrides of base, e.g. runtime.iterations and the collection callback>},
     "reward_model": {<reward-model training config, without data_path/output_dir>},
     "learned_reward": {<overrides of base, e.g. the reward section>}}

Everything lives under ``<output_dir>/<exp_name>/``: ``reward_data/``, ``1_warmup/``,
``2_reward_model/``, ``3_learned_reward/`` and ``pipeline_summary.json``. Paths are chained
automatically: the collection callback writes into ``reward_data/``, the reward model trains on it,
and the learned-reward stage starts from the warm-up's final checkpoint (``init_from``; not with
``pipeline.warm_start: false``) with the reward model's ``best_model``. A finished stage
(``stage_done.json``) is skipped on re-run; an interrupted PPO stage resumes from its latest
checkpoint; ``--force`` re-runs every stage, moving earlier outputs (summary and report included)
aside instead of deleting them. After each stage,
``pipeline_summary.json`` and ``report.md`` are rebuilt from the stage directories
(``embodireward.pipeline_report``).

Merge rule of a PPO stage: ``base`` merged with the stage block by :func:`deep_merge`; objects
merge key by key, every other value replaces the base one as a whole, lists included (a stage's
``callbacks`` list replaces the base list; repeat base callbacks the stage should keep).
"""
from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

from embodireward.config import ConfigError, parse_dataclass, parse_train_config
from embodireward.utils.io import atomic_write_json

STAGES = ("warmup", "reward_model", "learned_reward")
STAGE_DIRS = {"warmup": "1_warmup", "reward_model": "2_reward_model", "learned_reward": "3_learned_reward"}
DONE_MARKER = "stage_done.json"


@dataclass
class PipelineSection:
    exp_name: str = "pipeline"
    output_dir: str = "outputs"
    # the learned-reward stage starts from the warm-up policy; false: from scratch, so the policy
    # explores on its own and finds what the reward model pays for (e.g. its blind spots)
    warm_start: bool = True


def deep_merge(base: Dict[str, Any], override: Dict[str, Any]) -> Dict[str, Any]:
    """``override`` wins; nested objects merge key by key, lists are replaced."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


class Pipeline:
    """Resolves the three stage configs with chained paths and runs them in order."""

    def __init__(self, data: Dict[str, Any], base_dir: Optional[Path] = None):
        unknown = set(data) - {"pipeline", "base", *STAGES}
        if unknown:
            raise ConfigError(sorted(unknown)[0], f"unknown pipeline section (expected: pipeline, base, {', '.join(STAGES)})")
        for stage in STAGES:
            if not isinstance(data.get(stage), dict):
                raise ConfigError(stage, "missing pipeline stage (an object)")
        self.section = parse_dataclass(PipelineSection, data["pipeline"], "pipeline")
        self.base_dir = base_dir
        self.root = Path(self.section.output_dir) / self.section.exp_name
        self.data_dir = self.root / "reward_data"
        self.stage_dir = {stage: self.root / name for stage, name in STAGE_DIRS.items()}
        base = data.get("base", {})
        self.warmup = self._train_stage(base, data["warmup"], "warmup")
        self.reward_model = self._reward_stage(data["reward_model"])
        self.learned_reward = self._train_stage(base, data["learned_reward"], "learned_reward")

    # -- resolving stage configs ----------------------------------------------------------------
    def _train_stage(self, base: Dict[str, Any], override: Dict[str, Any], stage: str) -> Dict[str, Any]:
        config = deep_merge(base, override)
        runtime = config.setdefault("runtime", {})
        runtime["run_dir"] = str(self.stage_dir[stage])
        runtime.setdefault("exp_name", f"{self.section.exp_name}_{stage}")
        if stage == "warmup":
            collectors = [cb for cb in config.get("callbacks", []) if cb.get("name") == "reward_data_collection"]
            if not collectors:
                raise ConfigError("warmup.callbacks", "the warm-up stage needs a 'reward_data_collection' callback to produce reward-model data")
            for callback in collectors:
                callback.setdefault("cfg", {})["data_dir"] = str(self.data_dir)
        else:
            if self.section.warm_start:
                runtime["init_from"] = str(self.stage_dir["warmup"] / "checkpoints" / "latest.pt")
            reward = config.setdefault("reward", {})
            reward["use_reward_model"] = True
            reward["checkpoint_path"] = str(self.stage_dir["reward_model"] / "best_model.safetensors")
        return config

    def _reward_stage(self, block: Dict[str, Any]) -> Dict[str, Any]:
        return {**block, "data_path": str(self.data_dir), "output_dir": str(self.stage_dir["reward_model"])}

    def validate(self) -> None:
        """Check all three stage configs before anything runs (errors name the stage)."""
        from embodireward import builder
        from embodireward.rewards.train_config import RewardTrainConfig, check_model_section

        for stage, config in (("warmup", self.warmup), ("learned_reward", self.learned_reward)):
            try:
                builder.validate_config(parse_train_config(config), self.base_dir)
            except ConfigError as exc:
                raise ConfigError(f"{stage}.{exc.path}" if exc.path else stage, exc.message) from None
        # the reward hook would refuse this at the start of stage 3; say so before stage 1 runs
        reward_mode = self.learned_reward.get("reward", {}).get("reward_mode")
        for index, callback in enumerate(self.warmup.get("callbacks", [])):
            terminal_only = callback.get("cfg", {}).get("render", "episode_end") == "episode_end"
            if reward_mode == "per_step" and callback.get("name") == "reward_data_collection" and terminal_only:
                raise ConfigError(f"warmup.callbacks.{index}.cfg.render",
                                  "is 'episode_end' (terminal frames only), but learned_reward.reward.reward_mode 'per_step' scores every "
                                  "frame; collect with render 'every_step' or a probability such as 0.1, or use reward_mode 'terminal'")
        reward_cfg = parse_dataclass(RewardTrainConfig, self.reward_model, "reward_model")
        builder.load_plugin_list(reward_cfg.plugins, self.base_dir, "reward_model.plugins")  # built-ins: loaded above
        check_model_section(reward_cfg.model, "reward_model.model")

    # -- running --------------------------------------------------------------------------------
    def is_done(self, stage: str) -> bool:
        return (self.stage_dir[stage] / DONE_MARKER).is_file()

    def _move_aside(self, path: Path) -> None:
        if path.exists():
            stamp = datetime.now().strftime("%Y%m%d_%H%M%S")
            path.rename(path.with_name(f"{path.name}.replaced_{stamp}"))

    def run(self, force: bool = False, config_path: Optional[Path] = None, stages: Sequence[str] = STAGES) -> Dict[str, Any]:
        """Run the unfinished ``stages`` (all three by default; e.g. the first two to share their
        data and model among several learned-reward runs)."""
        from embodireward.pipeline_report import FIGURES_DIR, REPORT_NAME, SUMMARY_NAME, write_summary_and_report

        self.validate()
        if force:  # the summary and report go too: they describe the runs being moved aside
            for path in (self.data_dir, *self.stage_dir.values(), *(self.root / name for name in (SUMMARY_NAME, REPORT_NAME, FIGURES_DIR))):
                self._move_aside(path)
        seconds, summary_path = 0.0, None
        for number, stage in enumerate(STAGES, start=1):
            if stage not in stages:
                continue
            if self.is_done(stage):
                print(f"[pipeline] stage {number}/3 '{stage}' already finished in {self.stage_dir[stage]}; skipping (use --force to re-run)")
                continue
            print(f"[pipeline] stage {number}/3 '{stage}' -> {self.stage_dir[stage]}")
            start = time.perf_counter()
            record = self._run_stage(stage)
            record = {"seconds": round(time.perf_counter() - start, 1), **record}
            seconds += record["seconds"]
            atomic_write_json(self.stage_dir[stage] / DONE_MARKER, record)
            summary_path = write_summary_and_report(self, config_path)  # after each stage: a later failure keeps it
        if summary_path is None:  # every stage was done already: rebuild from their directories
            summary_path = write_summary_and_report(self, config_path)
        print(f"[pipeline] done ({seconds:.0f} s of stage time in this run); summary: {summary_path}, "
              f"report: {summary_path.with_name(REPORT_NAME)}")
        return json.loads(summary_path.read_text())

    def _run_stage(self, stage: str) -> Dict[str, Any]:
        """Run one stage; returns what its ``stage_done.json`` keeps beside the time taken."""
        if stage == "reward_model":
            from embodireward.rewards.training import RewardTrainConfig, train_reward_model

            train_reward_model(parse_dataclass(RewardTrainConfig, self.reward_model, "reward_model"))
            return {}  # its metrics.json holds the best epoch, threshold and metrics
        config = self.warmup if stage == "warmup" else self.learned_reward
        if (self.stage_dir[stage] / "checkpoints" / "latest.pt").is_file():
            # interrupted earlier: continue that run instead of starting over
            config = deep_merge(config, {"runtime": {"resume": str(self.stage_dir[stage]), "init_from": None}})
        totals = run_training_stage(config, self.base_dir)
        return {"reward_model_total": totals} if totals else {}


def run_training_stage(config_data: Dict[str, Any], base_dir: Optional[Path]) -> Dict[str, float]:
    """Train one PPO stage; returns the reward model's run totals against the true success (empty
    without a reward model): ``precision``, ``recall``, ``agreement``, ``false_positive_rate``, ... ."""
    from embodireward import builder
    from embodireward.trainer.trainer import Trainer

    config = parse_train_config(config_data)
    trainer = Trainer(config, builder.validate_config(config, base_dir))
    try:
        metrics = trainer.train()
    finally:
        trainer.close()
    prefix = "reward_model_total/"
    return {key[len(prefix):]: value for key, value in metrics.items() if key.startswith(prefix)}


def run_pipeline(data: Dict[str, Any], config_path: Optional[Path] = None, force: bool = False) -> Dict[str, Any]:
    base_dir = config_path.resolve().parent if config_path else None
    return Pipeline(data, base_dir).run(force=force, config_path=config_path)
