"""LeRobot-style classifier options: K-class models (softmax / cross-entropy, class rewards) and the ViT backbone."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import List

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from torch import nn

from embodireward.config import ConfigError, RewardSection, parse_dataclass
from embodireward.registry import register_reward_model
from embodireward.rewards import load_reward_model, save_reward_model
from embodireward.rewards.base import BaseImageRewardModel, per_camera
from embodireward.rewards.hook import RewardHook
from embodireward.rewards.resnet import ResNetRewardModel
from embodireward.rewards.training import train_reward_model
from embodireward.rewards.vit import ViTRewardModel, build_vit_encoder

torch.set_num_threads(1)
CAM = "top_camera"
SIZE = 32
STAGES = ["failed", "partial", "success"]
ENV_DESC = {"env_id": "fake", "camera_keys": [CAM], "image_size": [4, 4]}


@register_reward_model("test_three_class_pixels", override=True)
class PixelClasses(BaseImageRewardModel):
    """Test model: the first pixel's RGB values / 255 are the logits of three classes."""

    @dataclass
    class Config:
        image_size: List[int] = field(default_factory=lambda: [4, 4])
        camera_keys: List[str] = field(default_factory=lambda: [CAM])
        imagenet_norm: bool = False
        num_classes: int = 3

    def __init__(self, cfg=None):
        super().__init__(cfg or self.Config())
        self.weight = nn.Parameter(torch.ones(1))

    def predict_logits(self, observations):
        return per_camera(observations, self.cfg.camera_keys)[CAM][:, 0, 0, :].float()


def frames_with_logits(logits):
    """uint8 frames ``[N, 4, 4, 3]`` whose first pixel holds the given logits."""
    values = torch.tensor(logits, dtype=torch.uint8).view(-1, 1, 1, 3)
    return values.expand(-1, 4, 4, 3).contiguous()


def test_class_probabilities_map_to_rewards_as_configured():
    from embodireward.envs.base import Frames

    logits = torch.tensor([[9.0, 0.0, 0.0], [0.0, 3.0, 1.0], [0.0, 1.0, 2.0]])
    probs = torch.softmax(logits, dim=-1)
    rewards = [-1.0, 0.25, 2.0]
    frames = Frames(torch.arange(3), {CAM: frames_with_logits(logits.long().tolist())})
    done, truncated = torch.ones(3, dtype=torch.bool), torch.zeros(3, dtype=torch.bool)
    model = PixelClasses()
    model.sidecar = {"manifest": {"class_names": STAGES}}
    assert torch.allclose(model.compute_class_probabilities(frames.images[CAM]), probs)

    soft = RewardHook(RewardSection(name="test_three_class_pixels", class_rewards=rewards, use_soft_reward=True), model, ENV_DESC)
    expected = probs @ torch.tensor(rewards)  # sum_k p_k r_k, by hand
    assert torch.allclose(soft.compute(torch.zeros(3), done, truncated, frames, torch.tensor([False, False, True])), expected)
    hard = RewardHook(RewardSection(name="test_three_class_pixels", class_rewards=rewards), model, ENV_DESC)
    assert hard.compute(torch.zeros(3), done, truncated, frames, torch.tensor([False, True, True])).tolist() == [-1.0, 0.25, 2.0]
    # predicted success = most probable class is the last: only the third frame; it is a true success, the second one is missed
    m = hard.metrics()
    assert m["reward_model/precision"] == 1.0 and m["reward_model/recall"] == 0.5
    assert m["reward_model/mean_prob"] == pytest.approx(float(probs[:, 2].mean()))

    with pytest.raises(ConfigError, match=r"^reward.class_rewards: .* has 3 classes \(failed, partial, success\): give one reward per class, got 2$"):
        RewardHook(RewardSection(name="test_three_class_pixels", class_rewards=[0.0, 1.0]), model, ENV_DESC)
    with pytest.raises(ConfigError, match=r"^reward.class_rewards: .*got none$"):
        RewardHook(RewardSection(name="test_three_class_pixels"), model, ENV_DESC)
    with pytest.raises(ConfigError, match=r"^reward.class_rewards\[1\]: expected a finite number, got nan"):
        parse_dataclass(RewardSection, {"class_rewards": [0.0, float("nan"), 1.0]}, "reward")


def test_binary_checkpoint_rejects_class_rewards(tmp_path):
    binary = ResNetRewardModel(parse_dataclass(ResNetRewardModel.Config, {"image_size": [8, 8], "hidden_dim": 8}))
    with pytest.raises(ConfigError, match=r"^reward.class_rewards: .*binary success classifier; map it with success_reward / fail_reward"):
        RewardHook(RewardSection(name="resnet_reward", class_rewards=[0.0, 1.0]), binary, ENV_DESC)


