"""The reward hook's cost now vs at an earlier commit, measured in interleaved rounds.

    python benchmarks/reward_hook_ab.py [--baseline adf1885] [--rounds 4] [--precisions fp32 bf16]

Each round runs, one after the other in fresh processes, the baseline commit's code (exported with
``git archive`` to a temporary directory) and this checkout's code at each precision; every
process times ``RewardHook.compute`` on the terminal frames of all 1024 push_cube_2d envs (one
episode end, resnet10 at 64x64, untrained weights) five times after a warm-up. Interleaving keeps
a busy machine's drifting load from favouring one side. Prints each run, then per variant the median
of the round medians and its ratio to the baseline.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CHILD = r'''
import inspect, statistics, sys, tempfile, time
import torch
from embodireward.config import RewardSection
from embodireward.envs.push_cube_2d import PushCube2D, PushCube2DConfig
from embodireward.rewards.checkpoint import load_reward_model, save_reward_model
from embodireward.rewards.hook import RewardHook
from embodireward.rewards.training import ModelSection, build_reward_model

precision = sys.argv[1]
torch.manual_seed(0)
env = PushCube2D(PushCube2DConfig(num_envs=1024, image_size=64), torch.device("cpu"), seed=0)
env.reset(seed=0)
for _ in range(20):
    env.step(torch.rand(1024, 2) * 2 - 1)
frames = env.render_frames()
manifest = {"format": "frames", "env": env.describe(), "camera_keys": ["top_camera"], "image_size": [64, 64], "render": "episode_end"}
with tempfile.TemporaryDirectory() as tmp:
    save_reward_model(build_reward_model(ModelSection(name="resnet_reward", cfg={"arch": "resnet10"}), manifest), tmp,
                      extra_sidecar={"manifest": manifest})
    model = load_reward_model(tmp)
kwargs = {"precision": precision} if "precision" in inspect.signature(RewardHook.__init__).parameters else {}
hook = RewardHook(RewardSection(name="resnet_reward"), model, env.describe(), "cpu", **kwargs)
done = torch.ones(1024, dtype=torch.bool)
hook.compute(torch.zeros(1024), done, ~done, frames)
times = []
for _ in range(5):
    start = time.perf_counter()
    hook.compute(torch.zeros(1024), done, ~done, frames)
    times.append(time.perf_counter() - start)
print(statistics.median(times))
'''


def export(revision: str, directory: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(REPO_ROOT), "archive", revision], check=True, capture_output=True).stdout
    with tempfile.TemporaryFile() as fh:
        fh.write(archive)
        fh.seek(0)
        tarfile.open(fileobj=fh).extractall(directory)
    return directory


def run(code_root: Path, precision: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(code_root)}
    out = subprocess.run([sys.executable, "-c", CHILD, precision], cwd=code_root, env=env, check=True, capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="adf1885", help="commit to compare with (its hook runs in fp32)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    args = parser.parse_args()
    variants = [("baseline", "fp32")] + [("now", p) for p in args.precisions]
    seconds = {variant: [] for variant in variants}
    with tempfile.TemporaryDirectory() as tmp:
        baseline = export(args.baseline, Path(tmp))
        for round_index in range(1, args.rounds + 1):
            for side, precision in variants:
                value = run(baseline if side == "baseline" else REPO_ROOT, precision)
                seconds[(side, precision)].append(value)
                print(f"round {round_index}: {side} ({args.baseline if side == 'baseline' else 'this checkout'}) {precision}: "
                      f"{value:.3f} s per 1024 frames", flush=True)
    reference = statistics.median(seconds[("baseline", "fp32")])
    for (side, precision), values in seconds.items():
        median = statistics.median(values)
        print(f"{side:8s} {precision}: median {median:.3f} s per 1024 frames ({1024 / median:,.0f} frames/s), "
              f"{median / reference:.2f}x the baseline's time")


if __name__ == "__main__":
    main()
