"""The learned-reward workflow on a real ManiSkill task: PickCube-v1, 2 CPU workers, lavapipe.

Collection callback -> files with the env's labels -> reward model inference on those frames ->
one PPO iteration, and one SAC iteration, with the reward hook scoring terminal frames. Skipped
only where mani_skill or Vulkan is genuinely missing outside CI (see tests/test_maniskill.py).
"""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from embodireward.config import parse_train_config
from embodireward.rewards.checkpoint import load_reward_model, save_reward_model
from embodireward.rewards.training import ModelSection, build_reward_model
from embodireward.trainer.trainer import Trainer
from tests.test_maniskill import require

EPISODE, ROLLOUT, ENVS = 5, 10, 2  # 2 episodes per env in one iteration


def pick_cube_config(tmp_path, run: str) -> dict:
    return {
        "runtime": {"iterations": 1, "rollout_steps": ROLLOUT, "eval_freq": 0, "save_freq": 0, "device": "cpu",
                    "progress_bar": False, "run_dir": str(tmp_path / run), "num_threads": 1},
        "env": {"id": "maniskill", "cfg": {"env_id": "PickCube-v1", "num_envs": ENVS, "sim_backend": "cpu",
                                           "max_episode_steps": EPISODE, "camera": {"key": "base_camera", "width": 64, "height": 64}}},
        "policy": {"name": "actor_critic", "actor": {"hidden_sizes": [32]}, "critic": {"hidden_sizes": [32]}},
        "algorithm": {"name": "ppo", "cfg": {"num_minibatches": 2, "num_epochs": 1}},
    }


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    """One PPO iteration with the collection callback, and a reward model for its data."""
    require(vulkan=True)
    tmp_path = tmp_path_factory.mktemp("pick_cube")
    data_dir = tmp_path / "data"
    collect = pick_cube_config(tmp_path, "collect")
    collect["callbacks"] = [{"name": "reward_data_collection",
                             "cfg": {"data_dir": str(data_dir), "format": "trajectory", "render": "every_step"}}]
    trainer = Trainer(parse_train_config(collect))
    successes = []
    original_step = trainer.env.step

    def recording_step(actions, render="never"):
        result = original_step(actions, render=render)
        successes.append(result[-1]["success"].clone())
        return result

    trainer.env.step = recording_step
    try:
        trainer.train()
    finally:
        trainer.env.close()
    manifest = json.loads((data_dir / "manifest.json").read_text())
    model = build_reward_model(ModelSection(name="resnet_reward", cfg={"arch": "resnet10", "hidden_dim": 32}), manifest)
    checkpoint = save_reward_model(model, tmp_path / "rm", extra_sidecar={"manifest": manifest})
    return SimpleNamespace(root=tmp_path, data_dir=data_dir, manifest=manifest, successes=successes, checkpoint=checkpoint)


def test_collection_reward_model_and_hook_on_pick_cube(collected):
    tmp_path, data_dir, manifest, checkpoint = collected.root, collected.data_dir, collected.manifest, collected.checkpoint
    successes = collected.successes

    # every finished episode became one file whose labels are the env's per-step success
    assert manifest["env"]["env_id"] == "PickCube-v1" and manifest["image_size"] == [64, 64]
    files = sorted(data_dir.glob("*/*.npy"))
    assert len(files) == ENVS * ROLLOUT // EPISODE
    success = torch.stack(successes)  # [steps, envs]
    for path in files:
        item = np.load(path, allow_pickle=True).item()
        images, labels = item["images"]["base_camera"], item["labels"]
        assert images.shape == (EPISODE, 3, 64, 64) and images.dtype == np.float32 and 0 <= images.min() <= images.max() <= 1
        assert labels.shape == (EPISODE,)
        assert (path.parent.name == "positive") == bool(labels.max() > 0)
    expected_positive = sum(bool(success[e * EPISODE:(e + 1) * EPISODE, env].any())
                            for env in range(ENVS) for e in range(ROLLOUT // EPISODE))
    assert manifest["counts"]["positive"] == expected_positive

    # a reward model built for this data scores its frames
    frames = torch.from_numpy(np.load(files[0], allow_pickle=True).item()["images"]["base_camera"])
    probs = load_reward_model(checkpoint).compute_reward(frames)  # float [T, C, H, W] in [0, 1]
    assert probs.shape == (EPISODE,) and bool(((probs >= 0) & (probs <= 1)).all())

    # one PPO iteration on the learned reward, scoring only terminal frames
    learned = pick_cube_config(tmp_path, "learned")
    learned["reward"] = {"use_reward_model": True, "checkpoint_path": str(checkpoint), "reward_mode": "terminal"}
    trainer = Trainer(parse_train_config(learned))
    try:
        trainer.train()
    finally:
        trainer.env.close()
    events = EventAccumulator(str(tmp_path / "learned" / "logs"))
    events.Reload()
    assert events.Scalars("reward_model/images")[-1].value == ENVS * ROLLOUT // EPISODE
    assert "episode/success_once" in events.Tags()["scalars"]


def test_sac_iteration_on_the_learned_reward_fills_the_buffer_with_it(collected):
    """SAC on PickCube-v1: the terminal-frame reward hook's output is what the replay buffer stores, and it updates."""
    config = pick_cube_config(collected.root, "sac")
    config["policy"] = {"name": "squashed_gaussian", "actor": {"hidden_sizes": [32], "activation": "relu"},
                        "critic": {"hidden_sizes": [32], "activation": "relu"}}
    config["algorithm"] = {"name": "sac", "cfg": {"learning_starts": 10, "batch_size": 8, "buffer_size": 100, "utd": 0.5,
                                                  "bootstrap_at_done": "always"}}
    config["reward"] = {"use_reward_model": True, "checkpoint_path": str(collected.checkpoint), "reward_mode": "terminal",
                        "success_reward": 5.0, "fail_reward": -1.0}
    trainer = Trainer(parse_train_config(config))
    hook_rewards, env_rewards = [], []
    original_compute = trainer.reward_hook.compute

    def recording_compute(env_reward, *args, **kwargs):
        reward = original_compute(env_reward, *args, **kwargs)
        hook_rewards.append(reward.clone())
        env_rewards.append(env_reward.clone())
        return reward

    trainer.reward_hook.compute = recording_compute
    try:
        trainer.train()
    finally:
        trainer.env.close()
    buffer = trainer.algo.buffer
    stored = buffer.rewards[: len(buffer)].view(ROLLOUT, ENVS)
    assert torch.equal(stored, torch.stack(hook_rewards).cpu())
    ends = buffer.truncated[: len(buffer)] | buffer.terminated[: len(buffer)]
    assert ends.sum() == ENVS * ROLLOUT // EPISODE  # scored episode ends: a success or a fail reward there, 0 elsewhere
    assert set(stored.flatten()[ends.flatten()].tolist()) <= {5.0, -1.0} and (stored.flatten()[~ends.flatten()] == 0).all()
    assert not torch.equal(stored, torch.stack(env_rewards).cpu())
    events = EventAccumulator(str(collected.root / "sac" / "logs"))
    events.Reload()
    assert events.Scalars("losses/gradient_steps")[-1].value == 5  # utd 0.5 x the 10 transitions after learning_starts
    assert np.isfinite(events.Scalars("losses/qf_loss")[-1].value)
    assert events.Scalars("reward_model/images")[-1].value == ENVS * ROLLOUT // EPISODE
