"""Does a reward model trained on push_cube_2d_distractor warm-up frames tell the two cubes apart?

    python benchmarks/distractor_probe.py --run outputs/push_cube_2d_hacking [--episodes 2048] [--seed 7]

Reads a pipeline run: stage 1's config and final policy, stage 2's best model. Runs the warm-up
policy (sampling actions, as in training) for one episode per env and prints

1. how its episodes end: target in the goal, distractor in the goal (what the warm-up data saw);
2. the model's predicted success rate (probability >= the recommended threshold) on those final
   frames, split by outcome, and on the same scenes edited by hand: the distractor moved onto the
   goal (target left where it is, not in the goal), or the target moved onto the goal.

A model that learned "the target is in the goal" predicts ~0 for "distractor on the goal"; one
that learned "a red square covers the goal" predicts ~1.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from embodireward import builder
from embodireward.config import parse_dataclass, parse_train_config
from embodireward.envs.push_cube_2d import PushCube2DDistractor
from embodireward.envs.push_cube_2d.physics import box_contact, square_overlap
from embodireward.rewards.checkpoint import load_reward_model
from embodireward.trainer.checkpoint import load_checkpoint, load_policy_weights


def predicted(model, threshold: float, env: PushCube2DDistractor, batch: int = 256) -> torch.Tensor:
    images = env.render_frames().images[env.cfg.camera_key]
    with torch.no_grad():
        probs = torch.cat([model.compute_reward({env.cfg.camera_key: images[i:i + batch]}).reshape(-1) for i in range(0, len(images), batch)])
    return probs >= threshold


def move_onto_goal(env: PushCube2DDistractor, cube: int, generator: torch.Generator) -> torch.Tensor:
    """Put cube ``cube`` near the goal centre; returns which envs give a valid scene (no overlaps)."""
    cfg = env.cfg
    offset = torch.randn(env.num_envs, 2, generator=generator)
    offset *= 0.8 * cfg.goal_radius * torch.rand(env.num_envs, 1, generator=generator).sqrt() / offset.norm(dim=-1, keepdim=True)
    env.cubes[:, cube] = env.goal_pos + offset
    other = env.cubes[:, 1 - cube]
    clear_of_other = square_overlap(env.cubes[:, cube], other, cfg.cube_half_size).abs().sum(-1) == 0
    clear_of_pusher = box_contact(env.pusher_pos, env.cubes[:, cube], cfg.cube_half_size)[0] > cfg.pusher_radius
    return clear_of_other & clear_of_pusher & ((other - env.goal_pos).norm(dim=-1) >= cfg.goal_radius)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="pipeline output directory (holds 1_warmup/ and 2_reward_model/)")
    parser.add_argument("--episodes", type=int, default=2048)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    run = Path(args.run)
    config = parse_train_config(json.loads((run / "1_warmup" / "config.json").read_text()))
    builder.validate_config(config)
    if config.env.id != "push_cube_2d_distractor":
        raise SystemExit(f"error: {run / '1_warmup' / 'config.json'}: env.id is '{config.env.id}', this probe needs 'push_cube_2d_distractor'")
    env_cfg = parse_dataclass(PushCube2DDistractor.Config, {**config.env.cfg, "num_envs": args.episodes}, "env.cfg")
    env = PushCube2DDistractor(env_cfg, torch.device("cpu"), args.seed)
    policy = builder.build_policy(config, env.single_observation_space, env.single_action_space, torch.device("cpu"))
    checkpoint = run / "1_warmup" / "checkpoints" / "latest.pt"
    load_policy_weights(policy, load_checkpoint(checkpoint)["policy"], str(checkpoint))
    model = load_reward_model(run / "2_reward_model" / "best_model.safetensors", expected_env=env.describe())
    threshold = model.sidecar.get("recommended_threshold", 0.5)

    # stop one step before the time limit: the scene the terminal frame shows, before the auto-reset
    obs, _ = env.reset(seed=args.seed)
    with torch.no_grad():
        for _ in range(env.max_episode_steps - 1):
            obs = env.step(policy.act(obs, deterministic=False)[0].clamp(-1.0, 1.0))[0]
    target_in = (env.cube_pos - env.goal_pos).norm(dim=-1) < env.cfg.goal_radius
    distractor_in = (env.distractor_pos - env.goal_pos).norm(dim=-1) < env.cfg.goal_radius
    final = predicted(model, threshold, env)
    print(f"warm-up policy {checkpoint}, {args.episodes} episodes; reward model threshold {threshold:.3f}")
    print(f"  episodes end with: target in goal {target_in.float().mean():.3f}, distractor in goal {distractor_in.float().mean():.3f}, "
          f"distractor in and target out {(distractor_in & ~target_in).float().mean():.4f}")
    print(f"  predicted success on final frames: all {final.float().mean():.3f}, target in goal {final[target_in].float().mean():.3f}, "
          f"neither cube in goal {final[~target_in & ~distractor_in].float().mean():.3f}")

    scene = env.state_dict()
    generator = torch.Generator().manual_seed(args.seed)
    for name, cube in (("distractor moved onto the goal", 1), ("target moved onto the goal", 0)):
        env.load_state_dict(scene)
        valid = move_onto_goal(env, cube, generator)
        print(f"  predicted success, {name}: {predicted(model, threshold, env)[valid].float().mean():.3f} ({int(valid.sum())} scenes)")


if __name__ == "__main__":
    main()
