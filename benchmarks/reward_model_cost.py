"""What the learned reward costs: reward-model images/s, and its share of PPO training wall time.

    python benchmarks/reward_model_cost.py [--archs resnet10 resnet18] [--image-size 64] [--num-envs 1024]

For each architecture: (1) inference images/s on uint8 frames at batch 256; (2) a short PPO run on
``push_cube_2d`` with the reward hook in ``terminal`` mode (the model runs only on episodes that
ended, on their terminal frame), reporting the hook's share of training wall time and how many
images it classified. The model is untrained (random weights): cost does not depend on the weights.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from embodireward.config import parse_train_config
from embodireward.envs.push_cube_2d import PushCube2D, PushCube2DConfig
from embodireward.rewards.checkpoint import save_reward_model
from embodireward.rewards.training import ModelSection, build_reward_model
from embodireward.trainer.trainer import Trainer

REPO_ROOT = Path(__file__).resolve().parent.parent


@torch.no_grad()
def images_per_second(model, image_size: int, batch: int = 256, repeats: int = 5) -> float:
    images = torch.randint(0, 256, (batch, image_size, image_size, 3), dtype=torch.uint8)
    model.eval()
    model.compute_reward(images)  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        model.compute_reward(images)
    return batch * repeats / (time.perf_counter() - start)


def training_share(checkpoint: Path, num_envs: int, image_size: int, iterations: int, run_dir: str) -> tuple[float, int, float]:
    data = json.loads((REPO_ROOT / "configs/push_cube_2d/ppo.json").read_text())
    data["runtime"].update(iterations=iterations, eval_freq=0, save_freq=0, progress_bar=False, run_dir=run_dir, device="cpu")
    data["env"]["cfg"].update(num_envs=num_envs, image_size=image_size)
    data["reward"] = {"use_reward_model": True, "checkpoint_path": str(checkpoint), "reward_mode": "terminal", "combine_mode": "replace"}
    trainer = Trainer(parse_train_config(data))
    hook_seconds = 0.0
    images = 0
    compute = trainer.reward_hook.compute

    def timed_compute(env_reward, terminated, truncated, frames, success):
        nonlocal hook_seconds, images
        start = time.perf_counter()
        reward = compute(env_reward, terminated, truncated, frames, success)
        hook_seconds += time.perf_counter() - start
        images += int((terminated | truncated).sum())
        return reward

    trainer.reward_hook.compute = timed_compute
    start = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - start
    return hook_seconds / wall, images, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+", default=["resnet10", "resnet18"])
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--num-envs", type=int, default=1024)
    parser.add_argument("--iterations", type=int, default=13, help="PPO iterations (16 steps each; episodes last 50)")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    env = PushCube2D(PushCube2DConfig(num_envs=1, image_size=args.image_size), torch.device("cpu"), seed=0)
    manifest = {"format": "frames", "env": env.describe(), "camera_keys": list(env.camera_keys),
                "image_size": [args.image_size, args.image_size], "render": "episode_end"}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, image {args.image_size}x{args.image_size}, {args.num_envs} envs")
    for arch in args.archs:
        model = build_reward_model(ModelSection(name="resnet_reward", cfg={"arch": arch}), manifest)
        rate = images_per_second(model, args.image_size)
        with tempfile.TemporaryDirectory() as tmp:
            checkpoint = save_reward_model(model, tmp, extra_sidecar={"manifest": manifest})
            share, images, wall = training_share(checkpoint, args.num_envs, args.image_size, args.iterations, str(Path(tmp) / "run"))
        print(f"{arch:9s} inference {rate:8,.0f} images/s (batch 256) | PPO training: reward model {share:5.1%} of "
              f"{wall:.1f} s wall time, {images:,} terminal images classified")


if __name__ == "__main__":
    main()
