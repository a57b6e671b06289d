"""Judge a trained reward model on labelled data (``embodireward eval-reward``).

Reports balanced accuracy, precision, recall, F1, AUROC, average precision, accuracy and ECE, the
confusion matrix at the threshold (the checkpoint's recommended one unless --threshold), and
writes <reward model dir>/evaluation/: reward_eval.json, reliability.png, false_positives.png and
false_negatives.png (the most confident mistakes). Config and data errors print one line and exit 2.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import List, Optional

from embodireward.cli import make_parser, run_cli
from embodireward.config import ConfigError

DESCRIPTION = """Judge a trained reward model on labelled data: balanced accuracy, precision, recall, F1,
AUROC, average precision, accuracy and ECE, and the confusion matrix at the threshold (the
checkpoint's recommended one unless --threshold). Writes <reward model dir>/evaluation/:
reward_eval.json, reliability.png, false_positives.png and false_negatives.png (the most
confident mistakes)."""

EXAMPLES = """
  embodireward eval-reward outputs/push_cube_2d_pipeline/2_reward_model --data outputs/push_cube_2d_pipeline/reward_data
      the validation split the model was trained with (--split auto), at its recommended threshold
  embodireward eval-reward runs/rm/best_model.safetensors --data data/held_out --threshold 0.5
      every frame of another data directory, at threshold 0.5
"""


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser("python -m embodireward.tools.eval_reward", DESCRIPTION, EXAMPLES)
    parser.add_argument("model", help="reward model directory (its best_model), .safetensors file or .json sidecar")
    parser.add_argument("--data", required=True, help="data directory written by the reward_data_collection callback")
    parser.add_argument("--threshold", type=float, default=None,
                        help="P(success) threshold of a binary model (default: the checkpoint's recommended threshold)")
    parser.add_argument("--split", choices=("auto", "val", "all"), default="auto",
                        help="frames to score: 'val' the validation split the model was trained with, 'all' every frame; "
                             "'auto' (default) is 'val' when --data is the model's training data, else 'all'")
    parser.add_argument("--batch-size", type=int, default=256, help="images per forward pass (default 256)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:<index> (default auto)")
    parser.add_argument("--precision", choices=("fp32", "bf16", "fp16", "auto"), default="fp32",
                        help="inference compute type, as the reward hook's runtime.precision (default fp32)")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)

    import torch

    import embodireward.rewards  # noqa: F401  (registers the built-in reward models)
    from embodireward import builder
    from embodireward.rewards.base import BaseVideoRewardModel, robot_state_mismatch
    from embodireward.rewards.checkpoint import check_env_compatibility, load_reward_model, resolve_checkpoint
    from embodireward.rewards.data import load_reward_data
    from embodireward.rewards.dataset import RewardDataset, split_by_trajectory
    from embodireward.rewards.evaluation import EVALUATION_DIR, evaluate_reward_model, summary_line
    from embodireward.utils.io import is_writable_location

    if args.batch_size < 1:
        raise ConfigError("--batch-size", f"must be >= 1, got {args.batch_size}")
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        raise ConfigError("--threshold", f"must be in [0, 1], got {args.threshold}")
    device = builder.resolve_device(args.device, "--device")
    weights = resolve_checkpoint(args.model)
    model = load_reward_model(weights, device=device)
    data = load_reward_data(args.data, model.cfg.camera_keys)
    check_env_compatibility(model.sidecar.get("manifest", {}).get("env", {}), data.manifest.get("env", {}), f"reward model '{weights}'")
    if model.num_classes >= 2 and model.num_classes != data.num_classes:
        raise ConfigError("--data", f"'{args.data}' has {data.num_classes} classes ({', '.join(data.class_names)}), the model {model.num_classes}")
    if model.num_classes >= 2 and args.threshold is not None:
        raise ConfigError("--threshold", f"a {model.num_classes}-class model predicts its most probable class; thresholds are for binary models")
    problem = robot_state_mismatch(model.robot_state_dim, data.manifest.get("robot_state_dim", 0), f"the frames of '{args.data}' carry")
    if problem:
        raise ConfigError("--data", problem)
    video = isinstance(model, BaseVideoRewardModel)
    if video and data.manifest["format"] != "trajectory":
        raise ConfigError("--data", f"'{args.data}' holds single frames; the clip model needs trajectory-format data")

    split = model.sidecar.get("data_split") or {}
    use_val = args.split == "val" or (args.split == "auto" and split.get("data_path") == str(Path(args.data).resolve()))
    if use_val and not split:
        raise ConfigError("--split", f"'{weights.with_suffix('.json')}' records no validation split (trained by an older version); use --split all")
    index = split_by_trajectory(data, split["val_split"], split["seed"])[1] if use_val else torch.arange(len(data))
    out_dir = weights.parent / EVALUATION_DIR
    problem = is_writable_location(out_dir)
    if problem:
        raise ConfigError("model", f"cannot write the evaluation to '{out_dir}': {problem}")

    info = {"model": str(weights), "data": str(args.data), "split": "val" if use_val else "all"}
    dataset = RewardDataset(data, index, model.cfg.num_frames if video else None, robot_state=bool(model.robot_state_dim))
    report = evaluate_reward_model(model, dataset, weights.parent, args.threshold, args.batch_size, info, args.precision)
    threshold = "argmax" if report["threshold"] is None else f"{report['threshold']:.3f}"
    print(f"{summary_line(report)}  ece {report['ece']:.4f}  (threshold {threshold}, {len(index)} frames, split {info['split']}, "
          f"{report['inference_precision']})")
    rows = [f"  {name:>12s} {row}" for name, row in zip(report["class_names"], report["confusion"])]
    print("confusion (rows: true class, columns: predicted, order " + ", ".join(report["class_names"]) + "):\n" + "\n".join(rows))
    print(f"wrote {out_dir}/reward_eval.json, reliability.png, false_positives.png, false_negatives.png")
    return 0


def cli() -> None:
    """Console-script entry point."""
    run_cli(main)


if __name__ == "__main__":
    cli()
