"""SIGKILL a real pipeline while it collects frames and while it trains the reward model: every
file left behind decodes, the manifest lists exactly the files on disk, and re-running the same
command finishes all three stages."""
from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio
import pytest

from embodireward.rewards.checkpoint import load_reward_model
from tests.conftest import REPO_ROOT, write_json
from tests.faults import kill_when, run_to_end, train_process
from tests.test_pipeline import tiny_pipeline


def kill_pipeline_config(tmp_path: Path) -> Path:
    """Long enough stages for a kill to land inside them (tens of frames per second collected,
    a few seconds per reward-model epoch)."""
    pipeline = tiny_pipeline(tmp_path)
    pipeline["warmup"]["runtime"]["iterations"] = 40
    pipeline["reward_model"].update(epochs=3)
    return write_json(tmp_path / "pipeline.json", pipeline)


def frames_on_disk(data_dir: Path) -> set:
    return {f"{d.name}/{f.name}" for d in data_dir.iterdir() if d.is_dir() for f in d.iterdir()} if data_dir.is_dir() else set()


def check_data(data_dir: Path) -> dict:
    """Every frame decodes and the manifest lists exactly the frames on disk."""
    manifest = json.loads((data_dir / "manifest.json").read_text())
    on_disk = frames_on_disk(data_dir)
    assert set(manifest["frame_trajectories"]) == on_disk
    for name in on_disk:
        assert iio.imread(data_dir / name).ndim == 3, name
    return manifest


def finish_and_check(config: Path, root: Path) -> None:
    run_to_end(config, repo_root=REPO_ROOT)
    manifest = check_data(root / "reward_data")
    assert sum(manifest["counts"].values()) == len(manifest["frame_trajectories"]) > 0
    summary = json.loads((root / "pipeline_summary.json").read_text())
    assert all((root / stage / "stage_done.json").is_file() for stage in ("1_warmup", "2_reward_model", "3_learned_reward")), summary
    load_reward_model(root / "2_reward_model" / "best_model.safetensors")
    assert not [p for p in root.rglob("*") if p.name.endswith(".tmp")]


@pytest.mark.parametrize("moment", [10, 40])
def test_kill_during_collection_then_rerun(tmp_path, moment):
    config = kill_pipeline_config(tmp_path)
    root = tmp_path / "outputs" / "tiny"
    process = train_process(config, repo_root=REPO_ROOT)
    assert kill_when(process, lambda: len(frames_on_disk(root / "reward_data")) >= moment, poll=0.005), "the warm-up ended before the kill"
    assert not (root / "1_warmup" / "stage_done.json").exists()
    finish_and_check(config, root)


def test_kill_during_reward_model_training_then_rerun(tmp_path):
    config = kill_pipeline_config(tmp_path)
    root = tmp_path / "outputs" / "tiny"
    process = train_process(config, repo_root=REPO_ROOT)
    # the first epoch's TensorBoard file appears while it trains; kill a moment later
    started = lambda: any((root / "2_reward_model").rglob("events.out.tfevents.*")) if (root / "2_reward_model").is_dir() else False
    assert kill_when(process, started, poll=0.005), "the reward model finished before the kill"
    assert (root / "1_warmup" / "stage_done.json").is_file() and not (root / "2_reward_model" / "stage_done.json").exists()
    check_data(root / "reward_data")
    finish_and_check(config, root)
