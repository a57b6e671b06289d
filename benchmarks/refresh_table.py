"""Online refresh against a frozen reward model: the issue-14 tables.

    python benchmarks/refresh_table.py [--config configs/push_cube_2d/decoy_pipeline.json]
        [--output-dir outputs] [--seeds 0 1 2] [--variants naive env_success vice] [--iterations N]
        [--set KEY=VALUE ...] [--refresh KEY=VALUE ...] [--suffix NAME]

Runs the pipeline's stages 1-2 once if they have not run (warm-up + reward model: the same data
and model for every row), then its learned-reward stage once per variant and seed (from the
warm-up policy or from scratch, as the config's ``pipeline.warm_start`` says) into
``<output_dir>/<exp_name>/refresh_table/<variant>_seed<k>/``:

- ``naive``: the frozen warm-up classifier;
- ``env_success``: ``reward.refresh`` every 5 iterations, 50 frames each, label budget 500;
- ``vice``: the same schedule, policy frames labelled failure (no labels).

Prints one row per run and the medians per variant: final true eval success, the model's
predicted success rate and precision against true success (pooled over the last ``--tail``
iterations, 10 by default; ``result.json`` also keeps the last iteration's alone), labels used and
wall time. A finished run (``result.json``) is read back, not re-run, so the script resumes. The
default, the decoy-goal task with a per-step soft reward learned from scratch, is the one where a
naive run is exploited (docs/benchmarks.md, *Reward hacking task*); on
``configs/push_cube_2d/pipeline.json`` the rows show whether refresh hurts a task without a blind
spot. ``--set`` overrides pipeline config values as in ``embodireward train --set``; ``--refresh``
overrides keys of the refreshing variants' ``reward.refresh`` block (e.g. ``frames_per_refresh=25``),
and ``--suffix`` keeps such rows apart (``<variant><suffix>_seed<k>/``).
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from pathlib import Path

from embodireward.config import apply_overrides, load_json
from embodireward.pipeline import Pipeline
from embodireward.tools.scalars import read_event_scalars
from embodireward.train import train_from_dict
from embodireward.utils.io import atomic_write_json

REPO_ROOT = Path(__file__).resolve().parent.parent
REFRESH = {"every": 5, "frames_per_refresh": 50, "label_budget": 500}
VARIANTS = {
    "naive": None,
    "env_success": {**REFRESH, "labeller": {"name": "env_success"}},
    "vice": {**REFRESH, "labeller": {"name": "vice"}},
}
COLUMNS = ("eval_success", "predicted_success", "precision", "labels_used", "wall_s")


def final(scalars: dict, tag: str):
    rows = scalars.get(tag)
    return None if rows is None else float(rows[-1, 2])


def model_at_end(scalars: dict, tail: int) -> dict:
    """The model's predicted success rate and precision pooled over a run's last ``tail`` iterations.

    Every iteration scores the same number of frames, so the pooled precision is
    ``sum(rate_i * precision_i) / sum(rate_i)``. One iteration alone aliases with the episode cycle
    (all envs start together: an iteration of episode starts pays few frames, at a lower precision).
    """
    if "reward_model/predicted_success_rate" not in scalars:
        return {"predicted_success": None, "precision": None}
    rates = scalars["reward_model/predicted_success_rate"][-tail:, 2]
    paid = rates > 0
    precision = None
    if "reward_model/precision" in scalars and paid.any():
        precisions = scalars["reward_model/precision"][-tail:, 2]
        precision = float((rates[paid] * precisions[paid]).sum() / rates[paid].sum())
    return {"predicted_success": float(rates.mean()), "precision": precision}


def run(stage: dict, variant: str, seed: int, iterations: int, root: Path, refresh_overrides: list, suffix: str, tail: int) -> dict:
    run_dir = root / f"{variant}{suffix}_seed{seed}"
    result_path = run_dir / "result.json"
    if result_path.is_file():
        return {**json.loads(result_path.read_text()), **model_at_end(read_event_scalars(run_dir / "logs"), tail)}
    config = copy.deepcopy(stage)
    config["runtime"].update(seed=seed, run_dir=str(run_dir), progress_bar=False, **({"iterations": iterations} if iterations else {}))
    if VARIANTS[variant] is not None:
        config["reward"]["refresh"] = apply_overrides(VARIANTS[variant], refresh_overrides)
    started = time.perf_counter()
    if train_from_dict(config) != 0:
        raise SystemExit(f"{variant} seed {seed} failed; see {run_dir}")
    scalars = read_event_scalars(run_dir / "logs")
    refreshes = run_dir / "reward_models" / "refreshes.json"
    records = json.loads(refreshes.read_text()) if refreshes.is_file() else []
    result = {"variant": variant + suffix, "seed": seed, "refresh": config["reward"].get("refresh"), "env_steps": int(scalars["eval/success_rate"][-1, 0]),
              "eval_success": final(scalars, "eval/success_rate"),
              "predicted_success_last": final(scalars, "reward_model/predicted_success_rate"),
              "precision_last": final(scalars, "reward_model/precision"),
              "labels_used": records[-1]["labels_used"] if records else 0, "refreshes": len(records),
              "wall_s": round(time.perf_counter() - started, 1)}
    atomic_write_json(result_path, result)
    return {**result, **model_at_end(scalars, tail)}


def show(value) -> str:
    return "-" if value is None else (f"{value:.3f}" if isinstance(value, float) else str(value))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(REPO_ROOT / "configs/push_cube_2d/decoy_pipeline.json"))
    parser.add_argument("--output-dir", default=None, help="pipeline.output_dir (default: the config's)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--iterations", type=int, default=None, help="learned-reward iterations (default: the config's)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a pipeline config value, as in `embodireward train --set`")
    parser.add_argument("--refresh", dest="refresh_overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a key of the refresh block (env_success, vice rows), e.g. confident_fraction=1.0")
    parser.add_argument("--tail", type=int, default=10, help="iterations the model's predicted success and precision are pooled over")
    parser.add_argument("--suffix", default="", help="appended to each row's directory name, for rows with other settings")
    args = parser.parse_args()

    overrides = args.overrides + ([f"pipeline.output_dir={args.output_dir}"] if args.output_dir else [])
    data = apply_overrides(load_json(args.config), overrides)
    pipeline = Pipeline(data, Path(args.config).resolve().parent)
    pipeline.run(config_path=Path(args.config), stages=("warmup", "reward_model"))  # the data and model every row shares
    root = pipeline.root / "refresh_table"
    results = []
    print(f"| variant | seed | true eval success | model-predicted success (last {args.tail} it.) | precision (last {args.tail} it.) | labels used | wall time (s) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for variant in args.variants:
        for seed in args.seeds:
            result = run(pipeline.learned_reward, variant, seed, args.iterations, root, args.refresh_overrides, args.suffix, args.tail)
            results.append(result)
            print(f"| {variant}{args.suffix} | {seed} | " + " | ".join(show(result[key]) for key in COLUMNS) + " |", flush=True)
    print("\nmedians over seeds:")
    for variant in args.variants:
        rows = [r for r in results if r["variant"] == variant + args.suffix]
        medians = {key: statistics.median([r[key] for r in rows if r[key] is not None] or [float("nan")]) for key in COLUMNS}
        spread = [r["eval_success"] for r in rows]
        print(f"| {variant}{args.suffix} | median of {len(rows)} | " + " | ".join(show(float(medians[key])) for key in COLUMNS)
              + f" | eval success per seed: {', '.join(show(v) for v in spread)}")


if __name__ == "__main__":
    main()
