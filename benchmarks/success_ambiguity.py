"""How many failures does one frame show as successes? Episode ends of a run's checkpoints.

    python benchmarks/success_ambiguity.py --run outputs/pickcube_pipeline/1_warmup
        [--checkpoints 150 200 250 300] [--episodes 128] [--visible is_obj_placed] [--seed 5]

A task's success can hinge on a condition that a camera frame does not show. PickCube-v1's
``success`` is ``is_obj_placed & is_robot_static``, and "static" is a joint-velocity test
(every joint slower than 0.2 rad/s): an episode that ends with the cube held in the goal while
the arm still moves is a failure whose final frame looks like a success. No single-frame reward
model can separate such failures from successes, so their share of the failure frames bounds the
balanced accuracy any such model reaches on that data.

For each checkpoint (``checkpoints/iter_*.pt`` of the run, or the iterations named), the policy
plays ``--episodes`` episodes with sampled actions, as in training (the episodes the collection
callback saw), and the script counts their ends: successes, failures that meet every
``--visible`` condition of success (they fail only what the frame does not show: "look like
success"), and other failures. It then weights each
checkpoint's look-alike share by the failure frames the run collected nearest to it
(``collection/negative`` in the run's TensorBoard log) and prints the estimated share ``a`` of
look-alike failure frames and the balanced accuracy bound ``1 - a / 2`` (a classifier that calls
them successes loses ``a`` of the failure class's recall; calling them failures would lose the
identical-looking successes). The bound assumes those frames show nothing of the motion.
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch

from embodireward import builder
from embodireward.builtins import load_builtin_components
from embodireward.config import parse_train_config
from embodireward.tools.scalars import read_event_scalars
from embodireward.trainer.checkpoint import load_checkpoint, load_policy_weights


def end_states(checkpoint: Path, episodes: int, visible: List[str], seed: int) -> Dict[str, int]:
    """Counts of ``success`` / ``looks_like_success`` / ``other_failure`` over ``episodes`` episode ends."""
    state = load_checkpoint(checkpoint)
    config = parse_train_config(state["config"])
    device = torch.device("cpu")
    env = builder.build_env(config, device, seed)
    try:
        policy = builder.build_policy(config, env.single_observation_space, env.single_action_space, device)
        load_policy_weights(policy, state["policy"], str(checkpoint))
        low = torch.as_tensor(env.single_action_space.low)
        high = torch.as_tensor(env.single_action_space.high)
        counts = {"success": 0, "looks_like_success": 0, "other_failure": 0}
        obs, _ = env.reset(seed=seed)
        while sum(counts.values()) < episodes:
            with torch.no_grad():
                actions, _ = policy.act(obs)
            obs, _, terminated, truncated, info = env.step(torch.clamp(actions, low, high))
            unknown = [key for key in visible if key not in info["metrics"]]
            if unknown:
                raise SystemExit(f"--visible {unknown}: not among the env's metrics {sorted(info['metrics'])}")
            for i in (terminated | truncated).nonzero().flatten().tolist():
                if bool(info["success"][i]):
                    counts["success"] += 1
                elif all(bool(info["metrics"][key][i]) for key in visible):
                    counts["looks_like_success"] += 1
                else:
                    counts["other_failure"] += 1
        return counts
    finally:
        env.close()


def collected_failures(run: Path) -> np.ndarray:
    """``[[env_step, failure frames collected so far], ...]`` from the run's log."""
    scalars = read_event_scalars(run / "logs")
    if "collection/negative" not in scalars:
        raise SystemExit(f"{run / 'logs'} has no collection/negative: was reward_data_collection on in this run?")
    return scalars["collection/negative"][:, [0, 2]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="run directory with checkpoints/iter_*.pt and logs/")
    parser.add_argument("--checkpoints", type=int, nargs="*", default=None, help="iterations to probe (default: every iter_*.pt)")
    parser.add_argument("--episodes", type=int, default=128)
    parser.add_argument("--visible", nargs="+", default=["is_obj_placed"],
                        help="the success conditions a frame shows (boolean info keys of the env)")
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    load_builtin_components()

    found = {int(re.search(r"(\d+)", p.stem).group(1)): p for p in (args.run / "checkpoints").glob("iter_*.pt")}
    wanted = sorted(found) if args.checkpoints is None else args.checkpoints
    missing = [it for it in wanted if it not in found]
    if missing or not wanted:
        raise SystemExit(f"no checkpoint for iteration(s) {missing or 'any'} in {args.run / 'checkpoints'} (has {sorted(found)})")

    collected = collected_failures(args.run)
    steps_per_iteration = collected[0, 0]  # the first row is logged after iteration 1
    print(f"{'iteration':>9} {'episodes':>8} {'success':>8} {'looks like success':>18} {'other failure':>13} {'look-alike share of failures':>28}")
    shares = {}
    for iteration in wanted:
        counts = end_states(found[iteration], args.episodes, args.visible, args.seed)
        failures = counts["looks_like_success"] + counts["other_failure"]
        shares[iteration] = counts["looks_like_success"] / failures if failures else 0.0
        print(f"{iteration:>9} {sum(counts.values()):>8} {counts['success']:>8} {counts['looks_like_success']:>18} "
              f"{counts['other_failure']:>13} {shares[iteration]:>28.3f}", flush=True)

    # each newly collected failure frame takes the share of the nearest probed checkpoint
    iterations = collected[:, 0] / steps_per_iteration
    new_frames = np.diff(collected[:, 1], prepend=0.0)
    probed = np.array(sorted(shares))
    nearest = probed[np.abs(iterations[:, None] - probed[None, :]).argmin(axis=1)]
    share = float((new_frames * np.array([shares[int(k)] for k in nearest])).sum() / max(new_frames.sum(), 1.0))
    print(f"\nfailure frames collected: {int(collected[-1, 1])}; estimated look-alike share a = {share:.3f}; "
          f"single-frame balanced accuracy bound 1 - a/2 = {1 - share / 2:.3f}")


if __name__ == "__main__":
    main()
