"""SIGKILL real training processes, at random moments and in the middle of a checkpoint write:
every checkpoint left behind loads, the run resumes, and its scalars equal an uninterrupted run's."""
from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest

from embodireward.trainer.checkpoint import load_checkpoint
from tests.conftest import REPO_ROOT, tiny_train_config
from tests.faults import kill_at, kill_during_write, logged_scalars, run_to_end, scalar_differences, train_process


def kill_test_config(tmp_path: Path) -> Path:
    """About 1 s per iteration, with 6 MB checkpoints, so that a kill can land inside a write."""
    config = tiny_train_config(tmp_path, iterations=10, rollout_steps=8, eval_freq=2, eval_episodes=8, save_freq=3)
    config["env"]["cfg"].update(num_envs=32, episode_length=12)
    config["policy"]["actor"]["hidden_sizes"] = [512, 512]
    config["policy"]["critic"]["hidden_sizes"] = [512, 512]
    config["algorithm"]["cfg"].update(num_epochs=4, num_minibatches=4, lr_schedule="linear")
    path = tmp_path / "kill.json"
    path.write_text(json.dumps(config))
    return path


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("uninterrupted")
    config = kill_test_config(tmp_path)
    start = time.monotonic()
    run_to_end(config, f"runtime.run_dir={tmp_path / 'run'}", repo_root=REPO_ROOT)
    return logged_scalars(tmp_path / "run"), time.monotonic() - start


def check_checkpoints_load(run_dir: Path) -> int:
    checkpoints = sorted((run_dir / "checkpoints").glob("*.pt"))
    for path in checkpoints:
        load_checkpoint(path)  # raises on a torn file
    return len(checkpoints)


def resume_to_end(config: Path, run_dir: Path) -> None:
    if (run_dir / "checkpoints" / "latest.pt").is_file():
        run_to_end(config, f"runtime.resume={run_dir}", repo_root=REPO_ROOT)
    else:  # killed before the first checkpoint: start again
        run_to_end(config, f"runtime.run_dir={run_dir}", repo_root=REPO_ROOT)


@pytest.mark.parametrize("trial", [0, 1])
def test_kill_at_a_random_moment_then_resume_exactly(tmp_path, uninterrupted, trial):
    reference, duration = uninterrupted
    config = kill_test_config(tmp_path)
    run_dir = tmp_path / "run"
    moment = random.Random(trial).uniform(0.3, 0.9) * duration
    process = train_process(config, f"runtime.run_dir={run_dir}", repo_root=REPO_ROOT)
    assert kill_at(process, moment), "the run finished before the kill"
    check_checkpoints_load(run_dir)
    resume_to_end(config, run_dir)
    assert load_checkpoint(run_dir)["iteration"] == 10
    assert scalar_differences(logged_scalars(run_dir), reference) == []


def test_kill_during_a_checkpoint_write_then_resume_exactly(tmp_path, uninterrupted):
    reference, _ = uninterrupted
    config = kill_test_config(tmp_path)
    run_dir = tmp_path / "run"
    process = train_process(config, f"runtime.run_dir={run_dir}", repo_root=REPO_ROOT)
    torn = kill_during_write(process, run_dir / "checkpoints")
    assert torn is not None, "the run ended without a checkpoint write to interrupt"
    assert torn.exists()  # the kill cut the write: its temp file is left behind, latest.pt is untouched
    assert check_checkpoints_load(run_dir) >= 1 or not (run_dir / "checkpoints" / "latest.pt").exists()
    resume_to_end(config, run_dir)
    assert not torn.exists()  # the next start removed the dead writer's temp file
    assert not list(run_dir.rglob("*.tmp"))
    assert scalar_differences(logged_scalars(run_dir), reference) == []
