"""reward_data_collection callback, driven by scripted steps of a tiny fake env."""
from __future__ import annotations

import json
from types import SimpleNamespace

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from embodireward.collection.reward_data import RewardDataCollection
from embodireward.config import ConfigError, parse_dataclass
from embodireward.envs.base import Frames
from embodireward.registry import CALLBACKS
from embodireward.trainer.callbacks import StepData

CAM = "top_camera"


class FakeEnv:
    camera_keys = (CAM,)

    def __init__(self, num_envs: int = 3, length: int = 4, image_size: int = 4):
        self.num_envs, self.length, self.image_size = num_envs, length, image_size
        self.max_episode_steps = length

    def describe(self):
        return {"env_id": "fake", "camera_keys": [CAM], "image_size": [self.image_size, self.image_size], "show_goal": True}


class FakeLogger:
    def __init__(self):
        self.scalars = []

    def add_scalar(self, tag, value, step):
        self.scalars.append((tag, value, step))


def make_trainer(tmp_path, env=None, rank=0, world_size=1):
    lines = []
    return SimpleNamespace(env=env or FakeEnv(), run_dir=tmp_path / "run", rank=rank, world_size=world_size,
                           global_step=0, logger=FakeLogger(), log_info=lines.append, lines=lines)


def pixel(env_id: int, t: int) -> int:
    return t * 8 + env_id  # encodes which env and step a frame came from (t < 32)


def drive(cb, trainer, steps, success=lambda env_id, t: False, start=0):
    """Step a scripted env: every episode lasts ``env.length`` steps; frames as ``cb`` requests."""
    env = trainer.env
    n = env.num_envs
    for t in range(start, start + steps):
        request = cb.frame_request()
        done = torch.full((n,), t % env.length == env.length - 1)
        succ = torch.tensor([bool(success(e, t)) for e in range(n)])
        ids = {"every_step": torch.arange(n), "episode_end": done.nonzero().flatten()}.get(request)
        frames = None
        if ids is not None:
            images = torch.tensor([pixel(int(e), t) for e in ids], dtype=torch.uint8).view(-1, 1, 1, 1)
            frames = Frames(ids, {CAM: images.expand(-1, env.image_size, env.image_size, 3).contiguous()})
        zeros = torch.zeros(n)
        trainer.global_step = t + 1
        cb.on_step(trainer, StepData(global_step=t + 1, obs=None, actions=None, next_obs=None, reward=zeros, env_reward=zeros,
                                     terminated=done & succ, truncated=done & ~succ, info={}, frames=frames, success=succ))


def make(tmp_path, trainer=None, **cfg):
    cfg.setdefault("data_dir", str(tmp_path / "data"))
    cb = RewardDataCollection(parse_dataclass(RewardDataCollection.Config, cfg, "callbacks[0].cfg"), trainer)
    trainer = trainer or make_trainer(tmp_path)
    cb.on_train_start(trainer)
    return cb, trainer


def load(path):
    return np.load(path, allow_pickle=True).item()


