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


def make_trainer(tmp_path, env=None, rank=0, world_size=1, iterations=10):
    lines = []
    return SimpleNamespace(env=env or FakeEnv(), run_dir=tmp_path / "run", rank=rank, world_size=world_size,
                           global_step=0, iteration=0, config=SimpleNamespace(runtime=SimpleNamespace(iterations=iterations)),
                           logger=FakeLogger(), log_info=lines.append, lines=lines)


def pixel(env_id: int, t: int) -> int:
    return t * 8 + env_id  # encodes which env and step a frame came from (t < 32)


def drive(cb, trainer, steps, success=lambda env_id, t: False, start=0, stage=None):
    """Step a scripted env: every episode lasts ``env.length`` steps; frames as ``cb`` requests.

    ``stage(env_id, t)`` (optional) fills ``info["stage"]``."""
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
        info = {} if stage is None else {"stage": torch.tensor([stage(e, t) for e in range(n)])}
        cb.on_step(trainer, StepData(global_step=t + 1, obs=None, actions=None, next_obs=None, reward=zeros, env_reward=zeros,
                                     terminated=done & succ, truncated=done & ~succ, info=info, frames=frames, success=succ))


def make(tmp_path, trainer=None, **cfg):
    cfg.setdefault("data_dir", str(tmp_path / "data"))
    trainer = trainer or make_trainer(tmp_path)
    cb = RewardDataCollection(parse_dataclass(RewardDataCollection.Config, cfg, "callbacks[0].cfg"), trainer)
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
        "format": "trajectory", "labels": "success", "env": trainer.env.describe(), "camera_keys": [CAM], "image_size": [4, 4],
        "render": "episode_end", "class_names": ["negative", "positive"], "num_classes": 2,
        "negative_dir": "negative", "positive_dir": "positive", "counts": {"positive": 2, "negative": 4}, "version": 2,
        "trajectory_files": [f"negative/{i:06d}.npy" for i in range(4)] + ["positive/000000.npy", "positive/000001.npy"],
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


def test_a_class_capped_in_the_first_half_of_the_run_is_reported_once_with_the_rate_to_lower(tmp_path):
    cb, trainer = make(tmp_path, format="frames", render="every_step", target_success=2, target_failure=4, sample_rate_fail=0.5)
    for iteration in range(4):  # 3 envs x 4 steps per rollout: the failure cap fills in the first one, success never
        trainer.iteration = iteration
        drive(cb, trainer, 4, start=4 * iteration, success=lambda e, t: False)
        cb.on_rollout_end(trainer)
    warnings = [line for line in trainer.lines if "reached its cap" in line]
    assert len(warnings) == 1
    assert "'failure' reached its cap (4) in iteration 1 of 10" in warnings[0] and "lower sample_rate_fail (now 0.5)" in warnings[0]
    trainer.iteration = 6  # the second half: the success cap filling now is expected, not reported
    drive(cb, trainer, 4, start=16, success=lambda e, t: True)
    cb.on_rollout_end(trainer)
    assert sum("reached its cap" in line for line in trainer.lines) == 1
    cb2, trainer2 = make(tmp_path, format="frames", render="every_step", target_success=2, target_failure=4)  # a class already full when the run starts is not reported again
    assert not any("reached its cap" in line for line in trainer2.lines)


def test_an_early_trajectory_cap_is_reported_with_the_cap_to_raise(tmp_path):
    cb, trainer = make(tmp_path, max_negative_trajectories=2)  # trajectories are not sampled: no rate to lower
    drive(cb, trainer, 4, success=lambda e, t: False)
    cb.on_rollout_end(trainer)
    warnings = [line for line in trainer.lines if "reached its cap" in line]
    assert len(warnings) == 1 and "'negative' reached its cap (2) in iteration 1 of 10" in warnings[0]
    assert "raise max_negative_trajectories (now 2)" in warnings[0] and "sample_rate" not in warnings[0]


def test_stop_run_when_full_asks_the_trainer_to_stop_once_every_class_is_capped(tmp_path):
    trainer = make_trainer(tmp_path)
    trainer.stop_reasons = []
    trainer.request_stop = trainer.stop_reasons.append
    cb, trainer = make(tmp_path, trainer, format="frames", target_success=2, target_failure=3, stop_run_when_full=True)
    drive(cb, trainer, 4, success=lambda e, t: e == 0)  # one episode per env: 1 success, 2 failures
    assert trainer.stop_reasons == []
    drive(cb, trainer, 4, start=4, success=lambda e, t: e == 0)
    assert len(trainer.stop_reasons) == 1 and "success=2/2" in trainer.stop_reasons[0]
    with pytest.raises(ConfigError, match=r"^callbacks\[0\]\.cfg\.stop_run_when_full: needs both target_success and target_failure"):
        parse_dataclass(RewardDataCollection.Config, {"format": "frames", "target_success": 2, "stop_run_when_full": True}, "callbacks[0].cfg")


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
    assert manifest["counts"] == {"success": 3, "failure": 0} and manifest["class_names"] == ["failure", "success"]
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
    assert len(manifest["frame_trajectories"]) == manifest["counts"]["failure"] > kept
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
    assert manifest["counts"]["failure"] == 6


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


def test_corrupt_existing_manifest_is_a_one_line_error_at_construction(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "manifest.json").write_text("{broken")
    with pytest.raises(ConfigError, match=r"manifest\.json: unreadable \(fix or remove it\)") as info:
        RewardDataCollection(parse_dataclass(RewardDataCollection.Config, {"data_dir": str(tmp_path / "data")}), make_trainer(tmp_path))
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------------------- stage labels

