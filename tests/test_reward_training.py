"""Reward-model data loading, splitting, metrics and training on small synthetic data.

Synthetic frames: dark noise with a white square, in the top-left quadrant for success frames and
in the bottom-right quadrant otherwise, so a tiny model learns them in a few epochs.
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from conftest import run_module
from embodireward.config import ConfigError, parse_dataclass
from embodireward.rewards import load_reward_model
from embodireward.rewards.data import load_reward_data
from embodireward.rewards.dataset import AugmentConfig, RewardDataset, split_by_trajectory
from embodireward.rewards.metrics import auroc, best_f1_threshold, binary_metrics
from embodireward.rewards.training import RewardTrainConfig, train_reward_model

torch.set_num_threads(1)
SIZE = 32
CAM = "top_camera"


def synth_frame(success: bool, rng: np.random.Generator) -> np.ndarray:
    """uint8 [H, W, 3]."""
    image = rng.integers(0, 60, (SIZE, SIZE, 3), dtype=np.uint8)
    low, high = (2, SIZE // 2 - 8) if success else (SIZE // 2 + 2, SIZE - 8)
    y, x = rng.integers(low, high, 2)
    image[y : y + 6, x : x + 6] = 255
    return image


def manifest(fmt: str, cams=(CAM,), **extra) -> dict:
    env = {"env_id": "synthetic", "camera_keys": list(cams), "image_size": [SIZE, SIZE], "show_goal": True}
    return {"format": fmt, "env": env, "camera_keys": list(cams), "image_size": [SIZE, SIZE], "render": "every_step", "version": 1, **extra}


def write_trajectories(root: Path, n_pos: int = 8, n_neg: int = 8, length: int = 4, cams=(CAM,), seed: int = 0) -> Path:
    """Positive trajectories succeed from their middle frame on; negative ones never do."""
    rng = np.random.default_rng(seed)
    for kind, count in (("positive", n_pos), ("negative", n_neg)):
        (root / kind).mkdir(parents=True)
        for i in range(count):
            labels = np.array([kind == "positive" and t >= length // 2 for t in range(length)], dtype=np.float32)
            images = {cam: np.stack([synth_frame(bool(l), rng) for l in labels]).transpose(0, 3, 1, 2).astype(np.float32) / 255.0 for cam in cams}
            np.save(root / kind / f"{i:06d}.npy", {"images": images, "labels": labels}, allow_pickle=True)
    (root / "manifest.json").write_text(json.dumps(manifest("trajectory", cams, counts={"positive": n_pos, "negative": n_neg})))
    return root


def write_frames(root: Path, n_pos: int = 12, n_neg: int = 12, per_trajectory: int | None = 3, seed: int = 0) -> Path:
    """PNG frames; ``per_trajectory`` consecutive files of a class share a trajectory id (None: no ids)."""
    rng = np.random.default_rng(seed)
    ids = itertools.count()
    mapping = {}
    for kind, count in (("success", n_pos), ("failure", n_neg)):
        (root / kind).mkdir(parents=True)
        for i in range(count):
            iio.imwrite(root / kind / f"{i:06d}.png", synth_frame(kind == "success", rng))
            if per_trajectory:
                mapping[f"{kind}/{i:06d}.png"] = next(ids) // per_trajectory
    extra = {"frame_trajectories": mapping} if per_trajectory else {}
    (root / "manifest.json").write_text(json.dumps(manifest("frames", **extra)))
    return root


def train_config(tmp_path: Path, data_path: Path, **overrides) -> RewardTrainConfig:
    data = {
        "data_path": str(data_path), "output_dir": str(tmp_path / "out"),
        "model": {"name": "resnet_reward", "cfg": {"hidden_dim": 32, "dropout": 0.0}},
        "epochs": 4, "batch_size": 16, "lr": 1e-3, "val_split": 0.25, "scheduler": "constant",
        "augment": {"shift_pad": 1, "brightness": 0.1, "contrast": 0.0, "saturation": 0.0, "hue": 0.0},
        "progress_bar": False, "min_class_frames": 2, **overrides,  # tiny test data sets
    }
    return parse_dataclass(RewardTrainConfig, data)


# ------------------------------------------------------------------------------------- data


def test_load_trajectory_data(tmp_path):
    root = write_trajectories(tmp_path / "data", n_pos=3, n_neg=2, length=4, cams=(CAM, "wrist"))
    data = load_reward_data(root)
    assert len(data) == 20 and data.skipped == 0
    assert set(data.images) == {CAM, "wrist"} and data.images[CAM].shape == (20, 3, SIZE, SIZE) and data.images[CAM].dtype == torch.uint8
    assert data.labels.tolist() == [0, 0, 0, 0] * 2 + [0, 0, 1, 1] * 3  # class 0 ('negative') first, success last
    assert data.trajectory.tolist() == [t for t in range(5) for _ in range(4)] and data.step.tolist() == [0, 1, 2, 3] * 5
    stored = np.load(root / "positive" / "000000.npy", allow_pickle=True).item()["images"][CAM]
    assert torch.equal(data.images[CAM][8:12], torch.from_numpy(np.rint(stored * 255).astype(np.uint8)))  # exact uint8 round trip
    assert data.counts() == {"samples": 20, "positive": 6, "negative": 14, "trajectories": 5, "classes": {"negative": 14, "positive": 6}}
    assert set(load_reward_data(root, ["wrist"]).images) == {"wrist"}


def test_load_frames_data(tmp_path):
    data = load_reward_data(write_frames(tmp_path / "ids", n_pos=4, n_neg=5, per_trajectory=3))
    assert data.images[CAM].shape == (9, 3, SIZE, SIZE) and data.labels.tolist() == [0] * 5 + [1] * 4  # 'failure' is class 0
    assert data.trajectory.tolist() == [1, 1, 2, 2, 2, 0, 0, 0, 1]  # written success first: ids 0-3 // 3, then 4-8 // 3
    rng = np.random.default_rng(0)
    assert torch.equal(data.images[CAM][5], torch.from_numpy(synth_frame(True, rng)).permute(2, 0, 1))
    without_ids = load_reward_data(write_frames(tmp_path / "no_ids", n_pos=4, n_neg=5, per_trajectory=None))
    assert without_ids.trajectory.tolist() == list(range(9))  # one trajectory per file
    with pytest.raises(ConfigError, match="needs trajectory data"):
        load_reward_data(tmp_path / "ids", [CAM, "wrist"])


def test_corrupt_files_are_skipped_and_counted(tmp_path, capsys):
    root = write_trajectories(tmp_path / "traj", n_pos=2, n_neg=2)
    (root / "positive" / "000099.npy").write_bytes(b"garbage")
    np.save(root / "negative" / "000099.npy", {"images": {CAM: np.zeros((2, 3, SIZE, SIZE), np.float32)}, "labels": np.zeros(5, np.float32)}, allow_pickle=True)
    np.save(root / "negative" / "000098.npy", {"images": {CAM: np.zeros((1, 3, 8, 8), np.float32)}, "labels": np.zeros(1, np.float32)}, allow_pickle=True)
    data = load_reward_data(root)
    assert data.skipped == 3 and len(data) == 16
    assert "skipped 3 unreadable file(s)" in capsys.readouterr().out
    assert any("000098.npy" in r and "image sizes" in r for r in data.skipped_reasons)

    frames = write_frames(tmp_path / "frames", n_pos=2, n_neg=2)
    (frames / "failure" / "000007.png").write_bytes(b"\x89PNG broken")
    assert load_reward_data(frames).skipped == 1


def test_empty_class_and_missing_manifest_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"'.*nothing' not found"):
        load_reward_data(tmp_path / "nothing")
    (tmp_path / "no_manifest").mkdir()
    with pytest.raises(ConfigError, match=r"no_manifest' has no manifest.json"):
        load_reward_data(tmp_path / "no_manifest")
    root = write_trajectories(tmp_path / "data", n_pos=0, n_neg=3)
    with pytest.raises(ConfigError) as err:
        load_reward_data(root)
    assert str(err.value) == f"reward data '{root}' has no frames of class(es) ['positive'] (12 frames in total: {{'negative': 12, 'positive': 0}})"
    write_trajectories(tmp_path / "unreadable", n_pos=2, n_neg=2)
    for path in (tmp_path / "unreadable" / "negative").iterdir():
        path.write_bytes(b"junk")
    with pytest.raises(ConfigError, match=r"has no readable 'negative' files \(all 2 files in 'negative/' are unreadable"):
        load_reward_data(tmp_path / "unreadable")


def test_too_few_frames_of_a_class_is_a_one_line_error_before_any_file(tmp_path):
    data = write_frames(tmp_path / "data", n_pos=6, n_neg=12)
    with pytest.raises(ConfigError) as err:
        train_reward_model(train_config(tmp_path, data, min_class_frames=10))
    assert str(err.value).startswith(f"min_class_frames: '{data}' holds 6 positive frame(s), fewer than min_class_frames=10")
    assert not (tmp_path / "out").exists()


def test_split_by_trajectory_has_no_leakage(tmp_path):
    data = load_reward_data(write_trajectories(tmp_path / "traj", n_pos=10, n_neg=10, length=3))
    train, val = split_by_trajectory(data, 0.3, seed=1)
    assert len(train) + len(val) == len(data)
    assert not set(data.trajectory[train].tolist()) & set(data.trajectory[val].tolist())
    assert data.trajectory[val].unique().numel() == 6  # 3 per class
    assert data.labels[val].max() == 1 and data.labels[val].min() == 0
    assert torch.equal(split_by_trajectory(data, 0.3, seed=1)[1], val)
    assert not torch.equal(split_by_trajectory(data, 0.3, seed=2)[1], val)

    frames = load_reward_data(write_frames(tmp_path / "frames", n_pos=12, n_neg=12, per_trajectory=3))
    train, val = split_by_trajectory(frames, 0.25, seed=0)
    assert not set(frames.trajectory[train].tolist()) & set(frames.trajectory[val].tolist())
    assert len(val) == 6  # one 3-frame trajectory per class


def test_windows_stay_in_their_trajectory_and_only_training_is_augmented(tmp_path):
    data = load_reward_data(write_trajectories(tmp_path / "traj", n_pos=2, n_neg=2, length=3))
    index = torch.arange(len(data))
    windows = RewardDataset(data, index, window=3)
    assert windows.frames[:4].tolist() == [[0, 0, 0], [0, 0, 1], [0, 1, 2], [3, 3, 3]]
    clip, label = windows[5]
    assert clip[CAM].shape == (3, 3, SIZE, SIZE) and label == data.labels[5]
    assert torch.equal(clip[CAM], data.images[CAM][[3, 4, 5]])

    val = RewardDataset(data, index)
    assert all(torch.equal(val[i][0][CAM], data.images[CAM][i]) for i in range(len(data)))
    torch.manual_seed(0)
    train = RewardDataset(data, index, augment=parse_dataclass(AugmentConfig, {"shift_pad": 3}))
    augmented = [train[i][0][CAM] for i in range(len(data))]
    assert all(a.shape == (3, SIZE, SIZE) and a.dtype == torch.uint8 for a in augmented)
    assert sum(not torch.equal(a, data.images[CAM][i]) for i, a in enumerate(augmented)) >= len(data) - 1


# ------------------------------------------------------------------------------------- metrics


def test_metrics_match_brute_force():
    probs = torch.tensor([0.9, 0.8, 0.8, 0.4, 0.3, 0.8, 0.1])
    labels = torch.tensor([1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0])
    pairs = [(p, n) for p, l in zip(probs, labels) if l for n, m in zip(probs, labels) if not m]
    expected = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs) / len(pairs)
    assert auroc(probs, labels) == pytest.approx(expected)
    m = binary_metrics(probs, labels, 0.5)
    assert m["accuracy"] == pytest.approx(5 / 7) and m["precision"] == pytest.approx(3 / 4) and m["recall"] == pytest.approx(3 / 4)
    threshold, f1 = best_f1_threshold(probs, labels)
    assert f1 == pytest.approx(max(binary_metrics(probs, labels, t)["f1"] for t in probs.tolist()))
    assert binary_metrics(probs, labels, threshold)["f1"] == pytest.approx(f1)
    separable = torch.tensor([0.9, 0.7, 0.2, 0.1])
    assert best_f1_threshold(separable, torch.tensor([1.0, 1.0, 0.0, 0.0])) == pytest.approx((0.45, 1.0))


# ------------------------------------------------------------------------------------- training


def test_short_training_run_learns_and_writes_artifacts(tmp_path):
    data_path = write_trajectories(tmp_path / "data", n_pos=12, n_neg=12, length=4)
    result = train_reward_model(train_config(tmp_path, data_path, epochs=3))
    out = tmp_path / "out"
    assert result["best"]["val/accuracy"] >= 0.95 and result["best"]["val/auroc"] >= 0.99
    for name in ("best_model.safetensors", "best_model.json", "last_model.safetensors", "last_model.json", "metrics.json"):
        assert (out / name).is_file(), name
    assert list((out / "logs").glob("events.out.tfevents.*"))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs_run"] == 3 and metrics["best_epoch"] == result["best_epoch"]
    assert metrics["data"]["train"]["trajectories"] + metrics["data"]["val"]["trajectories"] == 24
    assert 0.0 < metrics["recommended_threshold"] < 1.0
    sidecar = json.loads((out / "best_model.json").read_text())
    assert sidecar["recommended_threshold"] == metrics["recommended_threshold"]
    assert sidecar["config"]["image_size"] == [SIZE, SIZE] and sidecar["config"]["camera_keys"] == [CAM]  # from the manifest
    assert sidecar["manifest"]["env"]["env_id"] == "synthetic"

    model = load_reward_model(out, expected_env={"env_id": "synthetic", "image_size": [SIZE, SIZE]})
    rng = np.random.default_rng(123)
    fresh = torch.from_numpy(np.stack([synth_frame(i % 2 == 0, rng) for i in range(20)]))
    predicted = model.apply_threshold(model.compute_reward(fresh), sidecar["recommended_threshold"])
    assert (predicted == torch.tensor([i % 2 == 0 for i in range(20)])).float().mean() >= 0.9


def test_early_stopping_uses_the_monitored_metric(tmp_path):
    data_path = write_frames(tmp_path / "data", n_pos=8, n_neg=8, per_trajectory=2)
    config = train_config(tmp_path, data_path, epochs=6, lr=1e-9, monitor="val/accuracy", early_stopping_patience=1,
                          balance="sampler", scheduler="warmup_cosine", model={"name": "resnet_reward", "cfg": {"freeze_encoder": True}})
    result = train_reward_model(config)
    # frozen encoder and lr ~ 0: accuracy cannot improve after epoch 1, so epoch 2 ends the run
    assert result["stopped_early"] and result["epochs_run"] == 2 and result["best_epoch"] == 1
    assert json.loads((tmp_path / "out" / "best_model.json").read_text())["metrics"]["epoch"] == 1


def test_video_model_trains_on_trajectory_data(tmp_path):
    data_path = write_trajectories(tmp_path / "data", n_pos=6, n_neg=6, length=4)
    cfg = train_config(tmp_path, data_path, epochs=3,
                       model={"name": "video_reward", "cfg": {"hidden_dim": 16, "num_frames": 2, "temporal_pooling": "mean"}})
    result = train_reward_model(cfg)
    assert result["epochs_run"] == 3 and result["data"]["train"]["samples"] + result["data"]["val"]["samples"] == 48
    assert result["best"]["val/auroc"] >= 0.9
    model = load_reward_model(tmp_path / "out")
    assert type(model).__name__ == "VideoRewardModel" and model.cfg.num_frames == 2
    frames_path = write_frames(tmp_path / "frames")
    with pytest.raises(ConfigError, match="needs trajectory-format data"):
        train_reward_model(train_config(tmp_path, frames_path, model={"name": "video_reward"}))


def test_model_section_errors(tmp_path):
    data_path = write_frames(tmp_path / "data")
    with pytest.raises(ConfigError, match=r"^model.name: unknown reward model 'resnet'"):
        train_reward_model(train_config(tmp_path, data_path, model={"name": "resnet"}))
    with pytest.raises(ConfigError, match=r"^model.cfg.camera_keys: camera\(s\) \['wrist'\] are not in the data"):
        train_reward_model(train_config(tmp_path, data_path, model={"name": "resnet_reward", "cfg": {"camera_keys": ["wrist"]}}))
    with pytest.raises(ConfigError, match=r"^model.cfg.hidden_dim: expected an integer"):
        train_reward_model(train_config(tmp_path, data_path, model={"name": "resnet_reward", "cfg": {"hidden_dim": "big"}}))
    with pytest.raises(ConfigError, match=r"^val_split: must be in \(0, 1\)"):
        train_config(tmp_path, data_path, val_split=0.0)


def test_cli_config_error_is_one_line_and_exit_2(tmp_path):
    config = tmp_path / "reward.json"
    config.write_text(json.dumps({"data_path": str(tmp_path / "missing"), "epochs": "many"}))
    proc = run_module("embodireward.train_reward", "--config", str(config), timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip() == "error: epochs: expected an integer, got 'many'"
    from embodireward.train_reward import main

    with pytest.raises(ConfigError, match=r"^reward data directory '.*missing' not found$"):
        main(["--config", str(config), "--set", "epochs=1"])


def test_shipped_config_parses():
    from embodireward.rewards.training import load_reward_train_config

    cfg = load_reward_train_config(Path(__file__).resolve().parent.parent / "configs/push_cube_2d/reward_model.json")
    assert cfg.model.name == "resnet_reward" and cfg.monitor == "val/f1"


def test_output_dir_problems_are_one_line_errors_before_any_file(tmp_path):
    data_path = write_frames(tmp_path / "data")
    (tmp_path / "taken").write_text("a file")
    with pytest.raises(ConfigError) as err:
        train_reward_model(train_config(tmp_path, data_path, output_dir=str(tmp_path / "taken" / "rm")))
    assert str(err.value) == f"output_dir: cannot write the reward model to '{tmp_path / 'taken' / 'rm'}': '{tmp_path / 'taken'}' exists and is not a directory"
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    with pytest.raises(ConfigError, match=r"^model.cfg.hidden_dim: must be >= 1"):
        train_reward_model(train_config(tmp_path, data_path, model={"name": "resnet_reward", "cfg": {"hidden_dim": 0}}))
    with pytest.raises(ConfigError, match=r"^reward data '.*' has no frames of class"):
        train_reward_model(train_config(tmp_path, write_frames(tmp_path / "one_class", n_pos=0, n_neg=4)))
    assert sorted(str(p) for p in tmp_path.rglob("*") if "one_class" not in str(p)) == before  # no output dir was created
