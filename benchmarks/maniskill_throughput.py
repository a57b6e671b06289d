"""Throughput of the ManiSkill adapter: bare env stepping and, with ``--train``, the training loop.

For each task x num_envs x render request: build the env, warm up (the first frame a process
renders is slow under lavapipe: SAPIEN builds its BRDF lookup table), then time random-action
steps and print env steps per second (steps x num_envs / seconds). With ``--train`` the same
settings also run PPO (``configs/maniskill/pushcube_ppo.json``: 3x256 MLP; episode-end frames go to
the reward-data collection callback) and print its steps/s, without the first (warm-up) iteration,
as a share of the bare rate.

    python benchmarks/maniskill_throughput.py                       # PickCube/PushCube, 1 and 2 envs
    python benchmarks/maniskill_throughput.py --env-ids PushCube-v1 --train
    python benchmarks/maniskill_throughput.py --num-envs 4 --steps 500 --sim-backend cpu
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from embodireward.config import parse_dataclass, parse_train_config
from embodireward.envs.maniskill import ManiSkillConfig, ManiSkillVecEnv
from embodireward.trainer.trainer import Trainer
from embodireward.utils.threads import torch_threads

REPO_ROOT = Path(__file__).resolve().parent.parent


def measure(env_id: str, num_envs: int, render: str, steps: int, size: int, sim_backend: str) -> dict:
    cfg = parse_dataclass(ManiSkillConfig, {
        "env_id": env_id, "num_envs": num_envs, "sim_backend": sim_backend,
        "camera": {"key": "base_camera", "width": size, "height": size},
    })
    start = time.perf_counter()
    env = ManiSkillVecEnv(cfg, torch.device("cpu"), seed=0)
    build = time.perf_counter() - start
    try:
        env.reset()
        start = time.perf_counter()
        env.step(torch.zeros(num_envs, env.action_dim), render="every_step" if render != "never" else "never")
        warmup = time.perf_counter() - start
        frames = 0
        start = time.perf_counter()
        for _ in range(steps):
            actions = torch.rand(num_envs, env.action_dim) * 2 - 1
            info = env.step(actions, render=render)[-1]
            frames += len(info["frames"]) if "frames" in info else 0
        seconds = time.perf_counter() - start
    finally:
        env.close()
    return {"env_id": env_id, "num_envs": num_envs, "backend": env.describe()["sim_backend"], "render": render,
            "build_s": build, "warmup_s": warmup, "sps": steps * num_envs / seconds, "frames": frames}


def measure_training(env_id: str, num_envs: int, render: str, iterations: int, size: int, sim_backend: str) -> float:
    """Training-loop env steps/s, averaged over iterations after the first (which pays the warm-up).

    Threads as the config sets them: torch's default for the update, ``rollout_threads`` (1) for collection.
    """
    data = json.loads((REPO_ROOT / "configs/maniskill/pushcube_ppo.json").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        data["runtime"].update(iterations=iterations + 1, eval_freq=0, save_freq=0,
                               progress_bar=False, run_dir=f"{tmp}/run", device="cpu")
        data["env"]["cfg"].update(env_id=env_id, num_envs=num_envs, sim_backend=sim_backend,
                                  camera={"key": "base_camera", "width": size, "height": size})
        if render != "never":
            data["callbacks"] = [{"name": "reward_data_collection",
                                  "cfg": {"data_dir": f"{tmp}/data", "format": "frames", "render": render}}]
        trainer = Trainer(parse_train_config(data))
        try:
            trainer.train()
        finally:
            trainer.env.close()
        events = EventAccumulator(f"{tmp}/run/logs")
        events.Reload()
        rates = [event.value for event in events.Scalars("charts/sps")][1:]
    return sum(rates) / len(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-ids", nargs="+", default=["PickCube-v1", "PushCube-v1"])
    parser.add_argument("--num-envs", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--renders", nargs="+", default=["never", "episode_end"], choices=["never", "episode_end", "every_step"])
    parser.add_argument("--steps", type=int, default=1000, help="timed steps per configuration (episodes are 50 steps)")
    parser.add_argument("--size", type=int, default=128, help="camera width and height")
    parser.add_argument("--sim-backend", default="auto", choices=["auto", "gpu", "cpu"])
    parser.add_argument("--train", action="store_true", help="also measure the PPO training loop on each setting")
    parser.add_argument("--train-iterations", type=int, default=3, help="timed PPO iterations (rollout_steps of the config per env each)")
    args = parser.parse_args()

    train_header = f" {'train steps/s':>13} {'of bare':>7}" if args.train else ""
    print(f"{'env':<13} {'envs':>4} {'backend':<7} {'render':<11} {'build s':>7} {'warmup s':>8} {'frames':>6} {'env steps/s':>11}{train_header}", flush=True)
    for env_id in args.env_ids:
        for num_envs in args.num_envs:
            for render in args.renders:
                with torch_threads(1):  # as the configs' rollout_threads: no torch threads competing with the workers
                    r = measure(env_id, num_envs, render, args.steps, args.size, args.sim_backend)
                train = ""
                if args.train:
                    train_sps = measure_training(env_id, num_envs, render, args.train_iterations, args.size, args.sim_backend)
                    train = f" {train_sps:>13.1f} {train_sps / r['sps']:>7.0%}"
                print(f"{r['env_id']:<13} {r['num_envs']:>4} {r['backend']:<7} {r['render']:<11} {r['build_s']:>7.1f} "
                      f"{r['warmup_s']:>8.1f} {r['frames']:>6} {r['sps']:>11.1f}{train}", flush=True)


if __name__ == "__main__":  # needed: CPU workers start through multiprocessing's forkserver
    main()