# ------------------------------------------------------------------------------- training


def stage_frame(stage: int, rng: np.random.Generator) -> np.ndarray:
    """uint8 [H, W, 3]: noise with a white square on the left (0), in the middle (1) or on the right (2)."""
    image = rng.integers(0, 60, (SIZE, SIZE, 3), dtype=np.uint8)
    x = (2, 13, 24)[stage] + int(rng.integers(0, 3))
    y = int(rng.integers(2, SIZE - 8))
    image[y : y + 6, x : x + 6] = 255
    return image


def write_stage_frames(root: Path, per_class: int = 12, per_trajectory: int = 3, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    mapping, next_id = {}, 0
    for stage, name in enumerate(STAGES):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            iio.imwrite(root / name / f"{i:06d}.png", stage_frame(stage, rng))
            mapping[f"{name}/{i:06d}.png"] = next_id + i // per_trajectory
        next_id += per_class
    env = {"env_id": "synthetic", "camera_keys": [CAM], "image_size": [SIZE, SIZE]}
    manifest = {"format": "frames", "labels": "stage", "env": env, "camera_keys": [CAM], "image_size": [SIZE, SIZE],
                "render": "every_step", "class_names": STAGES, "num_classes": 3, "frame_trajectories": mapping, "version": 2}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def stage_config(tmp_path: Path, data: Path, model: dict, **overrides) -> dict:
    return {"data_path": str(data), "output_dir": str(tmp_path / "out"), "model": model, "epochs": 6, "batch_size": 12,
            "lr": 2e-3, "val_split": 0.25, "scheduler": "constant", "augment": {"enabled": False}, "progress_bar": False, **overrides}


def test_multiclass_training_learns_a_separable_three_class_problem(tmp_path):
    data = write_stage_frames(tmp_path / "data")
    model = {"name": "resnet_reward", "cfg": {"num_classes": 3, "hidden_dim": 32, "dropout": 0.0}}
    result = train_reward_model(stage_config(tmp_path, data, model, monitor="val/balanced_accuracy"))
    best = result["best"]
    assert best["val/balanced_accuracy"] >= 0.9 and best["val/loss"] < 1.0  # chance: 1/3 and ln 3 = 1.10
    assert result["recommended_threshold"] is None  # argmax, no threshold
    assert {f"val/{name}/recall" for name in STAGES} <= set(best)
    report = json.loads((tmp_path / "out" / "evaluation" / "reward_eval.json").read_text())
    assert set(report["per_class"]) == set(STAGES) and report["threshold"] is None
    assert report["balanced_accuracy"] == pytest.approx(sum(report["per_class"][n]["recall"] for n in STAGES) / 3)
    confusion = torch.tensor(report["confusion"])
    assert confusion.shape == (3, 3) and confusion.sum() == report["counts"]["samples"]
    assert report["accuracy"] == pytest.approx(float(confusion.diag().sum() / confusion.sum()))

    loaded = load_reward_model(tmp_path / "out")
    assert loaded.num_classes == 3 and loaded.class_names == STAGES
    rng = np.random.default_rng(7)
    fresh = torch.from_numpy(np.stack([stage_frame(i % 3, rng) for i in range(30)]))
    predicted = loaded.compute_class_probabilities(fresh).argmax(dim=-1)
    assert (predicted == torch.arange(30) % 3).float().mean() >= 0.85
    assert torch.allclose(loaded.compute_reward(fresh), loaded.compute_class_probabilities(fresh)[:, 2])


def test_class_count_must_match_the_data(tmp_path):
    data = write_stage_frames(tmp_path / "data", per_class=4)
    with pytest.raises(ConfigError, match=r"^model.cfg.num_classes: the model has 2 classes but the data has 3 \(failed, partial, success\)$"):
        train_reward_model(stage_config(tmp_path, data, {"name": "resnet_reward", "cfg": {"num_classes": 2}}))
    assert not (tmp_path / "out").exists()  # validated before any file


def test_vit_trains_on_three_classes_and_round_trips(tmp_path):
    data = write_stage_frames(tmp_path / "data")
    model = {"name": "vit_reward", "cfg": {"num_classes": 3, "patch_size": 8, "num_layers": 2, "num_heads": 2, "embed_dim": 32,
                                           "mlp_dim": 64, "hidden_dim": 32, "dropout": 0.0}}
    result = train_reward_model(stage_config(tmp_path, data, model, epochs=8, lr=3e-3))
    assert result["best"]["val/balanced_accuracy"] > 0.6  # chance is 1/3
    loaded = load_reward_model(tmp_path / "out")
    assert type(loaded).__name__ == "ViTRewardModel" and loaded.cfg.embed_dim == 32


# ------------------------------------------------------------------------------- ViT


def vit(**cfg) -> ViTRewardModel:
    base = {"image_size": [32, 32], "patch_size": 8, "num_layers": 2, "num_heads": 2, "embed_dim": 16, "mlp_dim": 32, "hidden_dim": 16}
    return ViTRewardModel(parse_dataclass(ViTRewardModel.Config, base | cfg, "model.cfg")).eval()


def test_vit_pretrained_weights_come_only_from_local_files(tmp_path):
    with pytest.raises(ConfigError) as err:
        vit(pretrained_path=str(tmp_path / "vit.safetensors"))
    assert str(err.value) == (f"model.cfg.pretrained_path: encoder weights file '{tmp_path / 'vit.safetensors'}' not found "
                              "(ViT weights are never downloaded: give a local file)")
    with pytest.raises(ConfigError, match=r"^model.cfg.pretrained: unknown key \(did you mean pretrained_path\?\)$"):
        vit(pretrained=True)
    from safetensors.torch import save_file

    source = vit().encoders.encoders[CAM]
    save_file(source.state_dict(), str(tmp_path / "vit.safetensors"))
    loaded = vit(pretrained_path=str(tmp_path / "vit.safetensors"))
    assert torch.equal(loaded.encoders.encoders[CAM].encoder.layers[0].mlp[0].weight, source.encoder.layers[0].mlp[0].weight)
    other = build_vit_encoder(parse_dataclass(ViTRewardModel.Config, {"image_size": [32, 32], "embed_dim": 24, "num_heads": 2}))
    save_file(other.state_dict(), str(tmp_path / "wide.safetensors"))
    with pytest.raises(ConfigError, match=r"^pretrained_path: '.*wide.safetensors' is not a ViT .* state dict \(.*wrong shape \['"):
        vit(pretrained_path=str(tmp_path / "wide.safetensors"))


@pytest.mark.parametrize("cfg,message", [({"image_size": [32, 48]}, "image_size: the ViT needs square images"),
                                         ({"patch_size": 5}, "patch_size: must be >= 1 and divide the image size 32"),
                                         ({"embed_dim": 15}, "embed_dim: must be a multiple of num_heads")])
def test_vit_config_errors_name_the_key(cfg, message):
    with pytest.raises(ConfigError, match=rf"^model.cfg.{message}"):
        vit(**cfg)


@pytest.mark.parametrize("build", [lambda **kw: vit(**kw), lambda **kw: ResNetRewardModel(parse_dataclass(
    ResNetRewardModel.Config, {"image_size": [32, 32], "hidden_dim": 16, **kw})).eval()], ids=["vit", "resnet"])
def test_sidecar_round_trip_multi_camera_and_classes(tmp_path, build):
    torch.manual_seed(0)
    model = build(camera_keys=["front", "wrist"], num_classes=3)
    assert set(model.encoders.encoders) == {"front", "wrist"}
    manifest = {"env": ENV_DESC, "class_names": STAGES}
    save_reward_model(model, tmp_path, extra_sidecar={"manifest": manifest, "recommended_threshold": None})
    sidecar = json.loads((tmp_path / "best_model.json").read_text())
    assert sidecar["config"]["num_classes"] == 3 and sidecar["config"]["camera_keys"] == ["front", "wrist"]
    images = {"front": torch.randint(0, 256, (3, 32, 32, 3), dtype=torch.uint8), "wrist": torch.rand(3, 3, 32, 32)}
    loaded = load_reward_model(tmp_path)
    assert type(loaded) is type(model) and loaded.class_names == STAGES
    assert torch.equal(loaded.compute_class_probabilities(images), model.compute_class_probabilities(images))
    changed = dict(images, wrist=torch.rand(3, 3, 32, 32))
    assert not torch.allclose(loaded.compute_class_probabilities(changed), loaded.compute_class_probabilities(images))
    sidecar["manifest"]["class_names"] = STAGES[:2]
    (tmp_path / "best_model.json").write_text(json.dumps(sidecar))
    with pytest.raises(ConfigError, match=r"config has num_classes 3 but the data manifest names 2 classes"):
        load_reward_model(tmp_path)