def names(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_registered():
    assert CALLBACKS.get("reward_data_collection") is RewardDataCollection


def test_trajectory_episode_end_labels_and_manifest(tmp_path):
    cb, trainer = make(tmp_path)
    # env 0 succeeds at its first episode's terminal step; env 1 mid-way through its second episode
    drive(cb, trainer, 8, success=lambda e, t: (e, t) in {(0, 3), (1, 5)})
    cb.on_rollout_end(trainer)
    data = tmp_path / "data"
    assert names(data / "positive") == ["000000.npy", "000001.npy"]
    assert names(data / "negative") == [f"{i:06d}.npy" for i in range(4)]

    first = load(data / "positive" / "000000.npy")  # env 0, terminal step 3, success there
    assert first["images"][CAM].dtype == np.float32 and first["images"][CAM].shape == (1, 3, 4, 4)
    np.testing.assert_allclose(first["images"][CAM][0, :, 0, 0], pixel(0, 3) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(first["labels"], [1.0])
    second = load(data / "positive" / "000001.npy")  # env 1: succeeded at step 5, terminal frame 7 is not a success
    np.testing.assert_allclose(second["images"][CAM][0, 0, 0, 0], pixel(1, 7) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(second["labels"], [0.0])
    assert load(data / "negative" / "000002.npy")["labels"].tolist() == [0.0]

    manifest = json.loads((data / "manifest.json").read_text())
    assert manifest == {
        "format": "trajectory", "env": trainer.env.describe(), "camera_keys": [CAM], "image_size": [4, 4],
        "render": "episode_end", "positive_dir": "positive", "negative_dir": "negative",
        "counts": {"positive": 2, "negative": 4}, "version": 1,
    }
    assert cb.progress() == {"pos": 2, "neg": 4}
    assert ("collection/positive", 2, 8) in trainer.logger.scalars and ("collection/negative", 4, 8) in trainer.logger.scalars


def test_every_step_labels_with_steps_after_success(tmp_path):
    cb, trainer = make(tmp_path, trainer=make_trainer(tmp_path, FakeEnv(num_envs=1, length=6)), render="every_step", steps_after_success=2)
    drive(cb, trainer, 6, success=lambda e, t: t == 1)
    traj = load(tmp_path / "data" / "positive" / "000000.npy")
    assert traj["labels"].tolist() == [0, 1, 1, 1, 0, 0]  # success at 1, then 2 extra positive frames
    np.testing.assert_allclose(traj["images"][CAM][:, 0, 0, 0] * 255, [pixel(0, t) for t in range(6)], atol=1e-4)


def test_labels_reset_between_episodes(tmp_path):
    cb, trainer = make(tmp_path, trainer=make_trainer(tmp_path, FakeEnv(num_envs=1, length=3)), render="every_step", steps_after_success=5)
    drive(cb, trainer, 6, success=lambda e, t: t == 1)
    assert load(tmp_path / "data" / "positive" / "000000.npy")["labels"].tolist() == [0, 1, 1]
    assert load(tmp_path / "data" / "negative" / "000000.npy")["labels"].tolist() == [0, 0, 0]


def test_render_probability_keeps_terminal_frames(tmp_path):
    cb, trainer = make(tmp_path, trainer=make_trainer(tmp_path, FakeEnv(num_envs=2, length=5)), render=0.5, seed=3)
    drive(cb, trainer, 30)
    lengths = []
    for path in sorted((tmp_path / "data" / "negative").iterdir()):
        steps = np.round(load(path)["images"][CAM][:, 0, 0, 0] * 255).astype(int) // 8
        assert steps[-1] % 5 == 4  # the terminal frame is always there
        lengths.append(len(steps))
    assert len(lengths) == 12 and 1 <= min(lengths) < max(lengths) <= 5


def test_caps_stop_rendering_and_log_once(tmp_path):
    cb, trainer = make(tmp_path, max_positive_trajectories=1, max_negative_trajectories=2)
    drive(cb, trainer, 12, success=lambda e, t: e == 0)
    assert len(names(tmp_path / "data" / "positive")) == 1 and len(names(tmp_path / "data" / "negative")) == 2
    assert cb.stopped and cb.frame_request() == "never"
    assert sum("caps reached" in line for line in trainer.lines) == 1
    drive(cb, trainer, 4, start=12)  # frames None from now on: must not fail
    cb.on_train_end(trainer)
    assert json.loads((tmp_path / "data" / "manifest.json").read_text())["counts"] == {"positive": 1, "negative": 2}


def test_resume_continues_numbering_and_never_overwrites(tmp_path):
    cb, trainer = make(tmp_path)
    drive(cb, trainer, 4)
    cb.on_train_end(trainer)
    negative = tmp_path / "data" / "negative"
    assert names(negative) == ["000000.npy", "000001.npy", "000002.npy"]
    before = (negative / "000000.npy").read_bytes()

    cb2, trainer2 = make(tmp_path)
    (negative / "000004.npy").write_bytes(b"another rank")  # taken meanwhile: must be skipped
    drive(cb2, trainer2, 4)
    cb2.on_train_end(trainer2)
    assert names(negative) == [f"{i:06d}.npy" for i in range(7)]
    assert (negative / "000000.npy").read_bytes() == before and (negative / "000004.npy").read_bytes() == b"another rank"
    assert json.loads((tmp_path / "data" / "manifest.json").read_text())["counts"]["negative"] == 7


@pytest.mark.parametrize("key,change", [("image_size", lambda m: m.update(image_size=[8, 8])),
                                        ("camera_keys", lambda m: m.update(camera_keys=["wrist"])),
                                        ("env_id", lambda m: m["env"].update(env_id="other")),
                                        ("format", lambda m: m.update(format="frames"))])
def test_incompatible_existing_data_is_rejected(tmp_path, key, change):
    cb, trainer = make(tmp_path)
    path = tmp_path / "data" / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))
    with pytest.raises(ConfigError, match=f"'{key}'"):
        make(tmp_path)


def test_zero_files_warning_names_the_cause(tmp_path):
    cb, trainer = make(tmp_path, trainer=make_trainer(tmp_path, FakeEnv(length=100)))
    drive(cb, trainer, 5)
    cb.on_train_end(trainer)
    assert any("WARNING" in line and "NO files" in line and "no episode finished" in line for line in trainer.lines)


def test_zero_files_warning_when_caps_already_reached(tmp_path):
    cb, trainer = make(tmp_path)
    drive(cb, trainer, 4)
    cb.on_train_end(trainer)
    cb2, trainer2 = make(tmp_path, max_positive_trajectories=0, max_negative_trajectories=3)
    assert cb2.stopped and cb2.frame_request() == "never"
    drive(cb2, trainer2, 4)
    cb2.on_train_end(trainer2)
    assert any("NO files" in line and "caps" in line for line in trainer2.lines)


def test_frames_format_sampling_caps_and_trajectory_ids(tmp_path):
    success = lambda e, t: e == 0 and t % 4 >= 2  # env 0: last two frames of each episode succeed
    cb, trainer = make(tmp_path, format="frames", render="every_step", sample_rate_fail=0.0, target_success=3)
    drive(cb, trainer, 8, success=success)
    cb.on_rollout_end(trainer)
    data = tmp_path / "data"
    assert names(data / "success") == ["000000.png", "000001.png", "000002.png"] and names(data / "failure") == []
    assert iio.imread(data / "success" / "000000.png")[0, 0, 0] == pixel(0, 2)
    manifest = json.loads((data / "manifest.json").read_text())
    assert manifest["positive_dir"] == "success" and manifest["negative_dir"] == "failure"
    assert manifest["counts"] == {"positive": 3, "negative": 0}
    ids = manifest["frame_trajectories"]
    assert ids["success/000000.png"] == ids["success/000001.png"] != ids["success/000002.png"]


def test_frames_format_sample_rate_and_resumed_ids(tmp_path):
    cb, trainer = make(tmp_path, format="frames", render="every_step", sample_rate_fail=0.5, seed=1)
    drive(cb, trainer, 28)
    cb.on_train_end(trainer)
    kept = len(names(tmp_path / "data" / "failure"))
    assert 25 < kept < 60  # about half of 84 frames
    first_ids = set(json.loads((tmp_path / "data" / "manifest.json").read_text())["frame_trajectories"].values())

    cb2, trainer2 = make(tmp_path, format="frames", render="every_step", sample_rate_fail=0.5, seed=1)
    drive(cb2, trainer2, 4)
    cb2.on_train_end(trainer2)
    manifest = json.loads((tmp_path / "data" / "manifest.json").read_text())
    assert len(manifest["frame_trajectories"]) == manifest["counts"]["negative"] > kept
    new_ids = set(manifest["frame_trajectories"].values()) - first_ids
    assert new_ids and min(new_ids) > max(first_ids)


def test_ranks_get_distinct_trajectory_ids(tmp_path):
    runs = [make(tmp_path, trainer=make_trainer(tmp_path, rank=r, world_size=2), format="frames", render="episode_end") for r in (0, 1)]
    for cb, trainer in runs:
        drive(cb, trainer, 4)
    for cb, trainer in runs:
        cb.on_train_end(trainer)
    manifest = json.loads((tmp_path / "data" / "manifest.json").read_text())
    assert len(manifest["frame_trajectories"]) == 6 and len(set(manifest["frame_trajectories"].values())) == 6
    assert manifest["counts"]["negative"] == 6


def test_run_dir_placeholder_and_camera_check(tmp_path):
    cb, trainer = make(tmp_path, data_dir="{run_dir}/rm_data")
    assert cb.data_dir == (tmp_path / "run" / "rm_data").resolve()
    with pytest.raises(ConfigError, match="camera_key.*'wrist'"):
        make(tmp_path, camera_key="wrist")


@pytest.mark.parametrize("cfg,key", [({"render": "sometimes"}, "render"), ({"render": 1.5}, "render"),
                                     ({"target_success": 10}, "target_success"),
                                     ({"format": "frames", "max_negative_trajectories": 3}, "max_negative_trajectories"),
                                     ({"format": "frames", "sample_rate_fail": 2.0}, "sample_rate_fail")])
def test_config_errors_name_the_key(cfg, key):
    with pytest.raises(ConfigError, match=rf"^callbacks\[0\]\.cfg\.{key}: "):
        parse_dataclass(RewardDataCollection.Config, cfg, "callbacks[0].cfg")


def test_corrupt_existing_manifest_is_a_one_line_error_naming_the_file(tmp_path):
    from embodireward.collection.reward_data import RewardDataCollection
    from embodireward.config import ConfigError, parse_dataclass

    (tmp_path / "manifest.json").write_text("{broken")
    callback = RewardDataCollection(parse_dataclass(RewardDataCollection.Config, {"data_dir": str(tmp_path)}), None)
    callback.manifest_path = tmp_path / "manifest.json"
    with pytest.raises(ConfigError, match=r"manifest\.json: unreadable \(fix or remove it\)") as info:
        callback._read_manifest()
    assert "\n" not in str(info.value)
