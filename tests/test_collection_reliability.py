"""Collection that loses no data: start-up repair, full and read-only disks, exact resume from its state."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from conftest import tiny_train_config
from embodireward.collection.reward_data import RewardDataCollection
from embodireward.config import ConfigError, parse_dataclass
from embodireward.envs.push_cube_2d import PushCube2D, PushCube2DConfig
from embodireward.rewards.data import load_reward_data
from embodireward.trainer.callbacks import StepData
from embodireward.utils.io import FileSystemError
from test_collection import drive, make, make_trainer

DEAD_PID = 4_000_000  # above the kernel's pid_max: never a live process


def manifest_of(data_dir: Path) -> dict:
    return json.loads((data_dir / "manifest.json").read_text())


def listed_equals_disk(data_dir: Path) -> bool:
    manifest = manifest_of(data_dir)
    listed = set(manifest.get("frame_trajectories") or manifest.get("trajectory_files") or [])
    on_disk = {f"{d.name}/{f.name}" for d in data_dir.iterdir() if d.is_dir() for f in d.iterdir()}
    return listed == on_disk


def test_start_up_repairs_the_manifest_and_says_what_it_fixed(tmp_path):
    cb, trainer = make(tmp_path, format="frames", render="every_step")
    drive(cb, trainer, 4, success=lambda e, t: e == 0)  # 4 success and 8 failure frames
    cb.on_train_end(trainer)
    data = tmp_path / "data"
    (data / "failure" / "000003.png").unlink()  # listed, gone
    shutil.copy(data / "failure" / "000000.png", data / "failure" / "000100.png")  # on disk, unlisted (a killed run's frame)
    (data / "failure" / f".000101.png.{DEAD_PID}.abc.tmp").write_bytes(b"torn")  # a killed write
    (data / "failure" / f".000102.png.{os.getpid()}.abc.tmp").write_bytes(b"live")  # a live writer's: kept
    with pytest.raises(ConfigError, match=r"lists 1 file\(s\) that are missing, first '.*failure/000003.png'"):
        load_reward_data(data)  # never silently trains on what is left

    cb2, trainer2 = make(tmp_path, format="frames", render="every_step")
    repaired = [line for line in trainer2.lines if "repaired" in line]
    assert repaired == [f"reward_data_collection: repaired {data / 'manifest.json'}: removed 1 stale temp file(s); "
                        "added 1 file(s) missing from the manifest (e.g. failure/000100.png); "
                        "dropped 1 manifest entry whose file is gone (e.g. failure/000003.png)"]
    manifest = manifest_of(data)
    ids = manifest["frame_trajectories"]
    assert "failure/000003.png" not in ids and ids["failure/000100.png"] == -1  # its own trajectory, no episode's id
    assert min(v for k, v in ids.items() if k != "failure/000100.png") >= 0 and manifest["counts"] == {"failure": 8, "success": 4}
    assert (data / "failure" / f".000102.png.{os.getpid()}.abc.tmp").exists()
    (data / "failure" / f".000102.png.{os.getpid()}.abc.tmp").unlink()
    assert listed_equals_disk(data) and len(load_reward_data(data)) == 12
    cb3, trainer3 = make(tmp_path, format="frames", render="every_step")
    assert not any("repaired" in line for line in trainer3.lines)  # nothing left to fix


@contextlib.contextmanager
def tmpfs(path: Path, size: str):
    """A real, small file system at ``path`` (needs root: CI runs as root)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    path.mkdir(parents=True)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True).returncode:
        pytest.skip("this machine does not allow mounting a tmpfs")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def test_full_disk_is_one_line_and_leaves_no_unlisted_frame(tmp_path):
    with tmpfs(tmp_path / "small", "2m") as mount:
        cb, trainer = make(tmp_path, data_dir=str(mount / "data"), format="frames", render="every_step")
        # the disk fills up during the run (the start checks for 1 MiB free): leave ~160 kB, i.e.
        # ~35 frames, since every file takes at least a 4 kB page
        (mount / "filler").write_bytes(b"\0" * (2048 - 160) * 1024)
        with pytest.raises(FileSystemError) as err:
            for start in range(0, 400, 4):  # rollouts of 4 steps until the disk is full
                drive(cb, trainer, 4, start=start, success=lambda e, t: e == 0)
                cb.on_rollout_end(trainer)
        message = str(err.value)
        assert "\n" not in message and message.startswith(f"cannot write '{mount / 'data'}") and message.endswith("no space left on device")
        data = mount / "data"
        assert listed_equals_disk(data) and not list(data.rglob("*.tmp"))
        assert len(load_reward_data(data)) == sum(manifest_of(data)["counts"].values()) > 0


