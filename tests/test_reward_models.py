"""Reward models: input handling, architectures, pretrained weights, checkpoints, reward mapping."""
from __future__ import annotations

import json

import pytest
import torch

from embodireward.config import ConfigError, parse_dataclass
from embodireward.rewards import BaseVideoRewardModel, check_env_compatibility, load_reward_model, save_reward_model
from embodireward.rewards.base import BaseRewardModel, sample_frame_indices
from embodireward.rewards.resnet import ResNetRewardModel, build_resnet_encoder
from embodireward.rewards.video import VideoRewardModel

torch.set_num_threads(1)
ENV = {"env_id": "push_cube_2d", "camera_keys": ["top_camera"], "image_size": [32, 32], "show_goal": True, "control_mode": "pusher_velocity"}


def resnet(**cfg) -> ResNetRewardModel:
    cfg.setdefault("image_size", [32, 32])
    return ResNetRewardModel(parse_dataclass(ResNetRewardModel.Config, cfg)).eval()


def video(**cfg) -> VideoRewardModel:
    cfg.setdefault("image_size", [32, 32])
    return VideoRewardModel(parse_dataclass(VideoRewardModel.Config, cfg)).eval()


@pytest.mark.parametrize("arch", ["resnet10", "resnet18"])
def test_resnet_accepts_both_layouts_and_dtypes(arch):
    torch.manual_seed(0)
    model = resnet(arch=arch)
    images = torch.randint(0, 256, (3, 32, 32, 3), dtype=torch.uint8)  # [B, H, W, C] as envs render
    probs = model.compute_reward(images)
    assert probs.shape == (3,) and probs.dtype == torch.float32 and ((probs > 0) & (probs < 1)).all()
    chw_float = images.permute(0, 3, 1, 2).float() / 255.0
    assert torch.allclose(model.compute_reward(chw_float), probs, atol=1e-5)
    assert torch.allclose(model.compute_reward({"top_camera": chw_float}), probs, atol=1e-5)
    assert model.compute_reward(torch.rand(2, 3, 48, 40)).shape == (2,)  # other sizes are resized
    with pytest.raises(ValueError, match="expected 3 colour channels"):
        model.compute_reward(torch.rand(2, 4, 32, 32))


def test_multi_camera_uses_one_encoder_per_camera():
    model = resnet(camera_keys=["front", "wrist"], hidden_dim=32)
    assert set(model.encoders.encoders) == {"front", "wrist"} and model.head[0].in_features == 1024
    images = {"front": torch.rand(2, 3, 32, 32), "wrist": torch.rand(2, 32, 32, 3)}
    assert model.compute_reward(images).shape == (2,)
    changed = dict(images, wrist=torch.rand(2, 32, 32, 3))
    assert not torch.allclose(model.compute_reward(changed), model.compute_reward(images))
    with pytest.raises(KeyError, match="wrist"):
        model.compute_reward({"front": images["front"]})
    with pytest.raises(ValueError, match="pass a dict"):
        model.compute_reward(images["front"])


def test_frozen_encoder_keeps_weights_and_batchnorm_statistics():
    model = resnet(freeze_encoder=True).train()
    assert not any(p.requires_grad for p in model.encoders.parameters())
    assert all(p.requires_grad for p in model.head.parameters())
    assert not model.encoders.training and model.head.training


