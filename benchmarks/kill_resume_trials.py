"""SIGKILL trials: kill a real training run at random moments, resume it, compare with an uninterrupted run.

    python benchmarks/kill_resume_trials.py                      # push_cube_2d, 3 trials
    python benchmarks/kill_resume_trials.py --maniskill          # also PushCube-v1 (CPU workers), 1 trial

push_cube_2d snapshots its state, so the resumed run must log bit-identical scalars (time-based
ones aside). ManiSkill's CPU workers cannot snapshot: the resumed run continues statistically and
says so in its log. Prints one table row per trial.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from embodireward.trainer.checkpoint import load_checkpoint  # noqa: E402
from tests.faults import kill_at, logged_scalars, run_to_end, scalar_differences, train_process  # noqa: E402


def write_config(folder: Path, source: str, env_cfg: dict, **runtime) -> Path:
    config = json.loads((REPO_ROOT / source).read_text())
    config["runtime"].update(progress_bar=False, **runtime)
    config["env"]["cfg"].update(env_cfg)
    path = folder / "config.json"
    path.write_text(json.dumps(config))
    return path


def trial(config: Path, run_dir: Path, moment: float, reference) -> dict:
    process = train_process(config, f"runtime.run_dir={run_dir}", repo_root=REPO_ROOT)
    killed = kill_at(process, moment)
    latest = run_dir / "checkpoints" / "latest.pt"
    loads = all(load_checkpoint(path) is not None for path in (run_dir / "checkpoints").glob("*.pt"))
    at = load_checkpoint(latest)["iteration"] if latest.is_file() else 0
    run_to_end(config, f"runtime.resume={run_dir}" if latest.is_file() else f"runtime.run_dir={run_dir}", repo_root=REPO_ROOT)
    log = sorted(config.parent.glob("*.log"))[-1].read_text()
    differences = scalar_differences(logged_scalars(run_dir), reference) if reference is not None else None
    return {"killed_at_s": round(moment, 1), "killed": killed, "checkpoints_load": loads, "resumed_from_iteration": at,
            "final_iteration": load_checkpoint(latest)["iteration"], "differing_tags": differences,
            "says_statistical": "statistical resume" in log}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--maniskill", action="store_true", help="also kill and resume a PushCube-v1 run")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # the setting: configs/push_cube_2d/ppo.json with 256 envs, 20 iterations
        config = write_config(tmp, "configs/push_cube_2d/ppo.json", {"num_envs": 256}, iterations=20, eval_freq=5, save_freq=5)
        start = time.monotonic()
        run_to_end(config, f"runtime.run_dir={tmp / 'uninterrupted'}", repo_root=REPO_ROOT)
        duration = time.monotonic() - start
        reference = logged_scalars(tmp / "uninterrupted")
        for n in range(args.trials):
            result = trial(config, tmp / f"trial_{n}", rng.uniform(0.2, 0.9) * duration, reference)
            rows.append({"task": "push_cube_2d", **result})
        if args.maniskill:
            ms = tmp / "maniskill"
            ms.mkdir()
            config = write_config(ms, "configs/maniskill/pushcube_ppo.json", {}, iterations=6, eval_freq=3, rollout_steps=400)
            rows.append({"task": "PushCube-v1", **trial(config, ms / "run", 75.0, None)})
    print("| task | killed at (s) | checkpoints load | resumed from iteration | final iteration | scalars vs uninterrupted | log says statistical |")
    print("|---|---:|---|---:|---:|---|---|")
    for row in rows:
        same = "n/a (not exact)" if row["differing_tags"] is None else ("identical" if not row["differing_tags"] else f"differ: {row['differing_tags'][:3]}")
        print(f"| {row['task']} | {row['killed_at_s']} | {row['checkpoints_load']} | {row['resumed_from_iteration']} | "
              f"{row['final_iteration']} | {same} | {row['says_statistical']} |")


if __name__ == "__main__":
    main()