STAGES = ("failed", "partial", "success")


class FakeStageEnv(FakeEnv):
    stage_names = STAGES


def stage_of(e, t):
    """env 0 climbs failed -> partial -> success within each 4-step episode; env 1 stops at partial; env 2 stays failed."""
    return (min(t % 4, 2), min(t % 4, 1), 0)[e]


def test_stage_labels_in_frames_format(tmp_path):
    cb, trainer = make(tmp_path, trainer=make_trainer(tmp_path, FakeStageEnv()), format="frames", labels="stage", render="every_step")
    drive(cb, trainer, 4, success=lambda e, t: stage_of(e, t) == 2, stage=stage_of)
    cb.on_train_end(trainer)
    data = tmp_path / "data"
    stored = {name: [int(iio.imread(data / name / f)[0, 0, 0]) for f in names(data / name)] for name in STAGES}
    # frame pixel t * 8 + env: failed: env 0 t0, env 1 t0, env 2 t0-3; partial: env 0 t1, env 1 t1-3; success: env 0 t2-3
    assert stored == {"failed": sorted([pixel(0, 0), pixel(1, 0)] + [pixel(2, t) for t in range(4)]),
                      "partial": sorted([pixel(0, 1)] + [pixel(1, t) for t in (1, 2, 3)]), "success": [pixel(0, 2), pixel(0, 3)]}
    manifest = json.loads((data / "manifest.json").read_text())
    assert manifest["labels"] == "stage" and manifest["class_names"] == list(STAGES) and manifest["num_classes"] == 3
    assert manifest["counts"] == {"failed": 6, "partial": 4, "success": 2} and "positive_dir" not in manifest
    assert cb.progress() == {"pos": 2, "neg": 10}


def test_stage_labels_in_trajectory_format_load_as_classes(tmp_path):
    from embodireward.rewards.data import load_reward_data
    from embodireward.rewards.dataset import split_by_trajectory

    cb, trainer = make(tmp_path, trainer=make_trainer(tmp_path, FakeStageEnv()), labels="stage", render="every_step")
    drive(cb, trainer, 16, success=lambda e, t: stage_of(e, t) == 2, stage=stage_of)
    cb.on_train_end(trainer)
    data_dir = tmp_path / "data"
    assert [len(names(data_dir / name)) for name in STAGES] == [4, 4, 4]  # each episode under its highest stage
    assert load(data_dir / "success" / "000000.npy")["labels"].tolist() == [0, 1, 2, 2]
    assert load(data_dir / "partial" / "000000.npy")["labels"].dtype == np.int64
    data = load_reward_data(data_dir)
    assert data.class_names == list(STAGES) and data.counts()["classes"] == {"failed": 4 * 4 + 4 + 4, "partial": 4 * 3 + 4, "success": 8}
    train, val = split_by_trajectory(data, 0.25, seed=0)
    assert sorted(data.labels[val].unique().tolist()) == [0, 1, 2]  # one trajectory of each stage held out
    assert not set(data.trajectory[train].tolist()) & set(data.trajectory[val].tolist())


def test_stage_labels_need_stage_info(tmp_path):
    with pytest.raises(ConfigError, match=r"^reward_data_collection.labels: 'stage' needs env 'fake' to name its stages in a stage_names attribute"):
        make(tmp_path, labels="stage")
    cb, trainer = make(tmp_path, trainer=make_trainer(tmp_path, FakeStageEnv()), labels="stage")
    with pytest.raises(RuntimeError, match=r"the env's step info has no 'stage'"):
        drive(cb, trainer, 1)
    cb, trainer = make(tmp_path, trainer=make_trainer(tmp_path, FakeStageEnv()), labels="stage", data_dir=str(tmp_path / "d2"))
    with pytest.raises(RuntimeError, match=r"info\['stage'\] must be in \[0, 2\]"):
        drive(cb, trainer, 1, stage=lambda e, t: 3)
    with pytest.raises(ConfigError, match=r"^callbacks\[0\]\.cfg\.positive_dir: not used with labels 'stage'"):
        parse_dataclass(RewardDataCollection.Config, {"labels": "stage", "positive_dir": "yes"}, "callbacks[0].cfg")


def test_construction_checks_run_before_any_file_is_written(tmp_path):
    class NoSuccess(FakeEnv):
        has_success = False

    config = parse_dataclass(RewardDataCollection.Config, {"data_dir": str(tmp_path / "data")}, "callbacks[0].cfg")
    with pytest.raises(ConfigError, match=r"^reward_data_collection: env 'fake' reports no success \(has_success is false\)"):
        RewardDataCollection(config, make_trainer(tmp_path, NoSuccess()))
    (tmp_path / "file").write_text("in the way")
    blocked = parse_dataclass(RewardDataCollection.Config, {"data_dir": str(tmp_path / "file" / "data")}, "callbacks[0].cfg")
    with pytest.raises(ConfigError, match=r"^reward_data_collection.data_dir: cannot collect into '.*file/data': '.*file' exists and is not a directory$"):
        RewardDataCollection(blocked, make_trainer(tmp_path))
    RewardDataCollection(config, make_trainer(tmp_path))  # a valid one constructs ...
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # ... and writes nothing before on_train_start
    with pytest.raises(ConfigError, match=r"^callbacks\[0\]\.cfg\.target_success: target_success and target_failure are both 0"):
        parse_dataclass(RewardDataCollection.Config, {"format": "frames", "target_success": 0, "target_failure": 0}, "callbacks[0].cfg")
