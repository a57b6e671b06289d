"""Does a reward model trained on a hacking task's warm-up frames tell the look-alikes apart?

    python benchmarks/hacking_probe.py --run outputs/push_cube_2d_hacking [--episodes 2048] [--seed 7]
        [--policy RUN_DIR]

Reads a pipeline run on push_cube_2d_distractor or push_cube_2d_decoy: stage 1's config and final
policy, stage 2's best model. Runs the warm-up policy (sampling actions, as in training) for one
episode per env and prints

1. how its episodes end: target in the goal, and distractor in the goal or cube on the decoy
   (what the warm-up data saw);
2. the model's predicted success rate (probability >= the recommended threshold) and mean
   probability on those final frames, split by outcome, and on the same scenes edited by hand: the
   look-alike case (distractor moved onto the goal, target left where it is; or the cube moved onto
   the decoy goal), and the cube moved onto the goal.

A model that learned "the target is in the goal" predicts ~0 for the look-alike scenes; one that
learned "a red square covers a green disc" predicts ~1.

With ``--policy`` (a learned-reward run directory, e.g. a ``refresh_table`` row) it then runs that
policy's final checkpoint (deterministic actions) and says where the cube is in the steps the model
pays (P >= threshold): in the goal, at the look-alike (cube touching the decoy disc, or the
distractor in the goal), pushed against the table's edge, elsewhere.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from embodireward import builder
from embodireward.config import parse_dataclass, parse_train_config
from embodireward.envs.push_cube_2d import PushCube2DDecoy, PushCube2DDistractor
from embodireward.envs.push_cube_2d.physics import box_contact, square_overlap
from embodireward.rewards.checkpoint import load_reward_model
from embodireward.trainer.checkpoint import load_checkpoint, load_policy_weights


ENVS = {"push_cube_2d_distractor": PushCube2DDistractor, "push_cube_2d_decoy": PushCube2DDecoy}


def probabilities(model, env, batch: int = 256) -> torch.Tensor:
    images = env.render_frames().images[env.cfg.camera_key]
    with torch.no_grad():
        return torch.cat([model.compute_reward({env.cfg.camera_key: images[i:i + batch]}).reshape(-1) for i in range(0, len(images), batch)])


def near(centres: torch.Tensor, radius: float, generator: torch.Generator) -> torch.Tensor:
    """Points spread uniformly over discs of 0.8 ``radius`` around ``centres`` ``[N, 2]``."""
    offset = torch.randn(centres.shape, generator=generator)
    return centres + offset * 0.8 * radius * torch.rand(centres.shape[0], 1, generator=generator).sqrt() / offset.norm(dim=-1, keepdim=True)


def move_cube(env, cube: int, onto: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Put cube ``cube`` near ``onto`` (the goal or the decoy); returns which envs give a valid scene (no overlaps)."""
    cfg = env.cfg
    env.cubes[:, cube] = near(onto, cfg.goal_radius, generator)
    valid = box_contact(env.pusher_pos, env.cubes[:, cube], cfg.cube_half_size)[0] > cfg.pusher_radius
    if env.cubes.shape[1] > 1:  # the distractor task: the other cube stays put, clear of this one and out of the goal
        other = env.cubes[:, 1 - cube]
        valid &= square_overlap(env.cubes[:, cube], other, cfg.cube_half_size).abs().sum(-1) == 0
        valid &= (other - env.goal_pos).norm(dim=-1) >= cfg.goal_radius
    return valid


def target_in_goal(env) -> torch.Tensor:
    return (env.cube_pos - env.goal_pos).norm(dim=-1) < env.cfg.goal_radius


def at_look_alike(env, touching: bool = False) -> torch.Tensor:
    """Per env, the scene the task's look-alike makes: the distractor in the goal, or the cube on
    the decoy (``touching``: any part of the cube over the disc)."""
    cfg = env.cfg
    if isinstance(env, PushCube2DDecoy):
        return (env.cube_pos - env.decoy_goal).norm(dim=-1) < cfg.goal_radius + (cfg.cube_half_size if touching else 0.0)
    return (env.distractor_pos - env.goal_pos).norm(dim=-1) < cfg.goal_radius


def look_alike(env) -> tuple:
    """(name, edit) of the look-alike scene; ``edit(generator)`` makes it and returns the valid envs."""
    if isinstance(env, PushCube2DDecoy):
        return "cube on the decoy", lambda generator: move_cube(env, 0, env.decoy_goal, generator)
    return "distractor in the goal", lambda generator: move_cube(env, 1, env.goal_pos, generator)


