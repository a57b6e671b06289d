"""What the learned reward costs: reward-model images/s, and its share of PPO training wall time, fp32 vs bf16.

    python benchmarks/reward_model_cost.py [--archs resnet10 resnet18 vit] [--precisions fp32 bf16]
                                           [--num-envs 1024] [--iterations 13] [--profile]

For each architecture and precision: (1) inference images/s on uint8 frames at batch 256 (the
hook's path: preprocessing + forward under the precision's autocast); (2) a short PPO run on
``push_cube_2d`` as stage 3 of ``configs/push_cube_2d/pipeline.json`` runs it (1024 envs,
16-step rollouts, the reward hook in ``terminal`` mode, so the model scores each finished
episode's terminal frame), reporting the hook's share of training wall time. PPO itself runs at
``--ppo-precision`` (default fp32, the built-in configs' ``runtime.precision``); ``--precisions``
are the hook's. ``--profile`` prints torch.profiler's top operators of one hook call on 1024 frames.
The models are untrained (random weights): cost does not depend on the weights.
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
from embodireward.rewards.hook import build_reward_hook
from embodireward.rewards.training import ModelSection, build_reward_model
from embodireward.trainer.trainer import Trainer
from embodireward.utils.precision import Precision

REPO_ROOT = Path(__file__).resolve().parent.parent
MODELS = {"resnet10": ("resnet_reward", {"arch": "resnet10"}), "resnet18": ("resnet_reward", {"arch": "resnet18"}),
          "vit": ("vit_reward", {})}  # vit_reward's defaults: patch 8, 4 layers, width 192, 3 heads


@torch.no_grad()
def images_per_second(model, image_size: int, precision: str, batch: int = 256, repeats: int = 5) -> float:
    """Frames/s of the model as the hook runs it (``for_inference()``: a ResNet's BatchNorms folded)."""
    images = torch.randint(0, 256, (batch, image_size, image_size, 3), dtype=torch.uint8)
    model = model.eval().for_inference()
    with Precision(precision).autocast():
        model.compute_reward(images)  # warm-up
        start = time.perf_counter()
        for _ in range(repeats):
            model.compute_reward(images)
    return batch * repeats / (time.perf_counter() - start)


def training_share(checkpoint: Path, name: str, precision: str, args, run_dir: str) -> tuple[float, int, float]:
    """(hook seconds / wall seconds, images scored, wall seconds) of a short stage-3-like PPO run."""
    data = json.loads((REPO_ROOT / "configs/push_cube_2d/ppo.json").read_text())
    data["runtime"].update(iterations=args.iterations, eval_freq=0, save_freq=0, progress_bar=False, run_dir=run_dir, device="cpu",
                           precision=args.ppo_precision)
    data["env"]["cfg"].update(num_envs=args.num_envs, image_size=args.image_size)
    data["reward"] = {"use_reward_model": True, "name": name, "checkpoint_path": str(checkpoint), "reward_mode": "terminal",
                      "combine_mode": "replace"}
    config = parse_train_config(data)
    trainer = Trainer(config)
    # the hook at this precision (what the trainer builds from runtime.precision), PPO in fp32
    trainer.reward_hook = build_reward_hook(config.reward, trainer.env, trainer.device, precision)
    hook_seconds, images = 0.0, 0
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


def profile_hook(checkpoint: Path, name: str, precision: str, args) -> None:
    """torch.profiler's most expensive operators (self CPU time) in one hook call on 1024 terminal frames."""
    from torch.profiler import ProfilerActivity, profile

    from embodireward.config import RewardSection

    env = PushCube2D(PushCube2DConfig(num_envs=1024, image_size=args.image_size), torch.device("cpu"), seed=0)
    section = RewardSection(use_reward_model=True, name=name, checkpoint_path=str(checkpoint))
    hook = build_reward_hook(section, env, "cpu", precision)
    done = torch.ones(1024, dtype=torch.bool)
    frames = env.render_frames()
    hook.compute(torch.zeros(1024), done, ~done, frames)  # warm-up
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        hook.compute(torch.zeros(1024), done, ~done, frames)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+", default=["resnet10", "vit"], choices=sorted(MODELS))
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--num-envs", type=int, default=1024)
    parser.add_argument("--iterations", type=int, default=13, help="PPO iterations (16 steps each; episodes last 50)")
    parser.add_argument("--ppo-precision", default="fp32", choices=["fp32", "bf16", "auto"],
                        help="runtime.precision of the PPO run around the hook (default fp32, the built-in configs' setting)")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--profile", action="store_true", help="also print the profile of one hook call per arch and precision")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    env = PushCube2D(PushCube2DConfig(num_envs=1, image_size=args.image_size), torch.device("cpu"), seed=0)
    manifest = {"format": "frames", "env": env.describe(), "camera_keys": list(env.camera_keys),
                "image_size": [args.image_size, args.image_size], "render": "episode_end"}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, image {args.image_size}x{args.image_size}, {args.num_envs} envs, "
          f"PPO at {args.ppo_precision}")
    for arch in args.archs:
        name, cfg = MODELS[arch]
        model = build_reward_model(ModelSection(name=name, cfg=cfg), manifest)
        params = sum(p.numel() for p in model.parameters()) / 1e6
        with tempfile.TemporaryDirectory() as tmp:
            checkpoint = save_reward_model(model, tmp, extra_sidecar={"manifest": manifest})
            for precision in args.precisions:
                rate = images_per_second(model, args.image_size, precision)
                share, images, wall = training_share(checkpoint, name, precision, args, str(Path(tmp) / f"run_{precision}"))
                print(f"{arch:8s} {params:5.2f}M params {precision}: inference {rate:8,.0f} images/s (batch 256) | "
                      f"PPO training: reward model {share:5.1%} of {wall:.1f} s wall time, {images:,} terminal images classified")
                if args.profile:
                    profile_hook(checkpoint, name, precision, args)


if __name__ == "__main__":
    main()
