"""SAC gradient steps per second: fp32 vs bf16 autocast, 3x256 networks, batch 256 and 1024.

    python benchmarks/sac_throughput.py [--steps 100] [--threads 0] [--obs-dim 42] [--action-dim 8]

One gradient step is what ``SAC.update`` repeats ``utd x transitions`` times: a replay-buffer sample,
the target (actor + target twin Q forward), the twin-Q critic step, the actor step, the temperature
step and the Polyak update. Networks as in ManiSkill's SAC baseline: actor and twin Q with three
256-unit ReLU layers, LayerNorm in the critics. The defaults are PickCube-v1's state observation
(42) and action (8) sizes; the buffer holds random data.
"""
from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
import torch

from embodireward.algos.sac import SAC, SACConfig
from embodireward.config import NetworkConfig, PolicySection
from embodireward.policies.squashed_gaussian import SquashedGaussianPolicy
from embodireward.utils.precision import Precision, cpu_has_native_bf16


def make_sac(obs_dim: int, action_dim: int, batch_size: int, precision: str) -> SAC:
    obs_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (action_dim,), np.float32)
    block = NetworkConfig(hidden_sizes=[256, 256, 256], activation="relu")
    policy = SquashedGaussianPolicy(PolicySection(name="squashed_gaussian", actor=block, critic=block), obs_space, action_space)
    device = torch.device("cpu")
    cfg = SACConfig(batch_size=batch_size, buffer_size=10_000, learning_starts=0)
    sac = SAC(cfg, policy, device, precision=Precision(precision, device))
    sac.initialize_buffer(1, 1000, obs_space, action_space)
    for _ in range(10):
        sac.buffer.add(torch.randn(1000, obs_dim), torch.rand(1000, action_dim) * 2 - 1, torch.randn(1000),
                       torch.randn(1000, obs_dim), torch.rand(1000) < 0.02, torch.zeros(1000, dtype=torch.bool))
    return sac


def steps_per_second(sac: SAC, steps: int) -> float:
    for _ in range(5):  # warm-up: allocator, autocast caches
        sac._gradient_step()
    start = time.perf_counter()
    for _ in range(steps):
        sac._gradient_step()
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100, help="timed gradient steps per setting")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    parser.add_argument("--obs-dim", type=int, default=42)
    parser.add_argument("--action-dim", type=int, default=8)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, native CPU bf16: {cpu_has_native_bf16()}")
    print(f"{'batch':>6} {'precision':>9} {'steps/s':>9} {'ms/step':>8}")
    for batch_size in (256, 1024):
        for precision in ("fp32", "bf16"):
            rate = steps_per_second(make_sac(args.obs_dim, args.action_dim, batch_size, precision), args.steps)
            print(f"{batch_size:>6} {precision:>9} {rate:>9.1f} {1000 / rate:>8.1f}")


if __name__ == "__main__":
    main()
