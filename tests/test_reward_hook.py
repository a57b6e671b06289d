"""RewardHook and RewardManager with a tiny fake reward model whose P(success) is pixel / 255."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List

import pytest
import torch
from torch import nn

from embodireward.config import ConfigError, RewardSection
from embodireward.envs.base import Frames
from embodireward.registry import register_reward_model
from embodireward.rewards.base import BaseImageRewardModel, per_camera
from embodireward.rewards.checkpoint import save_reward_model
from embodireward.rewards.hook import RewardHook, build_reward_hook
from embodireward.rewards.manager import RewardManager

CAM = "top_camera"
ENV_DESC = {"env_id": "fake", "camera_keys": [CAM], "image_size": [4, 4]}


@register_reward_model("test_pixel_reward", override=True)
class PixelReward(BaseImageRewardModel):
    """Test model: P(success) is the first pixel's red value / 255; records its batch sizes."""

    @dataclass
    class Config:
        image_size: List[int] = field(default_factory=lambda: [4, 4])
        camera_keys: List[str] = field(default_factory=lambda: [CAM])
        imagenet_norm: bool = False

    def __init__(self, cfg=None):
        super().__init__(cfg or self.Config())
        self.weight = nn.Parameter(torch.ones(1))
        self.batches: List[int] = []

    def compute_reward(self, observations, task_descriptions=None):
        images = per_camera(observations, self.cfg.camera_keys)[CAM]
        self.batches.append(images.shape[0])
        return images[:, 0, 0, 0].float() / 255.0


def frames_for(probs, env_ids=None):
    """Frames whose model probability is ``probs`` (rounded to a pixel value)."""
    env_ids = torch.arange(len(probs)) if env_ids is None else torch.as_tensor(env_ids)
    values = torch.tensor([round(p * 255) for p in probs], dtype=torch.uint8).view(-1, 1, 1, 1)
    return Frames(env_ids, {CAM: values.expand(-1, 4, 4, 3).contiguous()})


def make_hook(model=None, **section):
    section.setdefault("name", "test_pixel_reward")
    return RewardHook(RewardSection(**section), model or PixelReward(), ENV_DESC)


def step(hook, probs, done, env_reward=None, success=None, all_frames=False):
    """One step of ``len(done)`` envs; frames as an env renders them for the hook's request."""
    done = torch.tensor(done)
    n = len(done)
    ids = torch.arange(n) if all_frames or hook.frame_request() == "every_step" else done.nonzero().flatten()
    frames = frames_for([probs[i] for i in ids.tolist()], ids)
    env_reward = torch.zeros(n) if env_reward is None else torch.tensor(env_reward)
    success = None if success is None else torch.tensor(success)
    return hook.compute(env_reward, done, torch.zeros(n, dtype=torch.bool), frames, success)


def test_terminal_mode_scores_only_finished_episodes():
    hook = make_hook()
    assert hook.frame_request() == "episode_end"
    reward = step(hook, [0.8] * 4, [False] * 4, all_frames=True)
    assert hook.model.batches == [] and reward.tolist() == [0.0] * 4  # no episode ended: no model call
    reward = step(hook, [0.8, 0.9, 0.2, 0.6], [False, True, True, False], all_frames=True)
    assert hook.model.batches == [2]
    assert reward.tolist() == [0.0, 1.0, 0.0, 0.0]
    assert hook.metrics()["reward_model/calls"] == 1


def test_per_step_mode_scores_every_env_every_step():
    hook = make_hook(reward_mode="per_step")
    assert hook.frame_request() == "every_step"
    for _ in range(3):
        reward = step(hook, [0.8, 0.1, 0.6], [False, False, False])
    assert hook.model.batches == [3, 3, 3] and reward.tolist() == [1.0, 0.0, 1.0]
    assert hook.metrics()["reward_model/images"] == 9


def test_batches_are_chunked():
    hook = make_hook(reward_mode="per_step", batch_size=2)
    step(hook, [0.5] * 5, [False] * 5)
    assert hook.model.batches == [2, 2, 1]


def test_threshold_soft_and_asymmetric_mappings():
    probs, done = [0.2, 0.6, 0.8], [True] * 3
    assert step(make_hook(), probs, done).tolist() == [0.0, 1.0, 1.0]
    assert step(make_hook(threshold=0.7), probs, done).tolist() == [0.0, 0.0, 1.0]
    assert step(make_hook(success_reward=2.0, fail_reward=-1.0), probs, done).tolist() == [-1.0, 2.0, 2.0]
    soft = step(make_hook(use_soft_reward=True, success_reward=2.0, fail_reward=-1.0), probs, done)
    expected = torch.tensor([-1.0 + 3.0 * round(p * 255) / 255 for p in probs])
    torch.testing.assert_close(soft, expected)


def test_threshold_defaults_to_checkpoint_recommendation_then_half():
    model = PixelReward()
    assert make_hook(model).threshold == 0.5
    model.sidecar = {"recommended_threshold": 0.3}
    assert make_hook(model).threshold == 0.3
    assert make_hook(model, threshold=0.9).threshold == 0.9


