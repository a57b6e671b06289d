"""What the ``reward_data_collection`` callback tells the user about its data: early caps, empty runs."""
from __future__ import annotations

from typing import Any

from embodireward.collection.reward_data.config import CollectionConfig


def note_early_caps(collector: Any, trainer: Any) -> None:
    """Warn (once per class) when a class fills in the first half of the run: its frames then show only
    the early policy, and the reward model never sees what the later policy does (a blind spot it pays for)."""
    iteration, total = trainer.iteration + 1, trainer.config.runtime.iterations
    for k, name in enumerate(collector.class_names):
        if k in collector.noted_caps or not collector.capped(k):
            continue
        collector.noted_caps.add(k)
        if iteration <= total // 2:
            advice = spreading_advice(collector.cfg, success=k == len(collector.class_names) - 1)
            trainer.log_info(f"!!! reward_data_collection: '{name}' reached its cap ({collector.caps[k]}) in iteration "
                             f"{iteration} of {total}: its frames show only the early policy; {advice} !!!")


def spreading_advice(cfg: CollectionConfig, success: bool) -> str:
    """What fills a class later: a lower sample rate (frames), or a higher cap (trajectories, which are not sampled)."""
    if cfg.format == "frames":
        key = "sample_rate_success" if success else "sample_rate_fail"
        return f"lower {key} (now {getattr(cfg, key)}) to spread them over the run"
    key = cfg.cap_keys[0 if success else 1]
    return f"raise {key} (now {getattr(cfg, key)}) so that it fills later in the run"


def zero_files_reason(collector: Any, trainer: Any) -> str:
    """Why a run wrote no data files, and what to change."""
    cfg, stats = collector.cfg, collector.stats
    if collector.capped_at_start:
        counts = ", ".join(f"{name}={count}" for name, count in zip(collector.class_names, collector.store.counts))
        return f"the directory already held {counts} files, at the caps ({'/'.join(cfg.cap_keys)}); raise them or use a new data_dir"
    if stats["episodes"] == 0 and (cfg.format == "trajectory" or cfg.render == "episode_end"):
        limit = getattr(trainer.env, "max_episode_steps", "?")
        return f"no episode finished (each env ran {stats['env_steps']} steps, episodes last up to {limit}); raise runtime.iterations or runtime.rollout_steps"
    if stats["frames"] == 0:
        return f"no frames were rendered (render={cfg.render!r})"
    return f"sample_rate_success={cfg.sample_rate_success} / sample_rate_fail={cfg.sample_rate_fail} dropped all {stats['frames']} frames"
