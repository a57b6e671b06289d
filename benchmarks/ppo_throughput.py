"""Environment steps per second: bare env vs the full PPO training loop, plus peak memory.

    python benchmarks/ppo_throughput.py [--num-envs 1024] [--iterations 10] [--threads 0]

(a) bare env: ``push_cube_2d`` stepping random actions; (b) env + the policy's action sampling
(``Policy.act``, the per-step part of the rollout phase); (c) the full training loop (rollout + PPO update,
default ``configs/push_cube_2d/ppo.json`` settings: 2x256 MLP, 8 epochs x 16 minibatches).
Peak memory is the process's maximum resident set size.
"""
from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import torch

from embodireward.config import parse_train_config
from embodireward.envs.push_cube_2d import PushCube2D, PushCube2DConfig
from embodireward.trainer.trainer import Trainer

REPO_ROOT = Path(__file__).resolve().parent.parent


def bare_env_sps(num_envs: int, steps: int) -> float:
    env = PushCube2D(PushCube2DConfig(num_envs=num_envs), torch.device("cpu"), seed=0)
    env.reset(seed=0)
    start = time.perf_counter()
    for _ in range(steps):
        env.step(torch.rand(num_envs, 2) * 2 - 1)
    return num_envs * steps / (time.perf_counter() - start)


def make_trainer(num_envs: int, iterations: int, run_dir: str) -> Trainer:
    data = json.loads((REPO_ROOT / "configs/push_cube_2d/ppo.json").read_text())
    data["runtime"].update(iterations=iterations, eval_freq=0, save_freq=0, progress_bar=False, run_dir=run_dir, device="cpu")
    data["env"]["cfg"]["num_envs"] = num_envs
    return Trainer(parse_train_config(data))


@torch.no_grad()
def rollout_only_sps(trainer: Trainer, steps: int) -> float:
    obs, _ = trainer.env.reset(seed=0)
    start = time.perf_counter()
    for _ in range(steps):
        actions, _ = trainer.policy.act(obs)
        obs, *_ = trainer.env.step(actions.clamp(-1, 1))
    return trainer.env.num_envs * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-envs", type=int, default=1024)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"push_cube_2d, {args.num_envs} envs, 2x256 MLP, torch {torch.__version__}, {torch.get_num_threads()} threads")

    bare = bare_env_sps(args.num_envs, steps=500)
    print(f"(a) bare env, random actions:      {bare:12,.0f} env steps/s")
    with tempfile.TemporaryDirectory() as tmp:
        trainer = make_trainer(args.num_envs, args.iterations, tmp)
        rollout = rollout_only_sps(trainer, steps=200)
        print(f"(b) env + policy action sampling:  {rollout:12,.0f} env steps/s ({rollout / bare:.1%} of bare)")
        start = time.perf_counter()
        trainer.train()
        elapsed = time.perf_counter() - start
        steps = trainer.global_step
    full = steps / elapsed
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"(c) full training loop:            {full:12,.0f} env steps/s ({full / bare:.1%} of bare, {steps:,} steps in {elapsed:.1f} s)")
    print(f"peak memory (max RSS):             {peak_mib:12,.0f} MiB")


if __name__ == "__main__":
    main()
