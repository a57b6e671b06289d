"""Entry point: ``python -m embodireward.train_reward --config reward_model.json [--set key=value ...]``.

Trains a reward model on a collected data directory (see ``embodireward.rewards.training``).
Config errors print one line (``json.path: message``) and exit with status 2.
"""
from __future__ import annotations

from typing import List, Optional

from embodireward.cli import make_parser, run_cli

DESCRIPTION = """Train an image reward model (a success classifier) on a collected data directory.

Writes best_model.safetensors + best_model.json (the sidecar), last_model.*, metrics.json
and TensorBoard logs into the config's output_dir."""

EXAMPLES = """
  embodireward train-reward --config configs/push_cube_2d/reward_model.json
  embodireward train-reward --config configs/push_cube_2d/reward_model.json --set data_path=data/my_task --set epochs=3
"""


def main(argv: Optional[List[str]] = None) -> int:
    parser = make_parser("python -m embodireward.train_reward", DESCRIPTION, EXAMPLES)
    parser.add_argument("--config", required=True, help="reward training JSON config (see configs/push_cube_2d/reward_model.json)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value (parsed as JSON), e.g. --set epochs=3; repeatable")
    args = parser.parse_args(argv)

    from embodireward.rewards.evaluation import summary_line
    from embodireward.rewards.training import load_reward_train_config, train_reward_model
    from embodireward.utils import distributed as dist_utils

    cfg = load_reward_train_config(args.config, args.overrides)
    with dist_utils.process_group(cfg.device):  # under torchrun: data-parallel over the ranks
        result = train_reward_model(cfg)
        if dist_utils.rank() != 0:
            return 0
    threshold = result["recommended_threshold"]
    print(
        f"best epoch {result['best_epoch']}/{result['epochs_run']}: {summary_line(result['best'], 'val/')}"
        + (f"  recommended_threshold {threshold:.3f}" if threshold is not None else "")
        + f"\nsaved {result['paths']['best_model']} (metrics: {result['paths']['metrics']}, evaluation: {result['paths']['evaluation']})"
    )
    return 0


def cli() -> None:
    """Console-script entry point."""
    run_cli(main)


if __name__ == "__main__":
    cli()
