"""push_cube_2d_decoy: a goal look-alike beside the cube, which only a fooled classifier pays for."""
from __future__ import annotations


import pytest
import torch

from embodireward.config import ConfigError, parse_dataclass
from embodireward.envs.push_cube_2d import CUBE, DECOY_GOAL, GOAL, PALETTE, STATE_DIM, PushCube2D, PushCube2DDecoy
from embodireward.registry import ENVS
from tests.conftest import within_angles

torch.set_num_threads(1)
CPU = torch.device("cpu")


def make(seed: int = 0, **cfg) -> PushCube2DDecoy:
    return PushCube2DDecoy(parse_dataclass(PushCube2DDecoy.Config, cfg, "env.cfg"), CPU, seed)


def colour_mask(images: torch.Tensor, index: int) -> torch.Tensor:
    return (images == torch.tensor(PALETTE[index], dtype=torch.uint8)).all(-1)


def test_registered_and_the_policy_observes_the_decoy():
    assert ENVS.get("push_cube_2d_decoy") is PushCube2DDecoy and issubclass(PushCube2DDecoy, PushCube2D)
    env = make(num_envs=8)
    assert env.single_observation_space.shape == (STATE_DIM + 4,) and env.describe()["decoy"]["min_cube_dist"] == 0.3
    obs, _ = env.reset(seed=0)
    assert torch.equal(obs[:, STATE_DIM:STATE_DIM + 2], env.decoy_goal)
    assert torch.allclose(obs[:, STATE_DIM + 2:], env.decoy_goal - env.cube_pos)


@pytest.mark.parametrize("angles", [(90.0, 180.0), (150.0, 180.0)])
def test_decoy_spawns_beside_the_cube_away_from_the_goal(angles):
    env = make(num_envs=4096, decoy_min_angle=angles[0], decoy_max_angle=angles[1])
    env.reset(seed=1)
    cfg = env.cfg
    cube_dist = (env.decoy_goal - env.cube_pos).norm(dim=-1)
    assert (cube_dist > cfg.goal_radius).all()  # the cube never starts on the decoy
    in_ring = (cube_dist >= cfg.decoy_min_cube_dist - 1e-6) & (cube_dist <= cfg.decoy_max_cube_dist + 1e-6)
    to_goal, to_decoy = env.goal_pos - env.cube_pos, env.decoy_goal - env.cube_pos
    in_range = within_angles(to_goal, to_decoy, angles)
    # clamping the disc onto the table moves a few spawns
    assert in_ring.float().mean() > 0.9 and in_range.float().mean() > 0.9
    # mostly nearer than the goal (0.3-0.6 away), and never overlapping it
    assert (cube_dist < to_goal.norm(dim=-1)).float().mean() > 0.8
    assert ((env.decoy_goal - env.goal_pos).norm(dim=-1) > 2 * cfg.goal_radius).all()
    assert (env.decoy_goal.abs() <= 1.0 - cfg.goal_radius + 1e-6).all()


def test_only_the_real_goal_counts_and_the_metrics_say_where_the_cube_is():
    env = make(num_envs=2)
    env.reset(seed=0)
    env.pusher_pos[:] = torch.tensor([-0.8, -0.8])
    env.goal_pos[:] = torch.tensor([0.4, 0.4])
    env.decoy_goal[:] = torch.tensor([-0.4, 0.4])
    env.cube_pos[:] = torch.tensor([[-0.4, 0.4], [0.4, 0.4]])  # env 0 on the decoy, env 1 in the goal
    _, reward, _, _, info = env.step(torch.zeros(2, 2))
    assert info["success"].tolist() == [False, True] and info["stage"].tolist() == [0, 2]
    assert info["metrics"]["cube_in_decoy"].tolist() == [1.0, 0.0] and reward[1] > reward[0]
    assert info["metrics"]["cube_decoy_dist"][0] == pytest.approx(0.0)


def test_render_draws_the_decoy_in_its_own_colour_under_the_cube():
    env = make(num_envs=1)
    env.reset(seed=0)
    env.pusher_pos[:] = torch.tensor([-0.8, -0.8])
    env.goal_pos[:] = torch.tensor([0.5, -0.5])
    env.decoy_goal[:] = torch.tensor([-0.5, 0.5])
    env.cube_pos[:] = torch.tensor([0.5, 0.5])
    image = env.render_frames().images["top_camera"]
    decoy, goal = colour_mask(image, DECOY_GOAL), colour_mask(image, GOAL)
    assert decoy.sum() == goal.sum() > 0 and decoy[0, 16, 16] and goal[0, 48, 48]  # same disc, another colour
    env.cube_pos[:] = env.decoy_goal
    covered = env.render_frames().images["top_camera"]
    assert colour_mask(covered, DECOY_GOAL).sum() < decoy.sum() and colour_mask(covered, CUBE)[0, 16, 16]
    assert PALETTE[DECOY_GOAL] != PALETTE[GOAL]


def test_state_dict_holds_the_decoy_and_a_resumed_env_continues_the_same_episodes():
    env = make(num_envs=16, episode_length=5)
    env.reset(seed=0)
    state = env.state_dict()
    actions = torch.rand(12, 16, 2, generator=torch.Generator().manual_seed(3)) * 2 - 1
    expected = [env.step(a)[0] for a in actions]  # crosses two auto-resets, which redraw the decoy
    resumed = make(num_envs=16, episode_length=5, seed=9)
    resumed.reset(seed=4)
    resumed.load_state_dict(state)
    assert all(torch.equal(resumed.step(a)[0], want) for a, want in zip(actions, expected))
    del state["decoy_goal"]
    with pytest.raises(ValueError, match="push_cube_2d_decoy state lacks 'decoy_goal'"):
        resumed.load_state_dict(state)


def test_decoy_config_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"^env\.cfg\.decoy_min_cube_dist: need goal_radius \(0\.15\) < decoy_min_cube_dist"):
        parse_dataclass(PushCube2DDecoy.Config, {"decoy_min_cube_dist": 0.1}, "env.cfg")
    with pytest.raises(ConfigError, match=r"^env\.cfg\.decoy_min_angle: need 0 <= decoy_min_angle <= decoy_max_angle <= 180"):
        parse_dataclass(PushCube2DDecoy.Config, {"decoy_min_angle": 170, "decoy_max_angle": 100}, "env.cfg")
