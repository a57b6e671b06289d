"""Reward-model speed options: fused preprocessing, channels_last, bf16 training and inference."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from embodireward.config import ConfigError, RewardSection
from embodireward.envs.base import Frames
from embodireward.rewards import load_reward_model
from embodireward.rewards.base import IMAGENET_MEAN, IMAGENET_STD, to_float_nchw
from embodireward.rewards.hook import RewardHook
from embodireward.rewards.training import train_reward_model
from test_reward_training import SIZE, synth_frame, train_config, write_trajectories

torch.set_num_threads(1)
# bf16 keeps 8 bits of mantissa (~0.4% relative error per op); through resnet10 the probabilities
# of a trained model stay within this of fp32 on the batch below (measured: ~0.01)
BF16_PROB_TOLERANCE = 0.03


def reference(images_nhwc_uint8: torch.Tensor, size) -> torch.Tensor:
    """The textbook pipeline: to float, /255, resize, (x - mean) / std."""
    x = images_nhwc_uint8.permute(0, 3, 1, 2).float() / 255.0
    if tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)
    return (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


def test_fused_preprocessing_matches_the_reference_and_keeps_channels_last():
    torch.manual_seed(0)
    frames = torch.randint(0, 256, (5, 16, 16, 3), dtype=torch.uint8)
    fused = to_float_nchw(frames, (16, 16), imagenet_norm=True)
    assert fused.dtype == torch.float32 and fused.shape == (5, 3, 16, 16)
    assert torch.allclose(fused, reference(frames, (16, 16)), atol=1e-5)
    assert fused.is_contiguous(memory_format=torch.channels_last)  # rendered NHWC frames are never reordered
    assert torch.allclose(to_float_nchw(frames, (8, 12), imagenet_norm=True), reference(frames, (8, 12)), atol=1e-5)
    chw = frames.permute(0, 3, 1, 2).contiguous().double() / 255.0
    assert torch.allclose(to_float_nchw(chw, (16, 16), imagenet_norm=False).double(), chw, atol=1e-6)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("precision")
    data = write_trajectories(tmp_path / "data", n_pos=8, n_neg=8, length=4)
    fp32 = train_reward_model(train_config(tmp_path / "fp32", data, epochs=3))
    bf16 = train_reward_model(train_config(tmp_path / "bf16", data, epochs=3, precision="bf16"))
    return tmp_path, fp32, bf16


def test_bf16_probabilities_match_fp32_within_tolerance(trained):
    tmp_path, _, _ = trained
    model = load_reward_model(tmp_path / "fp32" / "out")
    assert model.encoders.encoders["top_camera"].conv1.weight.is_contiguous(memory_format=torch.channels_last)
    rng = np.random.default_rng(5)
    batch = torch.from_numpy(np.stack([synth_frame(i % 2 == 0, rng) for i in range(32)]))
    fp32 = model.compute_reward(batch)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16 = model.compute_reward(batch)
    assert bf16.dtype == torch.float32 and fp32.max() - fp32.min() > 0.4  # a trained model, not all 0.5
    assert (bf16 - fp32).abs().max() <= BF16_PROB_TOLERANCE
    assert not torch.equal(bf16, fp32)  # autocast really ran in bf16

    env_desc = {"env_id": "synthetic", "camera_keys": ["top_camera"], "image_size": [SIZE, SIZE]}
    frames = Frames(torch.arange(32), {"top_camera": batch})
    done = torch.ones(32, dtype=torch.bool)
    section = RewardSection(name="resnet_reward", use_soft_reward=True)
    rewards = {p: RewardHook(section, model, env_desc, precision=p).compute(torch.zeros(32), done, ~done, frames) for p in ("fp32", "bf16")}
    assert torch.allclose(rewards["fp32"], fp32) and (rewards["bf16"] - rewards["fp32"]).abs().max() <= BF16_PROB_TOLERANCE


def test_bf16_training_learns_like_fp32(trained):
    _, fp32, bf16 = trained
    assert bf16["best"]["val/auroc"] >= 0.95 and fp32["best"]["val/auroc"] >= 0.95
    assert abs(bf16["best"]["val/balanced_accuracy"] - fp32["best"]["val/balanced_accuracy"]) <= 0.1


def test_bad_precision_values_are_one_line_config_errors(tmp_path, trained):
    with pytest.raises(ConfigError) as err:
        train_config(tmp_path, tmp_path, precision="fp8")
    assert str(err.value) == "precision: expected one of 'auto', 'fp32', 'bf16', 'fp16', got 'fp8' (did you mean 'fp32'?)"
    model = load_reward_model(trained[0] / "fp32" / "out")
    with pytest.raises(ConfigError, match=r"^runtime.precision: expected one of auto, fp32, bf16, fp16, got 'half'$"):
        RewardHook(RewardSection(name="resnet_reward"), model, {"camera_keys": ["top_camera"]}, precision="half")


def test_inference_copy_folds_batchnorm_and_keeps_the_outputs(trained):
    model = load_reward_model(trained[0] / "fp32" / "out")
    folded = model.for_inference()
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    batch = torch.randint(0, 256, (8, SIZE, SIZE, 3), dtype=torch.uint8)
    assert torch.allclose(folded.compute_reward(batch), model.compute_reward(batch), atol=1e-5)
    hook = RewardHook(RewardSection(name="resnet_reward"), model, {"camera_keys": ["top_camera"]})
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in hook.manager.get_model().modules())
    assert hook.model is model  # metadata (classes, threshold, sidecar) from the checkpoint's model
