"""Reward models that read the robot state beside the image: files, data, training, the hook, collection.

The synthetic task is the PickCube look-alike in miniature: every frame shows the same scene
(the cube in the goal); success frames have a still robot, failure frames a moving one. One
frame cannot tell them apart; the robot state can.
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import tiny_train_config
from embodireward.config import ConfigError, RewardSection, parse_dataclass
from embodireward.envs.base import Frames
from embodireward.rewards import load_reward_model
from embodireward.rewards.data import load_reward_data
from embodireward.rewards.frame_png import encode_frame, read_frame
from embodireward.rewards.hook import RewardHook
from embodireward.rewards.training import RewardTrainConfig, train_reward_model
from embodireward.tools.eval_reward import main as eval_reward
from embodireward.tools.scalars import read_event_scalars
from embodireward.train import train_from_dict

SIZE, CAM, STATE_DIM = 32, "top_camera", 4


def placed_frame(rng: np.random.Generator) -> np.ndarray:
    image = rng.integers(0, 60, (SIZE, SIZE, 3), dtype=np.uint8)
    y, x = rng.integers(8, 14, 2)
    image[y : y + 6, x : x + 6] = 255  # the cube, in the goal in every frame
    return image


def robot_state(success: bool, rng: np.random.Generator) -> np.ndarray:
    state = rng.normal(0.0, 1.0, STATE_DIM).astype(np.float32)
    state[-1] = rng.uniform(0.0, 0.1) if success else rng.uniform(0.5, 1.0)  # joint speed: still vs moving
    return state


def write_state_frames(root: Path, per_class: int = 40, with_state: bool = True, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    ids, mapping = itertools.count(), {}
    for kind in ("success", "failure"):
        (root / kind).mkdir(parents=True)
        for i in range(per_class):
            state = robot_state(kind == "success", rng) if with_state else None
            (root / kind / f"{i:06d}.png").write_bytes(encode_frame(placed_frame(rng), state))
            mapping[f"{kind}/{i:06d}.png"] = next(ids) // 2
    env = {"env_id": "synthetic", "camera_keys": [CAM], "image_size": [SIZE, SIZE], "show_goal": True, "robot_state_dim": STATE_DIM}
    manifest = {"format": "frames", "labels": "success", "class_names": ["failure", "success"], "num_classes": 2, "env": env,
                "camera_keys": [CAM], "image_size": [SIZE, SIZE], "render": "episode_end", "version": 2, "frame_trajectories": mapping}
    if with_state:
        manifest["robot_state_dim"] = STATE_DIM
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def train_config(tmp_path: Path, data_path: Path, name: str, **model_cfg) -> RewardTrainConfig:
    return parse_dataclass(RewardTrainConfig, {
        "data_path": str(data_path), "output_dir": str(tmp_path / name),
        "model": {"name": "resnet_reward", "cfg": {"hidden_dim": 32, "dropout": 0.0, **model_cfg}},
        "epochs": 6, "batch_size": 16, "lr": 1e-3, "val_split": 0.25, "scheduler": "constant", "device": "cpu",
        "early_stopping_patience": 0, "progress_bar": False, "min_class_frames": 2,
    })


@pytest.fixture(scope="module")
def state_model(tmp_path_factory):
    """``(data root, model dir, training result)``: the robot-state model the tests below share, trained once."""
    tmp_path = tmp_path_factory.mktemp("state_model")
    root = write_state_frames(tmp_path / "data")
    result = train_reward_model(train_config(tmp_path, root, "with_state", robot_state_dim=STATE_DIM))
    return root, tmp_path / "with_state", result


def test_a_png_carries_its_robot_state_exactly_and_a_missing_state_is_an_error(tmp_path):
    rng = np.random.default_rng(0)
    image, state = placed_frame(rng), np.array([0.1, -2.5, 1e-7, 3.3], dtype=np.float32)
    path = tmp_path / "f.png"
    path.write_bytes(encode_frame(image, state))
    frame, read = read_frame(path, STATE_DIM)
    assert torch.equal(frame[0].permute(1, 2, 0), torch.from_numpy(image))
    assert torch.equal(read[0], torch.from_numpy(state))  # float32 values survive the JSON text exactly
    assert read_frame(path)[1] is None  # image-only readers ignore it
    path.write_bytes(encode_frame(image))
    with pytest.raises(ValueError, match="robot_state"):
        read_frame(path, STATE_DIM)
    path.write_bytes(encode_frame(image, state[:3]))
    with pytest.raises(ValueError, match="expected 4"):
        read_frame(path, STATE_DIM)


def test_frames_without_their_state_are_skipped_and_counted(tmp_path, capsys):
    root = write_state_frames(tmp_path / "data", per_class=6)
    (root / "success" / "000000.png").write_bytes(encode_frame(placed_frame(np.random.default_rng(1))))
    data = load_reward_data(root)
    assert data.robot_state.shape == (11, STATE_DIM) and len(data) == 11 and data.skipped == 1
    assert "robot_state" in data.skipped_reasons[0]


def test_the_robot_state_tells_what_one_frame_cannot(tmp_path, state_model):
    root, model_dir, with_state = state_model
    image_only = train_reward_model(train_config(tmp_path, root, "image_only"))
    assert with_state["evaluation"]["balanced_accuracy"] >= 0.95
    assert image_only["evaluation"]["balanced_accuracy"] <= 0.8  # the images are the same for both classes

    model = load_reward_model(model_dir)
    encoder = model.robot_state_encoder
    data = load_reward_data(root)
    assert not torch.allclose(encoder.mean, torch.zeros(STATE_DIM)) and (encoder.std > 0.05).all()  # fitted, saved, loaded
    rng = np.random.default_rng(7)
    images = torch.from_numpy(np.stack([placed_frame(rng) for _ in range(20)]))
    states = torch.from_numpy(np.stack([robot_state(i % 2 == 0, rng) for i in range(20)]))
    probs = model.compute_reward({CAM: images, "robot_state": states})
    assert ((probs >= 0.5) == torch.tensor([i % 2 == 0 for i in range(20)])).float().mean() >= 0.9
    with pytest.raises(ValueError, match="robot state"):
        model.compute_reward({CAM: images})
    assert data.robot_state.shape == (80, STATE_DIM)


def test_a_model_reading_state_needs_data_that_carries_it(tmp_path):
    root = write_state_frames(tmp_path / "data", per_class=6, with_state=False)
    with pytest.raises(ConfigError, match=r"model\.cfg\.robot_state_dim.*carry none"):
        train_reward_model(train_config(tmp_path, root, "m", robot_state_dim=STATE_DIM))
    assert not (tmp_path / "m").exists()
    with pytest.raises(ConfigError, match="robot_state_dim"):
        train_reward_model(train_config(tmp_path, root, "m", robot_state_dim=-1))
    video = train_config(tmp_path, root, "m", robot_state_dim=STATE_DIM)
    video.model.name = "video_reward"
    with pytest.raises(ConfigError, match="robot_state_dim.*image model"):
        train_reward_model(video)


def test_eval_reward_reads_the_state_and_refuses_data_without_it(tmp_path, state_model):
    root, model_dir, _ = state_model
    report_path = model_dir / "evaluation" / "reward_eval.json"
    assert eval_reward([str(model_dir), "--data", str(root), "--split", "all"]) == 0
    report = json.loads(report_path.read_text())
    assert report["counts"]["samples"] == 80 and report["balanced_accuracy"] >= 0.85  # the images alone cannot beat chance

    stateless = write_state_frames(tmp_path / "stateless", per_class=6, with_state=False)
    before = report_path.read_bytes()
    with pytest.raises(ConfigError, match=r"^--data: the model reads 4 robot-state values; the frames of '.*stateless' carry none$"):
        eval_reward([str(model_dir), "--data", str(stateless)])
    assert report_path.read_bytes() == before  # the error came before anything was written


def test_the_hook_scores_frames_with_their_robot_state(state_model):
    _, model_dir, _ = state_model
    section = parse_dataclass(RewardSection, {"use_reward_model": True, "name": "resnet_reward", "checkpoint_path": str(model_dir),
                                              "reward_mode": "terminal", "combine_mode": "replace", "threshold": 0.5})
    model = load_reward_model(model_dir)
    env_desc = {"env_id": "synthetic", "camera_keys": [CAM], "image_size": [SIZE, SIZE], "robot_state_dim": STATE_DIM}
    hook = RewardHook(section, model, env_desc)
    rng = np.random.default_rng(3)
    n = 8
    images = torch.from_numpy(np.stack([placed_frame(rng) for _ in range(n)]))
    states = torch.from_numpy(np.stack([robot_state(i < 4, rng) for i in range(n)]))
    done = torch.ones(n, dtype=torch.bool)
    reward = hook.compute(torch.zeros(n), done, torch.zeros(n, dtype=torch.bool), Frames(torch.arange(n), {CAM: images}, states))
    assert reward.tolist() == [1.0] * 4 + [0.0] * 4
    with pytest.raises(RuntimeError, match="robot state"):
        hook.compute(torch.zeros(n), done, torch.zeros(n, dtype=torch.bool), Frames(torch.arange(n), {CAM: images}))
    with pytest.raises(ConfigError, match="robot-state values.*gives none"):
        RewardHook(section, model, {**env_desc, "robot_state_dim": 0})


def test_push_cube_2d_collects_the_pusher_state_and_the_learned_reward_loop_scores_with_it(tmp_path):
    config = tiny_train_config(tmp_path, iterations=3)
    config["env"]["cfg"].update({"image_size": 32, "goal_radius": 0.2, "min_cube_goal_dist": 0.2, "max_cube_goal_dist": 0.25})  # some episodes succeed
    config["callbacks"] = [{"name": "reward_data_collection", "cfg": {"format": "frames", "render": "episode_end", "robot_state": True,
                                                                       "data_dir": str(tmp_path / "data")}}]
    train_from_dict(config)
    manifest = json.loads((tmp_path / "data" / "manifest.json").read_text())
    assert manifest["robot_state_dim"] == 4
    data = load_reward_data(tmp_path / "data")
    assert data.robot_state.shape == (len(data), 4) and len(data) >= 16 and data.skipped == 0
    position, velocity = data.robot_state[:, :2], data.robot_state[:, 2:]
    assert position.abs().max() < 1.0 and velocity.abs().max() <= 1.0 + 1e-5 and velocity.abs().sum() > 0

    train_reward_model(train_config(tmp_path, tmp_path / "data", "model", robot_state_dim=4))
    learned = tiny_train_config(tmp_path, iterations=2, run_dir=str(tmp_path / "learned"))
    learned["env"]["cfg"].update(config["env"]["cfg"])
    learned["reward"] = {"use_reward_model": True, "checkpoint_path": str(tmp_path / "model"), "reward_mode": "terminal"}
    train_from_dict(learned)
    scored = read_event_scalars(tmp_path / "learned" / "logs")["reward_model/images"]
    assert scored[:, 2].sum() == 16 * 2  # 16 envs x 16 steps, 6-step episodes: every terminal frame was scored with its robot state

    config["callbacks"][0]["cfg"]["format"] = "trajectory"
    with pytest.raises(ConfigError, match="robot_state"):
        train_from_dict(config)
