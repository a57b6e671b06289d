"""Entry point: ``python -m embodireward.train --config file.json [--set key=value ...]``.

A config with a top-level ``pipeline`` section runs the three-stage learned-reward pipeline
(see ``embodireward.pipeline``); any other config is one training run.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import List, Optional

from embodireward.cli import make_parser, run_cli
from embodireward.config import ConfigError, apply_overrides, load_json, parse_train_config

DESCRIPTION = """Train a policy from a JSON config, or run the three-stage learned-reward pipeline.

A config with a top-level "pipeline" section runs the pipeline: warm-up PPO with data
collection (1_warmup), reward-model training (2_reward_model), PPO on the learned reward
(3_learned_reward), then pipeline_summary.json and report.md. Each PPO stage is the "base"
config merged with its stage block: objects merge key by key, any other value (a list such
as "callbacks", a number, a string) replaces the base value as a whole."""

EXAMPLES = """
  embodireward train --config configs/push_cube_2d/ppo.json
  embodireward train --config configs/push_cube_2d/ppo.json --set runtime.seed=1 --set algorithm.cfg.learning_rate=1e-4
  embodireward train --config configs/push_cube_2d/ppo.json --set runtime.resume=outputs/<run_dir>
  embodireward train --config configs/push_cube_2d/pipeline.json [--force]
"""


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = make_parser("python -m embodireward.train", DESCRIPTION, EXAMPLES)
    parser.add_argument("--config", required=True, help="JSON config file (see configs/ and README.md)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value before validation, e.g. --set algorithm.cfg.learning_rate=1e-4")
    parser.add_argument("--force", action="store_true", help="pipeline configs: re-run every stage (earlier outputs, summary and report are moved aside)")
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    data = apply_overrides(load_json(args.config), args.overrides)
    if "pipeline" in data:
        from embodireward.pipeline import run_pipeline
        from embodireward.utils.distributed import launched_world_size

        if launched_world_size() > 1:  # every rank would run all stages into the same directories
            raise ConfigError("pipeline", "a pipeline config runs in one process; under torchrun launch its stages "
                                          "(embodireward.train / embodireward.train_reward) separately")

        run_pipeline(data, config_path=Path(args.config), force=args.force)
        return 0
    if args.force:
        raise ConfigError("--force", "applies to pipeline configs only (a config with a 'pipeline' section); "
                                     "a single run never overwrites: a new run gets a new directory")
    return train_from_dict(data, base_dir=Path(args.config).resolve().parent)


def train_from_dict(data: dict, base_dir: Optional[Path] = None) -> int:
    from embodireward import builder
    from embodireward.trainer.trainer import Trainer
    from embodireward.utils.distributed import process_group

    config = parse_train_config(data)
    resolved = builder.validate_config(config, base_dir)
    with process_group(config.runtime.device):
        trainer = Trainer(config, resolved)
        try:
            metrics = trainer.train()
        finally:
            trainer.close()
    if trainer.is_main:
        summary = ", ".join(f"{k}={metrics[k]:.3f}" for k in ("eval/success_rate", "eval/return", "episode/success_once") if k in metrics)
        print(f"finished {trainer.iteration} iterations ({trainer.global_step} env steps) in {trainer.run_dir}" + (f": {summary}" if summary else ""))
    return 0


def cli() -> None:
    """Console-script entry point."""
    run_cli(main)


if __name__ == "__main__":
    cli()
