"""The replay buffer: ring wrap-around, uniform sampling with its own generator, uint8 images, checkpoints."""
from __future__ import annotations

import io

import gymnasium as gym
import numpy as np
import pytest
import torch

from embodireward.algos.replay_buffer import ReplayBuffer
from embodireward.config import ConfigError

STATE = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
IMAGE_OBS = gym.spaces.Dict({"state": STATE, "rgb": gym.spaces.Box(0, 255, (4, 4, 3), np.uint8)})


def transitions(start: int, n: int) -> dict:
    """n transitions whose every field encodes its index ``start + i``."""
    ids = torch.arange(start, start + n, dtype=torch.float32)
    return {"obs": {"state": ids[:, None].repeat(1, 3), "rgb": (ids.to(torch.uint8) * 10)[:, None, None, None].repeat(1, 4, 4, 3)},
            "actions": ids[:, None].repeat(1, 2), "rewards": ids,
            "next_obs": {"state": ids[:, None].repeat(1, 3) + 0.5, "rgb": (ids.to(torch.uint8) * 10 + 5)[:, None, None, None].repeat(1, 4, 4, 3)},
            "terminated": ids % 2 == 0, "truncated": ids % 3 == 0}


def test_replay_buffer_wraps_around_and_keeps_uint8_images():
    buffer = ReplayBuffer(5, IMAGE_OBS, 2, torch.device("cpu"))
    for start in (0, 2, 4):
        buffer.add(**transitions(start, 2))
    # rows 0..4 held transitions 0..4; transition 5 overwrote the oldest (row 0)
    assert len(buffer) == 5 and buffer.pos == 1
    assert buffer.rewards.tolist() == [5.0, 1.0, 2.0, 3.0, 4.0]
    assert buffer.obs["rgb"].dtype == torch.uint8 and buffer.obs["rgb"][:, 0, 0, 0].tolist() == [50, 10, 20, 30, 40]
    assert buffer.next_obs["rgb"][:, 0, 0, 0].tolist() == [55, 15, 25, 35, 45]
    assert buffer.terminated.tolist() == [False, False, True, False, True]
    assert buffer.truncated.tolist() == [False, False, False, True, False]
    assert buffer.recent_obs(3)["state"][:, 0].tolist() == [3.0, 4.0, 5.0]


def test_replay_buffer_samples_only_stored_rows_uniformly_and_consistently():
    buffer = ReplayBuffer(10, IMAGE_OBS, 2, torch.device("cpu"))
    buffer.add(**transitions(0, 4))
    batch = buffer.sample(4000, torch.Generator().manual_seed(0), torch.device("cpu"))
    ids = batch["rewards"]
    counts = torch.bincount(ids.long(), minlength=4)
    assert counts.sum() == 4000 and len(counts) == 4 and counts.min() > 900  # rows 4..9 are empty: never drawn
    # every field of a sampled row belongs to the same transition
    assert torch.equal(batch["obs"]["state"][:, 0], ids) and torch.equal(batch["next_obs"]["state"][:, 0], ids + 0.5)
    assert torch.equal(batch["obs"]["rgb"][:, 1, 2, 0], ids.to(torch.uint8) * 10) and batch["obs"]["rgb"].dtype == torch.uint8
    assert torch.equal(batch["actions"][:, 1], ids) and torch.equal(batch["terminated"], ids % 2 == 0)
    again = buffer.sample(4000, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert torch.equal(again["rewards"], ids)  # its own generator: reproducible


def test_replay_buffer_state_dict_round_trips_through_a_safe_load():
    buffer = ReplayBuffer(6, IMAGE_OBS, 2, torch.device("cpu"))
    for start in (0, 3, 6):
        buffer.add(**transitions(start, 3))
    blob = io.BytesIO()
    torch.save(buffer.state_dict(), blob)
    blob.seek(0)
    restored = ReplayBuffer(6, IMAGE_OBS, 2, torch.device("cpu"))
    restored.load_state_dict(torch.load(blob, weights_only=True))
    assert (restored.pos, len(restored)) == (buffer.pos, len(buffer))
    first, second = (b.sample(32, torch.Generator().manual_seed(1), torch.device("cpu")) for b in (buffer, restored))
    for key in ("rewards", "actions", "terminated", "truncated"):
        assert torch.equal(first[key], second[key])
    assert torch.equal(first["next_obs"]["rgb"], second["next_obs"]["rgb"])
    with pytest.raises(ConfigError, match="algorithm.cfg.buffer_size: the checkpoint's replay buffer was saved with buffer_size 6"):
        ReplayBuffer(7, IMAGE_OBS, 2, torch.device("cpu")).load_state_dict(buffer.state_dict())
