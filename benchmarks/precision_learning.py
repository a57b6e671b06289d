"""Does mixed precision change learning? Env steps to eval success 0.9 on push_cube_2d, per seed.

    python benchmarks/precision_learning.py [--seeds 0 1 2] [--variants fp32 default] [--iterations 60]

Trains ``configs/push_cube_2d/ppo.json`` (1024 envs, 2x256 MLPs, eval every 5 iterations on 128
episodes) once per seed and variant, and prints the env steps and wall time at the first
evaluation with ``eval/success_rate >= 0.9`` (``never`` when a run does not get there), then the
median over seeds per variant and the ratio of each median to fp32's. A variant is a precision,
optionally ``+compile``; ``default`` is what ``runtime.precision`` / ``runtime.compile`` default
to. Runs are sequential (one job at a time: two jobs on 2 cores distort every wall time); the
step counts do not depend on machine load.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Optional

from embodireward.config import parse_train_config
from embodireward.trainer.callbacks import Callback
from embodireward.trainer.trainer import Trainer
from ppo_throughput import DEFAULT, variant_runtime  # the same variant names (benchmarks/ is on sys.path)

REPO_ROOT = Path(__file__).resolve().parent.parent
BAR = 0.9


class ReachedBar(Exception):
    """Ends a run at its first evaluation at the bar: later iterations measure nothing here."""


class FirstSuccess(Callback):
    """Env steps and seconds since the start at the first evaluation reaching the bar."""

    def __init__(self):
        super().__init__()
        self.start = time.perf_counter()
        self.steps: Optional[int] = None
        self.seconds: Optional[float] = None
        self.rates = []

    def on_eval_end(self, trainer, metrics):
        rate = metrics.get("eval/success_rate", 0.0)
        self.rates.append(rate)
        if self.steps is None and rate >= BAR:
            self.steps, self.seconds = trainer.global_step, time.perf_counter() - self.start
            raise ReachedBar


def run(seed: int, variant: str, iterations: int) -> FirstSuccess:
    data = json.loads((REPO_ROOT / "configs/push_cube_2d/ppo.json").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        data["runtime"].update(seed=seed, iterations=iterations, eval_freq=5, save_freq=0, progress_bar=False,
                               run_dir=tmp, device="cpu", **variant_runtime(variant))
        trainer = Trainer(parse_train_config(data))
        probe = FirstSuccess()
        trainer.callbacks.callbacks.append(probe)
        try:
            trainer.train()
        except ReachedBar:
            pass
        finally:
            trainer.close()
    return probe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=["fp32", "default"])
    parser.add_argument("--iterations", type=int, default=60, help="PPO iterations per run (16,384 env steps each)")
    args = parser.parse_args()
    print(f"push_cube_2d ppo.json, {args.iterations} iterations, seeds {args.seeds}; default = {DEFAULT}", flush=True)
    steps = {variant: [] for variant in args.variants}
    for seed in args.seeds:
        for variant in args.variants:
            probe = run(seed, variant, args.iterations)
            steps[variant].append(probe.steps)
            reached = f"{probe.steps:,} steps, {probe.seconds:.0f} s" if probe.steps else f"never (best {max(probe.rates):.3f})"
            print(f"  seed {seed} {variant:>14}: eval success >= {BAR} at {reached}", flush=True)
    print(f"\n| variant | env steps to eval success >= {BAR}, per seed | median | vs fp32 |")
    print("|---|---|---:|---:|")
    base = None
    for variant, values in steps.items():
        reached = [v for v in values if v is not None]
        median = statistics.median(reached) if len(reached) == len(values) else None
        if variant == "fp32":
            base = median
        ratio = f"{median / base:.2f}" if median and base else "-"
        cells = ", ".join(f"{v:,}" if v else "never" for v in values)
        name = f"{variant} (= {DEFAULT})" if variant == "default" else variant
        print(f"| {name} | {cells} | {f'{median:,.0f}' if median else 'not all seeds'} | {ratio} |")


if __name__ == "__main__":
    main()