def test_pretrained_without_local_weights_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(ConfigError) as err:
        parse_dataclass(ResNetRewardModel.Config, {"arch": "resnet18", "pretrained": True}, "model.cfg")
    message = str(err.value)
    assert message.startswith("model.cfg.pretrained: ") and "cannot be downloaded" in message and "pretrained_path" in message
    assert str(tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth") in message
    with pytest.raises(ConfigError, match="no ImageNet weights for resnet10"):
        parse_dataclass(ResNetRewardModel.Config, {"arch": "resnet10", "pretrained": True}, "model.cfg")
    with pytest.raises(ConfigError, match="pretrained"):  # built in code, without config validation
        build_resnet_encoder("resnet18", pretrained=True)
    with pytest.raises(ConfigError, match=r"model.cfg.pretrained_path: encoder weights file '.*missing.pt' not found"):
        parse_dataclass(ResNetRewardModel.Config, {"pretrained_path": str(tmp_path / "missing.pt")}, "model.cfg")


def test_pretrained_weights_load_from_hub_cache_and_local_file(tmp_path, monkeypatch):
    import torchvision

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    source = torchvision.models.resnet18(weights=None)
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(source.state_dict(), tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth")
    encoder = build_resnet_encoder("resnet18", pretrained=True)
    assert torch.equal(encoder.conv1.weight, source.conv1.weight)

    small = build_resnet_encoder("resnet10")
    from safetensors.torch import save_file

    save_file(small.state_dict(), str(tmp_path / "encoder.safetensors"))
    model = resnet(pretrained_path=str(tmp_path / "encoder.safetensors"))
    assert torch.equal(model.encoders.encoders["top_camera"].layer4[0].conv1.weight, small.layer4[0].conv1.weight)
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="bad.pt"):
        resnet(pretrained_path=str(tmp_path / "bad.pt"))


def test_save_load_roundtrip_gives_identical_outputs(tmp_path):
    torch.manual_seed(0)
    model = resnet(hidden_dim=64, head_activation="tanh")
    path = save_reward_model(model, tmp_path, "best_model", {"manifest": {"env": ENV}, "recommended_threshold": 0.4, "metrics": {"val/f1": 1.0}})
    assert path == tmp_path / "best_model.safetensors"
    sidecar = json.loads((tmp_path / "best_model.json").read_text())
    assert sidecar["name"] == "resnet_reward" and sidecar["config"]["hidden_dim"] == 64 and sidecar["format_version"] == 1
    assert sidecar["recommended_threshold"] == 0.4 and sidecar["manifest"]["env"] == ENV
    images = torch.rand(4, 32, 32, 3)
    for where in (tmp_path, path, tmp_path / "best_model.json"):
        loaded = load_reward_model(where, expected_env=ENV)
        assert not loaded.training and loaded.sidecar["recommended_threshold"] == 0.4
        assert torch.equal(loaded.compute_reward(images), model.compute_reward(images))

    clip_model = video(num_frames=3, temporal_pooling="gru", hidden_dim=16)
    save_reward_model(clip_model, tmp_path, "video")
    clips = torch.rand(2, 5, 3, 32, 32)
    loaded = load_reward_model(tmp_path / "video.safetensors")
    assert isinstance(loaded, BaseVideoRewardModel) and torch.equal(loaded.compute_reward(clips), clip_model.compute_reward(clips))


def test_pretrained_checkpoint_loads_without_the_pretrained_file(tmp_path):
    encoder = build_resnet_encoder("resnet10")
    torch.save(encoder.state_dict(), tmp_path / "encoder.pt")
    model = resnet(pretrained_path=str(tmp_path / "encoder.pt"))
    save_reward_model(model, tmp_path / "ckpt")
    (tmp_path / "encoder.pt").unlink()
    images = torch.rand(2, 3, 32, 32)
    assert torch.equal(load_reward_model(tmp_path / "ckpt").compute_reward(images), model.compute_reward(images))


def test_overrides_that_contradict_the_sidecar_name_the_key(tmp_path):
    save_reward_model(resnet(hidden_dim=256), tmp_path)
    load_reward_model(tmp_path, overrides={"hidden_dim": 256, "image_size": (32, 32)})  # agreeing values are fine
    with pytest.raises(ConfigError) as err:
        load_reward_model(tmp_path, overrides={"hidden_dim": 128})
    assert str(err.value) == "reward.model_cfg.hidden_dim: checkpoint has 256, config says 128"
    with pytest.raises(ConfigError, match=r"^reward.model_cfg.image_size: checkpoint has \[32, 32\], config says \[64, 64\]$"):
        load_reward_model(tmp_path, overrides={"image_size": [64, 64]})
    with pytest.raises(ConfigError, match=r"^reward.model_cfg.hiden_dim: not a resnet_reward config key"):
        load_reward_model(tmp_path, overrides={"hiden_dim": 256})


def test_env_mismatch_names_the_key_and_both_values(tmp_path):
    save_reward_model(resnet(), tmp_path, extra_sidecar={"manifest": {"env": ENV}})
    with pytest.raises(ConfigError) as err:
        load_reward_model(tmp_path, expected_env=dict(ENV, show_goal=False))
    message = str(err.value)
    assert "'show_goal'" in message and "True" in message and "False" in message and "best_model.safetensors" in message
    assert "\n" not in message
    with pytest.raises(ConfigError, match=r"'image_size'.*\[32, 32\].*\[64, 64\]"):
        load_reward_model(tmp_path, expected_env=dict(ENV, image_size=[64, 64]))
    # keys outside the compared set, or missing on one side, do not matter
    load_reward_model(tmp_path, expected_env={"env_id": "push_cube_2d", "episode_length": 7, "image_size": (32, 32)})
    check_env_compatibility({}, ENV, "data")


def test_missing_or_corrupt_checkpoint_files_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match=r"'.*nowhere.safetensors' not found"):
        load_reward_model(tmp_path / "nowhere.safetensors")
    with pytest.raises(ConfigError, match=r"best_model.safetensors' not found"):
        load_reward_model(tmp_path)  # a directory without best_model
    with pytest.raises(ConfigError, match="expected a .safetensors file"):
        load_reward_model(tmp_path / "model.pt")
    save_reward_model(resnet(), tmp_path)
    sidecar = tmp_path / "best_model.json"
    text = sidecar.read_text()
    sidecar.write_text("{not json")
    with pytest.raises(ConfigError, match="best_model.json' is unreadable"):
        load_reward_model(tmp_path)
    sidecar.write_text(json.dumps(dict(json.loads(text), name="no_such_model")))
    with pytest.raises(ConfigError, match="unknown reward model 'no_such_model'"):
        load_reward_model(tmp_path)
    sidecar.write_text(json.dumps(dict(json.loads(text), config=dict(json.loads(text)["config"], hidden_dim=8))))
    with pytest.raises(ConfigError, match=r"best_model.safetensors' do not fit ResNetRewardModel: wrong shape \['head.0.weight'"):
        load_reward_model(tmp_path)
    sidecar.write_text(text)
    (tmp_path / "best_model.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(ConfigError, match="best_model.safetensors' are corrupt or unreadable"):
        load_reward_model(tmp_path)
    sidecar.unlink()
    with pytest.raises(ConfigError, match="best_model.json' not found"):
        load_reward_model(tmp_path)


def test_scale_reward_hard_soft_and_asymmetric():
    probs = torch.tensor([0.1, 0.5, 0.7, 0.95])
    scale = BaseRewardModel.scale_reward
    assert scale(probs).tolist() == [0.0, 1.0, 1.0, 1.0]
    assert scale(probs, threshold=0.8).tolist() == [0.0, 0.0, 0.0, 1.0]
    assert scale(probs, threshold=0.6, success_reward=10.0, fail_reward=-1.0).tolist() == [-1.0, -1.0, 10.0, 10.0]
    assert torch.allclose(scale(probs, use_soft=True), probs)
    assert torch.allclose(scale(probs, use_soft=True, success_reward=2.0, fail_reward=-1.0), -1.0 + 3.0 * probs)
    assert ResNetRewardModel.apply_threshold(probs, 0.7).tolist() == [False, False, True, True]


def test_frame_sampling_strategies():
    assert sample_frame_indices(10, "last", 3).tolist() == [7, 8, 9]
    assert sample_frame_indices(10, "uniform", 4).tolist() == [0, 3, 6, 9]
    assert sample_frame_indices(10, "first_last", 3).tolist() == [0, 8, 9]
    random = sample_frame_indices(10, "random", 4)
    assert len(set(random.tolist())) == 4 and random.tolist() == sorted(random.tolist())
    for strategy in ("last", "uniform", "first_last", "random"):  # short clips: all frames, first repeated
        assert sample_frame_indices(2, strategy, 4).tolist() == [0, 0, 0, 1]
    clips = torch.arange(2 * 6).view(2, 6, 1, 1, 1).expand(2, 6, 3, 4, 4)
    picked = BaseVideoRewardModel.sample_frames(clips, "first_last", 3)
    assert picked.shape == (2, 3, 3, 4, 4) and picked[1, :, 0, 0, 0].tolist() == [6, 10, 11]
    assert BaseVideoRewardModel.sample_frames(clips[0], "last", 2)[:, 0, 0, 0].tolist() == [4, 5]
    with pytest.raises(ValueError, match="unknown frame strategy"):
        sample_frame_indices(5, "middle", 2)


@pytest.mark.parametrize("pooling", ["mean", "gru"])
def test_video_model_inputs(pooling):
    torch.manual_seed(0)
    model = video(num_frames=3, temporal_pooling=pooling, hidden_dim=16)
    clips = torch.randint(0, 256, (2, 5, 32, 32, 3), dtype=torch.uint8)  # [B, T, H, W, C]
    probs = model.compute_reward(clips)
    assert probs.shape == (2,)
    chw = clips.permute(0, 1, 4, 2, 3).float() / 255.0
    assert torch.allclose(model.compute_reward({"top_camera": chw}), probs, atol=1e-5)
    # the default strategy ("last") ignores frames before the last k
    assert torch.allclose(model.compute_reward(chw[:, 2:]), probs, atol=1e-5)
    if pooling == "gru":  # order matters with a GRU
        assert not torch.allclose(model.compute_reward(chw[:, [2, 4, 3]]), probs)
    with pytest.raises(ValueError, match=r"\[B, T, C, H, W\]"):
        model.compute_reward(chw[:, 0])
