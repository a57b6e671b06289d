"""``embodireward eval``: evaluate (and watch) a training checkpoint, without training anything.

Env and policy are rebuilt from the checkpoint's own config (``--set`` changes it first), the
policy's weights (normaliser included) are loaded, and the eval env plays ``--episodes`` episodes
with the policy's mean action (``--stochastic``: sampled actions). With the default seeds these are
the very episodes the trainer's own evaluation played. Output goes only into ``<run>/eval/``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import torch

from embodireward import builder
from embodireward.cli import CommandError, make_parser, run_cli
from embodireward.config import TrainConfig, apply_overrides, parse_train_config
from embodireward.envs.base import VecEnv
from embodireward.policies.base import Policy
from embodireward.trainer.checkpoint import CheckpointError, load_checkpoint, load_policy_weights, resolve_checkpoint
from embodireward.trainer.evaluator import EVAL_ENV_SEED_OFFSET, EVAL_RESET_SEED_OFFSET, EpisodeVideo, run_episodes
from embodireward.utils.io import atomic_write_json
from embodireward.utils.seed import seed_everything

DESCRIPTION = """Evaluate a checkpoint: success rate with a 95% Wilson interval, success_once, return and
episode length (mean +- std) and one row per episode, printed and written to
<run>/eval/<checkpoint>.json. Env and policy come from the checkpoint's own config; --set changes
it (keys as in the training config). --video writes an MP4 (GIF without ffmpeg) of several
episodes, tiled and enlarged; with a reward model (--reward-model, or the run's own) each frame
shows its success probability next to the true success. Nothing is trained."""

EXAMPLES = """
  embodireward eval outputs/push_cube_2d_ppo_20250101_120000                  (its checkpoints/latest.pt)
  embodireward eval outputs/my_run/checkpoints/best.pt --episodes 512
  embodireward eval outputs/my_run --set runtime.seed=7 --set env.eval_env.num_envs=256 --stochastic
  embodireward eval outputs/push_cube_2d_pipeline/3_learned_reward --video    (overlays the run's reward model)
  embodireward eval outputs/my_run --video --reward-model outputs/rm/best_model.safetensors --threshold 0.6
"""


def build_parser():
    parser = make_parser("python -m embodireward.tools.eval_policy", DESCRIPTION, EXAMPLES)
    parser.add_argument("checkpoint", help="run directory (-> checkpoints/latest.pt) or checkpoint file (.pt)")
    parser.add_argument("--episodes", type=int, default=None,
                        help="episodes to play (default: the run's runtime.eval_episodes); rounded up to a "
                             "multiple of the eval envs, one eval env per episode unless env.eval_env.num_envs is set")
    parser.add_argument("--stochastic", action="store_true", help="sample actions instead of the mean action")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="change the checkpoint's config, e.g. --set runtime.seed=3 (other episodes) or "
                             "--set env.eval_env.num_envs=256; repeatable")
    parser.add_argument("--video", action="store_true", help="write <run>/eval/<checkpoint>.mp4")
    parser.add_argument("--video-episodes", type=int, default=4, metavar="K", help="episodes tiled in the video (default 4)")
    parser.add_argument("--fps", type=float, default=10.0, help="video frames per second (default 10)")
    parser.add_argument("--reward-model", default=None, metavar="PATH",
                        help="reward model (directory or .safetensors) whose P(success) the video shows; "
                             "default: the run's own reward.checkpoint_path, if it trained on one")
    parser.add_argument("--no-reward-model", action="store_true", help="no reward-model overlay, even for a learned-reward run")
    parser.add_argument("--threshold", type=float, default=None,
                        help="reward-model decision threshold (default: reward.threshold of the run, else the model's recommended one)")
    parser.add_argument("--name", default=None, help="output file stem inside eval/ (default: the checkpoint's, e.g. latest)")
    return parser


@dataclass
class EvalJob:
    """Everything validated and built before a file is written."""

    checkpoint: Path
    state: Dict[str, Any]
    config: TrainConfig
    env: VecEnv
    policy: Policy
    reward_model: Optional[torch.nn.Module]
    reward_model_path: Optional[str]
    threshold: float
    out_stem: Path


def eval_dir_for(checkpoint: Path) -> Path:
    """``<run>/eval`` for ``<run>/checkpoints/x.pt``; ``eval/`` next to a checkpoint outside a run."""
    parent = checkpoint.parent
    return (parent.parent if parent.name == "checkpoints" else parent) / "eval"


def prepare(args) -> EvalJob:
    for flag, value, low in (("--episodes", args.episodes, 1), ("--video-episodes", args.video_episodes, 1)):
        if value is not None and value < low:
            raise CommandError(f"{flag}: must be >= {low}, got {value}")
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        raise CommandError(f"--threshold: must be in [0, 1], got {args.threshold}")
    checkpoint = resolve_checkpoint(args.checkpoint)
    state = load_checkpoint(checkpoint)
    if not isinstance(state.get("config"), dict):
        raise CheckpointError(f"{checkpoint}: the checkpoint holds no training config to rebuild env and policy from")
    overrides = list(args.overrides) + ([f"runtime.eval_episodes={args.episodes}"] if args.episodes else [])
    config = parse_train_config(apply_overrides(state["config"], overrides))
    builder.validate_config(config)  # plugins, component names and cfg blocks
    device = builder.resolve_device(config.runtime.device)
    if args.reward_model and not args.video:
        raise CommandError("--reward-model: the reward model scores the video frames; add --video")
    env = builder.build_env(config, device, config.runtime.seed + EVAL_ENV_SEED_OFFSET, for_eval=True)
    try:
        policy = builder.build_policy(config, env.single_observation_space, env.single_action_space, device)
        load_policy_weights(policy, state["policy"], str(checkpoint))
        if args.video and not env.camera_keys:
            raise CommandError(f"--video: env '{config.env.id}' renders no camera images")
        model_path = None if args.no_reward_model or not args.video else args.reward_model or (
            config.reward.checkpoint_path if config.reward.use_reward_model else None)
        model = load_image_reward_model(model_path, device, env) if model_path else None
    except BaseException:
        env.close()  # worker processes of simulated envs
        raise
    threshold = 0.5
    if model is not None:
        candidates = (args.threshold, config.reward.threshold, model.sidecar.get("recommended_threshold"))
        threshold = float(next((value for value in candidates if value is not None), threshold))
    stem = args.name or checkpoint.stem + ("_stochastic" if args.stochastic else "")
    return EvalJob(checkpoint, state, config, env, policy, model, model_path if model else None, threshold, eval_dir_for(checkpoint) / stem)


def load_image_reward_model(path: str, device: torch.device, env: VecEnv):
    from embodireward.rewards import BaseImageRewardModel, load_reward_model

    model = load_reward_model(path, device=device, expected_env=env.describe())
    if not isinstance(model, BaseImageRewardModel):
        raise CommandError(f"--reward-model: '{path}' holds a '{model.sidecar['name']}' model, which scores clips; "
                           "the video overlay needs a single-frame (image) reward model")
    return model


def score_frames(model, video: EpisodeVideo, batch_size: int = 256) -> np.ndarray:
    """The reward model's P(success) of every video frame, ``[T, K]``."""
    steps, count = next(iter(video.images.values())).shape[:2]
    flat = {key: torch.from_numpy(video.images[key].reshape(steps * count, *video.images[key].shape[2:]))
            for key in model.cfg.camera_keys}
    probs = [model.compute_reward({key: images[i:i + batch_size] for key, images in flat.items()}).cpu()
             for i in range(0, steps * count, batch_size)]
    return torch.cat(probs).view(steps, count).numpy()


def main(argv: Optional[List[str]] = None) -> int:
    from tqdm import tqdm

    from embodireward.tools.eval_summary import format_summary, reward_model_agreement, summarize

    args = build_parser().parse_args(argv)
    job = prepare(args)
    runtime, env = job.config.runtime, job.env
    reset_seed = runtime.seed + EVAL_RESET_SEED_OFFSET
    seed_everything(reset_seed)  # the sampled actions of --stochastic
    total = math.ceil(runtime.eval_episodes / env.num_envs) * env.num_envs if runtime.eval_episodes else env.num_envs
    with tqdm(total=total, desc="eval episodes", disable=None) as bar:
        result = run_episodes(job.policy, env, reset_seed, episodes=runtime.eval_episodes, deterministic=not args.stochastic,
                              video_envs=args.video_episodes if args.video else 0, progress=bar.update)
    env.close()
    summary = summarize(result)
    report: Dict[str, Any] = {
        "checkpoint": str(job.checkpoint), "global_step": job.state.get("global_step"), "iteration": job.state.get("iteration"),
        "env_id": job.config.env.id, "num_envs": env.num_envs, "deterministic": not args.stochastic,
        "reset_seed": reset_seed, "overrides": args.overrides, **summary,
    }
    if result.video is not None:
        from embodireward.tools.video import compose, write_video

        probs = score_frames(job.reward_model, result.video) if job.reward_model is not None else None
        camera = job.reward_model.cfg.camera_keys[0] if job.reward_model is not None else env.camera_keys[0]
        frames = compose(result.video, camera, probs, job.threshold)
        report["video"] = str(write_video(job.out_stem, frames, fps=args.fps))
        if probs is not None:
            report["reward_model"] = {"path": job.reward_model_path, **reward_model_agreement(result.video, probs, job.threshold),
                                      "frame_probs": probs.round(4).tolist(),
                                      "frame_success": None if result.video.success is None else result.video.success.tolist()}
    report["per_episode"] = [{"episode": i, **row} for i, row in enumerate(result.episodes)]
    json_path = job.out_stem.with_suffix(".json")
    atomic_write_json(json_path, report)

    mode = "deterministic" if not args.stochastic else "stochastic"
    print(f"{job.checkpoint} (step {job.state.get('global_step')}), {mode}, reset seed {reset_seed}:")
    for line in format_summary(summary, report.get("reward_model")):
        print("  " + line)
    if "video" in report:
        print(f"video: {report['video']}")
    print(f"per-episode rows and summary: {json_path}")
    return 0


def cli() -> None:
    run_cli(main)


if __name__ == "__main__":
    cli()