def load_policy(config, env, run_dir: Path):
    policy = builder.build_policy(config, env.single_observation_space, env.single_action_space, torch.device("cpu"))
    checkpoint = run_dir / "checkpoints" / "latest.pt"
    load_policy_weights(policy, load_checkpoint(checkpoint)["policy"], str(checkpoint))
    return policy, checkpoint


def what_the_model_pays(env, model, threshold: float, policy, seed: int) -> str:
    """Where the cube is in the steps of one deterministic episode per env that the model calls successes."""
    cfg = env.cfg
    obs, _ = env.reset(seed=seed)
    paid, places = [], {"in the goal": [], "at the look-alike": [], "against the table edge": []}
    with torch.no_grad():
        for _ in range(env.max_episode_steps - 1):
            obs = env.step(policy.act(obs, deterministic=True)[0].clamp(-1.0, 1.0))[0]
            paid.append(probabilities(model, env) >= threshold)
            in_goal, at_lookalike = target_in_goal(env), at_look_alike(env, touching=True)
            edge = env.cube_pos.abs().max(dim=-1).values > 1.0 - 2 * cfg.cube_half_size
            for name, where in zip(places, (in_goal, at_lookalike & ~in_goal, edge & ~at_lookalike & ~in_goal)):
                places[name].append(where)
    paid = torch.stack(paid)
    shares = {name: float(torch.stack(where)[paid].float().mean()) if paid.any() else float("nan") for name, where in places.items()}
    other = 1.0 - sum(shares.values())
    return (f"the model pays {paid.float().mean():.3f} of the steps; of those, the cube is "
            + ", ".join(f"{name} {share:.3f}" for name, share in shares.items()) + f", elsewhere {other:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="pipeline output directory (holds 1_warmup/ and 2_reward_model/)")
    parser.add_argument("--episodes", type=int, default=2048)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--policy", default=None, help="a learned-reward run directory whose final policy to examine (checkpoints/latest.pt)")
    args = parser.parse_args()
    run = Path(args.run)
    config = parse_train_config(json.loads((run / "1_warmup" / "config.json").read_text()))
    builder.validate_config(config)
    if config.env.id not in ENVS:
        raise SystemExit(f"error: {run / '1_warmup' / 'config.json'}: env.id is '{config.env.id}', this probe needs one of {', '.join(ENVS)}")
    env_cls = ENVS[config.env.id]
    env = env_cls(parse_dataclass(env_cls.Config, {**config.env.cfg, "num_envs": args.episodes}, "env.cfg"), torch.device("cpu"), args.seed)
    policy, checkpoint = load_policy(config, env, run / "1_warmup")
    model = load_reward_model(run / "2_reward_model" / "best_model.safetensors", expected_env=env.describe())
    threshold = model.sidecar.get("recommended_threshold", 0.5)

    # stop one step before the time limit: the scene the terminal frame shows, before the auto-reset
    torch.manual_seed(args.seed)  # the policy samples its actions from torch's global generator
    obs, _ = env.reset(seed=args.seed)
    with torch.no_grad():
        for _ in range(env.max_episode_steps - 1):
            obs = env.step(policy.act(obs, deterministic=False)[0].clamp(-1.0, 1.0))[0]
    target_in, fooled = target_in_goal(env), at_look_alike(env)
    name, edit = look_alike(env)
    final = probabilities(model, env) >= threshold
    print(f"warm-up policy {checkpoint}, {args.episodes} episodes; reward model threshold {threshold:.3f}")
    print(f"  episodes end with: target in goal {target_in.float().mean():.3f}, {name} {fooled.float().mean():.4f}, "
          f"{name} and target out {(fooled & ~target_in).float().mean():.4f}")
    print(f"  predicted success on final frames: all {final.float().mean():.3f}, target in goal {final[target_in].float().mean():.3f}, "
          f"neither {final[~target_in & ~fooled].float().mean():.3f}")

    scene = env.state_dict()
    generator = torch.Generator().manual_seed(args.seed)
    for scene_name, move in ((f"{name} (moved there)", edit), ("target moved onto the goal", lambda g: move_cube(env, 0, env.goal_pos, g))):
        env.load_state_dict(scene)
        valid = move(generator)
        probs = probabilities(model, env)[valid]
        print(f"  {scene_name}: predicted success {(probs >= threshold).float().mean():.3f}, mean probability {probs.mean():.3f} ({int(valid.sum())} scenes)")
    if args.policy:
        policy, checkpoint = load_policy(config, env, Path(args.policy))
        print(f"policy {checkpoint}: {what_the_model_pays(env, model, threshold, policy, args.seed)}")


if __name__ == "__main__":
    main()