@pytest.mark.parametrize("mode,expected", [("replace", [1.0, 0.0]), ("add", [0.5 + 10.0, 0.5]), ("weighted", [10.0 + 0.25, 0.25])])
def test_combine_modes(mode, expected):
    hook = make_hook(combine_mode=mode, reward_weight=10.0, env_reward_weight=0.5)
    reward = step(hook, [0.9, 0.1], [True, False], env_reward=[0.5, 0.5])
    assert reward.tolist() == pytest.approx(expected)


def test_debug_images_named_by_class_and_prob(tmp_path):
    hook = make_hook(debug_save_dir=str(tmp_path / "dbg"), debug_save_max=3)
    step(hook, [0.8, 0.2], [True, True])
    step(hook, [0.8, 0.8], [True, True])
    saved = sorted(str(p.relative_to(tmp_path / "dbg")) for p in (tmp_path / "dbg").rglob("*.png"))
    assert saved == ["fail/000001_prob0.2000.png", "success/000000_prob0.8000.png", "success/000002_prob0.8000.png"]


def test_agreement_metrics_on_known_confusion_matrix():
    hook = make_hook()
    # predictions (p >= 0.5) vs true success: TP=2, FP=1, TN=3, FN=1
    probs = [0.9, 0.8, 0.7, 0.1, 0.2, 0.3, 0.4]
    success = [True, True, False, False, False, False, True]
    step(hook, probs[:4], [True] * 4, success=success[:4])
    step(hook, probs[4:] + [0.99], [True, True, True, False], success=success[4:] + [True])  # env 3 not finished: ignored
    m = hook.metrics()
    assert m["reward_model/precision"] == pytest.approx(2 / 3)
    assert m["reward_model/recall"] == pytest.approx(2 / 3)
    assert m["reward_model/agreement"] == pytest.approx(5 / 7)
    assert m["reward_model/false_positive_rate"] == pytest.approx(1 / 4)
    assert m["reward_model/predicted_success_rate"] == pytest.approx(3 / 7)
    assert m["reward_model/mean_prob"] == pytest.approx(sum(round(p * 255) / 255 for p in probs) / 7)
    assert m["reward_model/calls"] == 2 and m["reward_model/images"] == 7 and m["reward_model/seconds"] >= 0
    assert hook.metrics() == {"reward_model/calls": 0, "reward_model/images": 0, "reward_model/seconds": 0.0}


def test_per_step_metrics_compare_every_frame():
    hook = make_hook(reward_mode="per_step")
    step(hook, [0.9, 0.1, 0.9], [False] * 3, success=[True, False, False])
    m = hook.metrics()
    assert m["reward_model/agreement"] == pytest.approx(2 / 3) and m["reward_model/false_positive_rate"] == pytest.approx(1 / 2)


def test_hook_errors_are_clear():
    model = PixelReward()
    model.sidecar = {"name": "test_pixel_reward", "manifest": {"render": "episode_end"}}
    with pytest.raises(ConfigError, match="^reward.reward_mode: "):
        make_hook(model, reward_mode="per_step")
    with pytest.raises(ConfigError, match="^reward.name: .*'test_pixel_reward'"):
        make_hook(model, name="resnet_reward")
    with pytest.raises(ConfigError, match="wrist"):
        make_hook(PixelReward(PixelReward.Config(camera_keys=["wrist"])))
    with pytest.raises(RuntimeError, match="frames"):
        make_hook().compute(torch.zeros(2), torch.tensor([True, False]), torch.zeros(2, dtype=torch.bool), None)


def test_build_reward_hook_loads_and_checks_checkpoint(tmp_path):
    class Env:
        def __init__(self, size):
            self.size = size

        def describe(self):
            return {**ENV_DESC, "image_size": [self.size, self.size]}

    model = PixelReward()
    model.sidecar = {"manifest": {"env": ENV_DESC, "render": "episode_end"}, "recommended_threshold": 0.4}
    path = save_reward_model(model, tmp_path)
    assert build_reward_hook(RewardSection(), Env(4), "cpu") is None
    section = RewardSection(use_reward_model=True, name="test_pixel_reward", checkpoint_path=str(path))
    hook = build_reward_hook(section, Env(4), "cpu")
    assert hook.threshold == 0.4
    with pytest.raises(ConfigError, match="image_size"):
        build_reward_hook(section, Env(8), "cpu")


def test_reward_manager():
    manager = RewardManager(batch_size=2)
    model = PixelReward()
    manager.register_model("pix", model)
    assert "pix" in manager.get_available_models() and "test_pixel_reward" in manager.get_available_models()
    probs = manager.compute_rewards(frames_for([0.2, 0.4, 0.6]).images, name="pix")
    assert model.batches == [2, 1] and probs.shape == (3,)
    assert manager.compute_rewards(frames_for([0.2]).images[CAM]).tolist() == pytest.approx([round(0.2 * 255) / 255])
    with pytest.raises(KeyError, match="nope"):
        manager.compute_rewards(frames_for([0.2]).images, name="nope")
    assert manager.to_device("cpu").models["pix"].device == torch.device("cpu")
