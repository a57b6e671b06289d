"""The ManiSkill3 adapter on a real simulator: PickCube-v1, 2 CPU worker processes, lavapipe rendering.

Skipped only when mani_skill or a Vulkan device is missing (the reason says how to install it),
and never when CI=true: there the missing dependency is a failure. The first frame a process
renders costs ~10 CPU seconds under lavapipe (SAPIEN builds its BRDF lookup table), so one env
is built for the whole module.
"""
from __future__ import annotations

import os
from typing import Optional

import pytest
import torch

from embodireward.config import ConfigError, parse_dataclass

EPISODE = 4
SIZE = (48, 64)  # H, W: non-square to catch swapped axes


def missing_dependency(vulkan: bool) -> Optional[str]:
    try:
        import mani_skill  # noqa: F401  (only checks it is installed)
    except ImportError as exc:
        return f"mani_skill is not installed ({exc}); pip install mani-skill"
    if not vulkan:
        return None
    from embodireward.envs.vulkan import INSTALL_HINT, vulkan_device_error

    error = vulkan_device_error()
    return None if error is None else f"no Vulkan device for SAPIEN ({error}); {INSTALL_HINT}"


def require(vulkan: bool):
    reason = missing_dependency(vulkan)
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"ManiSkill test cannot run in CI: {reason}", pytrace=False)
        pytest.skip(reason)
    from embodireward.envs import maniskill

    return maniskill


@pytest.fixture(scope="module")
def maniskill():
    return require(vulkan=False)


def make_cfg(module, **overrides):
    cfg = {"env_id": "PickCube-v1", "num_envs": 2, "sim_backend": "cpu", "max_episode_steps": EPISODE,
           "camera": {"key": "base_camera", "height": SIZE[0], "width": SIZE[1]}}
    return parse_dataclass(module.ManiSkillConfig, {**cfg, **overrides}, "env.cfg")


@pytest.fixture(scope="module")
def env():
    maniskill = require(vulkan=True)
    env = maniskill.ManiSkillVecEnv(make_cfg(maniskill), torch.device("cpu"), seed=0)
    yield env
    env.close()


def test_config_errors(maniskill):
    with pytest.raises(ConfigError, match=r"env\.cfg\.env_id: unknown ManiSkill env 'PickCub-v1' \(did you mean 'PickCube-v1'\?\)"):
        make_cfg(maniskill, env_id="PickCub-v1")
    with pytest.raises(ConfigError, match=r"env\.cfg\.env_kwargs\.obs_mode: set by the adapter"):
        make_cfg(maniskill, env_kwargs={"obs_mode": "rgb"})


def test_episode_with_episode_end_frames(env):
    assert env.describe() == {
        "env_id": "PickCube-v1", "camera_keys": ["base_camera"], "image_size": list(SIZE), "obs_mode": "state",
        "control_mode": "pd_joint_delta_pos", "show_goal": True, "sim_backend": "cpu", "episode_length": EPISODE,
        "robot_state_dim": 18,
    }
    obs, _ = env.reset(seed=0)
    assert obs.shape == (2, *env.single_observation_space.shape) and obs.dtype == torch.float32
    actions = torch.zeros(2, env.action_dim)

    for step in range(1, EPISODE + 1):
        render = "never" if step < EPISODE - 1 else "episode_end"
        previous = obs
        obs, reward, terminated, truncated, info = env.step(actions, render=render)
        assert reward.shape == (2,) and reward.dtype == torch.float32
        assert info["success"].dtype == torch.bool and info["success"].shape == (2,)
        assert {"success", "is_grasped"} <= set(info["metrics"])
        assert not terminated.any()  # a still arm neither succeeds nor fails
        if render == "never":
            assert "frames" not in info
        elif step < EPISODE:
            assert len(info["frames"]) == 0 and info["frames"].images["base_camera"].shape == (0, *SIZE, 3)
        assert truncated.all() == (step == EPISODE) and truncated.any() == (step == EPISODE)

    frames = info["frames"]
    assert frames.env_ids.tolist() == [0, 1]
    image = frames.images["base_camera"]
    assert image.shape == (2, *SIZE, 3) and image.dtype == torch.uint8 and image.float().std() > 10
    # the robot state of the rendered (terminal) state: the panda's 9 joint positions and 9 velocities,
    # which PickCube's state observation starts with
    assert frames.robot_state.shape == (2, 18) and torch.allclose(frames.robot_state, info["final_obs"][:, :18])
    # auto-reset: obs starts the next episode, final_obs is where this one ended (one step on from previous)
    assert not torch.allclose(info["final_obs"], obs)
    assert torch.allclose(info["final_obs"], previous, atol=0.1)

    obs, _, _, truncated, info = env.step(actions, render="never")
    assert not truncated.any() and "frames" not in info


def test_every_step_and_render_frames(env):
    first, _ = env.reset(seed=1)
    assert torch.equal(env.reset(seed=1)[0], first)
    _, _, _, _, info = env.step(torch.zeros(2, env.action_dim), render="every_step")
    assert info["frames"].env_ids.tolist() == [0, 1]
    assert info["frames"].images["base_camera"].shape == (2, *SIZE, 3)
    frames = env.render_frames()
    assert frames.images["base_camera"].shape == (2, *SIZE, 3)