def test_read_only_disk_is_one_line(tmp_path):
    with tmpfs(tmp_path / "ro", "1m") as mount:
        cb, trainer = make(tmp_path, data_dir=str(mount / "data"), format="frames", render="every_step")
        drive(cb, trainer, 4)
        cb.on_rollout_end(trainer)
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        with pytest.raises(FileSystemError, match=r"^cannot write '.*/data/failure/\d{6}\.png': read-only file system$"):
            drive(cb, trainer, 4, start=4)
        assert listed_equals_disk(mount / "data")
        config = parse_dataclass(RewardDataCollection.Config, {"data_dir": str(mount / "data2")}, "callbacks[0].cfg")
        with pytest.raises(ConfigError, match=r"^reward_data_collection.data_dir: cannot collect into .* (is not writable|is on a read-only file system)$"):
            RewardDataCollection(config, make_trainer(tmp_path))


# ------------------------------------------------------------------------------- exact resume


class EnvTrainer:
    """Steps a real push_cube_2d with seeded random actions and feeds a collection callback, as the trainer does."""

    def __init__(self, tmp_path: Path, data_dir: Path, seed: int = 0, **cfg):
        self.env = PushCube2D(PushCube2DConfig(num_envs=6, episode_length=5, image_size=16), torch.device("cpu"), seed=seed)
        self.actions = torch.Generator().manual_seed(seed)
        self.trainer = make_trainer(tmp_path, self.env)
        self.cb = RewardDataCollection(parse_dataclass(RewardDataCollection.Config, {"data_dir": str(data_dir), **cfg}), self.trainer)
        self.env.reset(seed=seed)

    def run(self, steps: int, rollout: int = 4) -> None:
        for t in range(steps):
            actions = torch.rand(self.env.num_envs, 2, generator=self.actions) * 2 - 1
            _, reward, terminated, truncated, info = self.env.step(actions, render=self.cb.frame_request())
            self.cb.on_step(self.trainer, StepData(t, None, actions, None, reward, reward, terminated, truncated, info,
                                                   info.get("frames"), info["success"]))
            if (t + 1) % rollout == 0:
                self.cb.on_rollout_end(self.trainer)

    def state(self, path: Path) -> Path:
        torch.save({"env": self.env.state_dict(), "callback": self.cb.state_dict(), "actions": self.actions.get_state()}, path)
        return path

    def restore(self, path: Path) -> None:
        state = torch.load(path, weights_only=True)  # as the trainer loads checkpoints
        self.env.load_state_dict(state["env"])
        self.actions.set_state(state["actions"])
        self.cb.load_state_dict(state["callback"])


def directory_contents(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and p.name != ".manifest.lock"}


@pytest.mark.parametrize("cfg", [{"format": "trajectory", "render": 0.5}, {"format": "frames", "render": 0.5, "sample_rate_fail": 0.5}],
                         ids=["trajectory", "frames"])
def test_resumed_collection_equals_an_uninterrupted_one(tmp_path, cfg):
    whole = EnvTrainer(tmp_path, tmp_path / "whole", **cfg)
    whole.cb.on_train_start(whole.trainer)
    whole.run(24)
    whole.cb.on_train_end(whole.trainer)

    first = EnvTrainer(tmp_path, tmp_path / "resumed", **cfg)
    first.cb.on_train_start(first.trainer)
    first.run(12)  # 12 = 3 rollouts: a checkpoint mid-episode (episodes last 5 steps)
    checkpoint = first.state(tmp_path / "state.pt")
    first.run(6)  # files written after the checkpoint, then the process is killed
    assert len(directory_contents(tmp_path / "resumed")) > len(directory_contents(tmp_path / "whole")) // 2

    second = EnvTrainer(tmp_path, tmp_path / "resumed", seed=123, **cfg)  # fresh objects; the state replaces their seeds
    second.restore(checkpoint)
    second.cb.on_train_start(second.trainer)
    assert any("written after the checkpoint" in line for line in second.trainer.lines)
    second.run(12)
    second.cb.on_train_end(second.trainer)
    expected = directory_contents(tmp_path / "whole")
    assert len([name for name in expected if name.endswith((".npy", ".png"))]) >= 10
    assert directory_contents(tmp_path / "resumed") == expected


def test_resumed_training_run_collects_what_an_uninterrupted_one_does(tmp_path):
    """Through the trainer: needs it to checkpoint and restore env and callback state (runtime.resume)."""
    from embodireward.train import train_from_dict

    def config(run: str, iterations: int, **runtime):
        data = tiny_train_config(tmp_path / run, iterations=iterations, save_freq=1, **runtime)
        data["env"]["cfg"].update(num_envs=4, image_size=16)
        data["callbacks"] = [{"name": "reward_data_collection", "cfg": {"format": "frames", "render": 0.5, "sample_rate_fail": 0.5}}]
        return data

    train_from_dict(config("whole", 4))
    train_from_dict(config("resumed", 2))
    train_from_dict(config("resumed", 4, resume=str(tmp_path / "resumed" / "run")))
    whole, resumed = (directory_contents(tmp_path / run / "run" / "reward_data") for run in ("whole", "resumed"))
    assert len(whole) > 5 and resumed == whole
