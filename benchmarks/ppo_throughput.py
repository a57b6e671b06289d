"""PPO whole-loop throughput on push_cube_2d: fp32 eager against mixed precision and torch.compile.

    python benchmarks/ppo_throughput.py [--num-envs 1024] [--iterations 8] [--repeats 3]
        [--variants fp32 bf16 fp32+compile bf16+compile default] [--device cpu|cuda]

The settings are the issue's (and ``configs/push_cube_2d/ppo.json``'s): 1024 envs, 2x256 tanh MLPs,
16-step rollouts, 8 epochs x 16 minibatches. Each variant runs ``iterations`` timed PPO
iterations after one warm-up iteration (which absorbs torch.compile's compilation); variants are
interleaved ``repeats`` times and the medians are printed: whole-loop env steps/s, milliseconds
per gradient step (update time / minibatch updates) and the speed-up over fp32 eager. ``default``
is what ``runtime.precision`` / ``runtime.compile`` default to. Also printed: the bare env rate,
the env + action-sampling rate, and peak memory.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
import time
from pathlib import Path

import torch

from embodireward.config import RuntimeConfig, parse_train_config
from embodireward.envs.push_cube_2d import PushCube2D, PushCube2DConfig
from embodireward.trainer.callbacks import Callback
from embodireward.trainer.trainer import Trainer

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT = f"{RuntimeConfig.precision}{'+compile' if RuntimeConfig.compile else ''}"


class IterationClock(Callback):
    """Wall time of every iteration after the first, and of its update alone."""

    def __init__(self):
        super().__init__()
        self.iteration_ends, self.update_seconds, self.updates = [], [], 0

    def on_rollout_end(self, trainer):
        self._update_start = time.perf_counter()

    def on_update_end(self, trainer, metrics):
        now = time.perf_counter()
        if trainer.iteration > 1:  # iteration 1 is the warm-up (compilation)
            self.update_seconds.append(now - self._update_start)
            self.updates += int(metrics["num_minibatch_updates"])
        self.iteration_ends.append(now)


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bare_env_sps(num_envs: int, steps: int, device: str) -> float:
    env = PushCube2D(PushCube2DConfig(num_envs=num_envs), torch.device(device), seed=0)
    env.reset(seed=0)
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        env.step(torch.rand(num_envs, 2, device=device) * 2 - 1)
    synchronize(device)
    return num_envs * steps / (time.perf_counter() - start)


def variant_runtime(variant: str) -> dict:
    """``bf16+compile`` -> ``{"precision": "bf16", "compile": True}``; ``default``: the runtime defaults."""
    precision, _, compiled = (DEFAULT if variant == "default" else variant).partition("+")
    return {"precision": precision, "compile": bool(compiled)}


def make_trainer(num_envs: int, iterations: int, run_dir: str, variant: str, device: str) -> Trainer:
    data = json.loads((REPO_ROOT / "configs/push_cube_2d/ppo.json").read_text())
    data["runtime"].update(iterations=iterations, eval_freq=0, save_freq=0, progress_bar=False, run_dir=run_dir, device=device,
                           **variant_runtime(variant))
    data["env"]["cfg"]["num_envs"] = num_envs
    return Trainer(parse_train_config(data))


def measure(variant: str, num_envs: int, iterations: int, device: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        trainer = make_trainer(num_envs, iterations + 1, tmp, variant, device)
        clock = IterationClock()
        trainer.callbacks.callbacks.append(clock)
        trainer.train()
        trainer.close()
    steps_per_iteration = trainer.config.runtime.rollout_steps * num_envs
    seconds = clock.iteration_ends[-1] - clock.iteration_ends[0]
    return {"sps": steps_per_iteration * iterations / seconds, "ms_per_step": 1000 * sum(clock.update_seconds) / clock.updates}


@torch.no_grad()
def rollout_only_sps(num_envs: int, steps: int, device: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        trainer = make_trainer(num_envs, 1, tmp, "fp32", device)
        obs, _ = trainer.env.reset(seed=0)
        start = time.perf_counter()
        for _ in range(steps):
            actions, _ = trainer.policy.act(obs)
            obs, *_ = trainer.env.step(actions.clamp(-1, 1))
        synchronize(device)
        elapsed = time.perf_counter() - start
        trainer.close()
    return num_envs * steps / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-envs", type=int, default=1024)
    parser.add_argument("--iterations", type=int, default=8, help="timed iterations per measurement (after 1 warm-up)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved measurements per variant (medians printed)")
    parser.add_argument("--variants", nargs="+", default=["fp32", "bf16", "fp32+compile", "bf16+compile", "default"])
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:i] (env, networks and update)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"push_cube_2d, {args.num_envs} envs, 2x256 tanh MLPs, 16-step rollouts, 8 epochs x 16 minibatches; "
          f"torch {torch.__version__}, {args.device}, {torch.get_num_threads()} threads; default = {DEFAULT}")
    bare = bare_env_sps(args.num_envs, steps=500, device=args.device)
    print(f"bare env, random actions:          {bare:12,.0f} env steps/s")
    print(f"env + policy action sampling:      {rollout_only_sps(args.num_envs, 200, args.device):12,.0f} env steps/s")

    results = {variant: [] for variant in args.variants}
    for repeat in range(args.repeats):
        for variant in args.variants:
            results[variant].append(measure(variant, args.num_envs, args.iterations, args.device))
            print(f"  repeat {repeat + 1}/{args.repeats} {variant:>14}: {results[variant][-1]['sps']:8,.0f} env steps/s, "
                  f"{results[variant][-1]['ms_per_step']:.2f} ms per gradient step", flush=True)
    base = statistics.median(r["sps"] for r in results["fp32"]) if "fp32" in results else None
    print("\n| variant | whole-loop env steps/s | ms per gradient step | vs fp32 eager |")
    print("|---|---:|---:|---:|")
    for variant, runs in results.items():
        sps = statistics.median(r["sps"] for r in runs)
        ms = statistics.median(r["ms_per_step"] for r in runs)
        ratio = f"{sps / base:.2f}x" if base else "-"
        name = f"{variant} (= {DEFAULT})" if variant == "default" else variant
        print(f"| {name} | {sps:,.0f} | {ms:.2f} | {ratio} |")
    print(f"peak memory (max RSS): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB")


if __name__ == "__main__":
    main()
