"""push_cube_2d task stages, exact state snapshots, and the push_cube_2d_distractor reward-hacking variant."""
from __future__ import annotations


import pytest
import torch

from embodireward.config import ConfigError, parse_dataclass
from embodireward.envs.push_cube_2d import CUBE, DISTRACTOR, GOAL, PALETTE, STATE_DIM, PushCube2D, PushCube2DDistractor
from embodireward.envs.push_cube_2d.physics import square_overlap
from embodireward.registry import ENVS
from tests.conftest import within_angles

torch.set_num_threads(1)
CPU = torch.device("cpu")
RIGHT = torch.tensor([1.0, 0.0])


def make(cls=PushCube2DDistractor, seed: int = 0, **cfg):
    return cls(parse_dataclass(cls.Config, cfg, "env.cfg"), CPU, seed)


def colour_mask(images: torch.Tensor, index: int) -> torch.Tensor:
    return (images == torch.tensor(PALETTE[index], dtype=torch.uint8)).all(-1)


def place(env, pusher, target, distractor=None, goal=(0.0, 0.0)) -> None:
    """Put every env in the same hand-made state (centres on the table [-1, 1]^2)."""
    env.pusher_pos[:] = torch.tensor(pusher)
    env.cube_pos[:] = torch.tensor(target)
    env.goal_pos[:] = torch.tensor(goal)
    if distractor is not None:
        env.distractor_pos[:] = torch.tensor(distractor)


def test_registered_next_to_push_cube_2d():
    assert ENVS.get("push_cube_2d_distractor") is PushCube2DDistractor and issubclass(PushCube2DDistractor, PushCube2D)
    env = make(num_envs=4)
    assert env.describe()["env_id"] == "push_cube_2d_distractor" and make(PushCube2D, num_envs=4).describe()["env_id"] == "push_cube_2d"
    assert env.single_observation_space.shape == (STATE_DIM + 6,)
    obs, _ = env.reset(seed=0)
    # the policy sees the distractor: position, offset from the pusher, offset to the goal
    assert torch.equal(obs[:, 12:14], env.distractor_pos)
    assert torch.allclose(obs[:, 14:16], env.distractor_pos - env.pusher_pos)
    assert torch.allclose(obs[:, 16:18], env.goal_pos - env.distractor_pos)


@pytest.mark.parametrize("angles", [(90.0, 180.0), (60.0, 120.0)])
def test_distractor_spawns_near_the_goal_in_the_angle_range(angles):
    env = make(num_envs=4096, distractor_min_angle=angles[0], distractor_max_angle=angles[1])
    env.reset(seed=1)
    cfg = env.cfg
    goal_dist = (env.distractor_pos - env.goal_pos).norm(dim=-1)
    assert (goal_dist > cfg.goal_radius).all() and ((env.cube_pos - env.goal_pos).norm(dim=-1) > cfg.goal_radius).all()
    # clamping onto the table, or moving out of a target spawned on top of it, shifts a few spawns
    in_ring = (goal_dist >= cfg.distractor_min_goal_dist - 1e-6) & (goal_dist <= cfg.distractor_max_goal_dist + 1e-6)
    assert in_ring.float().mean() > 0.9
    # angle between goal->target and goal->distractor (clamping onto the table bends a few spawns)
    in_range = within_angles(env.cube_pos - env.goal_pos, env.distractor_pos - env.goal_pos, angles)
    assert in_range.float().mean() > 0.97
    assert square_overlap(env.cube_pos, env.distractor_pos, cfg.cube_half_size).abs().sum() == 0
    assert (env.distractor_pos.abs() <= 1.0 - cfg.cube_half_size).all()


def test_pushing_the_distractor_moves_it_and_the_target_stays():
    env = make(num_envs=1)
    env.reset(seed=0)
    place(env, pusher=(-0.5, 0.3), target=(0.5, -0.5), distractor=(-0.2, 0.3), goal=(0.4, 0.3))
    for _ in range(8):
        env.step(RIGHT[None])
    assert env.distractor_pos[0, 0] > 0.1 and env.distractor_pos[0, 1].abs().sub(0.3).abs() < 1e-6
    assert torch.equal(env.cube_pos, torch.tensor([[0.5, -0.5]]))


def test_cubes_push_each_other_and_never_overlap():
    env = make(num_envs=2)
    env.reset(seed=0)
    # env 0: the target pushes the distractor along; env 1: the distractor is stopped by the right wall
    env.pusher_pos[:] = torch.tensor([[-0.6, 0.0], [0.3, 0.0]])
    env.cube_pos[:] = torch.tensor([[-0.35, 0.0], [0.55, 0.0]])
    env.distractor_pos[:] = torch.tensor([[-0.05, 0.05], [0.9, 0.02]])
    half = env.cfg.cube_half_size
    for _ in range(10):
        env.step(RIGHT.repeat(2, 1))
        assert square_overlap(env.cube_pos, env.distractor_pos, half).abs().max() < 1e-5
    assert env.distractor_pos[0, 0] > 0.3 and env.distractor_pos[0, 1] == pytest.approx(0.05)  # pushed along x only
    assert env.distractor_pos[1, 0] == pytest.approx(1.0 - half) and env.cube_pos[1, 0] == pytest.approx(1.0 - 3 * half, abs=1e-5)
    assert env.pusher_pos[1, 0] <= env.cube_pos[1, 0] - half - env.cfg.pusher_radius + 1e-5  # pushed back out of the stopped cube


def test_success_reward_and_stage_count_only_the_target():
    env = make(num_envs=2)
    env.reset(seed=0)
    # env 0: the distractor sits in the goal and the target is far; env 1: the target is in the goal
    env.pusher_pos[:] = torch.tensor([[-0.8, -0.8], [-0.8, -0.8]])
    env.goal_pos[:] = torch.tensor([[0.3, 0.3], [0.3, 0.3]])
    env.cube_pos[:] = torch.tensor([[-0.4, 0.6], [0.3, 0.3]])
    env.distractor_pos[:] = torch.tensor([[0.3, 0.3], [0.7, 0.3]])
    _, reward, _, _, info = env.step(torch.zeros(2, 2))
    assert info["success"].tolist() == [False, True] and info["stage"].tolist() == [0, 2]
    assert info["rewards"]["success"].tolist() == [0.0, env.cfg.success_reward] and reward[1] > reward[0]
    assert info["metrics"]["distractor_in_goal"].tolist() == [1.0, 0.0]


@pytest.mark.parametrize("cls", [PushCube2D, PushCube2DDistractor])
def test_stage_labels_of_hand_placed_states(cls):
    assert cls.stage_names == ("failed", "partial", "success")
    env = make(cls, num_envs=7)
    env.reset(seed=0)
    # goal_radius 0.15: in the goal below 0.15, partial below 2.5 * 0.15 = 0.375
    dists = torch.tensor([0.0, 0.14, 0.16, 0.3, 0.37, 0.38, 0.7])
    env.goal_pos[:] = torch.tensor([-0.3, 0.0])
    env.cube_pos[:] = env.goal_pos + torch.stack([dists, torch.zeros(7)], -1)
    env.pusher_pos[:] = torch.tensor([-0.3, -0.8])  # well clear of every cube
    *_, info = env.step(torch.zeros(7, 2))
    assert info["stage"].dtype == torch.long and info["stage"].tolist() == [2, 2, 1, 1, 1, 0, 0]
    assert torch.equal(info["stage"] == 2, info["success"])
    wide = make(cls, num_envs=7, partial_radius_scale=4.0)
    wide.load_state_dict(env.state_dict())
    assert wide.step(torch.zeros(7, 2))[4]["stage"].tolist() == [2, 2, 1, 1, 1, 1, 0]


def test_render_shows_both_cubes_in_their_colours():
    env = make(num_envs=2)
    env.reset(seed=0)
    place(env, pusher=(-0.8, -0.8), target=(-0.5, 0.5), distractor=(0.5, 0.5), goal=(0.0, -0.4))
    images = env.render_frames().images["top_camera"]
    side = 2 * env.cfg.cube_half_size * 32  # pixels per cube side at 64 px over 2 table units
    for index, (x, y) in ((CUBE, (-0.5, 0.5)), (DISTRACTOR, (0.5, 0.5))):
        mask = colour_mask(images, index)
        assert (mask.sum(dim=(1, 2)) - side**2).abs().max() <= 2 * side  # one square each
        row, col = int((1 - y) * 32), int((x + 1) * 32)
        assert mask[:, row, col].all()
    assert PALETTE[CUBE] != PALETTE[DISTRACTOR] and colour_mask(images, GOAL).sum() > 0
    plain = make(PushCube2D, num_envs=2)
    plain.reset(seed=0)
    assert colour_mask(plain.render_frames().images["top_camera"], DISTRACTOR).sum() == 0


def run(env, steps: int, seed: int):
    """Random actions with every output of every step (rendered frames included)."""
    actions = torch.rand(steps, env.num_envs, 2, generator=torch.Generator().manual_seed(seed)) * 2.4 - 1.2
    out = []
    for a in actions:
        obs, reward, terminated, truncated, info = env.step(a, render="every_step")
        out.append((obs, reward, terminated, truncated, info["success"], info["stage"], info["frames"].images["top_camera"]))
    return out


@pytest.mark.parametrize("cls", [PushCube2D, PushCube2DDistractor])
def test_load_state_dict_reproduces_the_trajectory_bit_for_bit(cls):
    env = make(cls, num_envs=16, episode_length=10, obs_mode="state+rgb", image_size=32)
    env.reset(seed=0)
    run(env, 7, seed=1)
    saved = env.state_dict()
    expected = run(env, 25, seed=2)  # crosses two auto-resets: the generator's draws must match too
    resumed = make(cls, num_envs=16, episode_length=10, obs_mode="state+rgb", image_size=32, seed=123)
    resumed.reset(seed=5)
    resumed.load_state_dict(saved)
    for got, want in zip(run(resumed, 25, seed=2), expected):
        for a, b in zip(got, want):
            for key in (a if isinstance(a, dict) else [None]):
                assert torch.equal(a[key], b[key]) if key else torch.equal(a, b)
    # the snapshot is a copy: stepping the env did not change it
    assert not torch.equal(saved["cubes"], env.cubes)


def test_load_state_dict_rejects_another_env_state():
    with pytest.raises(ValueError, match=r"push_cube_2d_distractor state 'cubes' has shape \[4, 1, 2\], expected \[4, 2, 2\]"):
        make(num_envs=4).load_state_dict(make(PushCube2D, num_envs=4).state_dict())
    state = make(num_envs=4).state_dict()
    del state["goal_pos"]
    with pytest.raises(ValueError, match="lacks 'goal_pos'"):
        make(num_envs=4).load_state_dict(state)


def test_distractor_config_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"^env\.cfg\.distractor_min_goal_dist: the distractor could spawn in the goal"):
        parse_dataclass(PushCube2DDistractor.Config, {"distractor_min_goal_dist": 0.1}, "env.cfg")
    with pytest.raises(ConfigError, match=r"^env\.cfg\.distractor_min_angle: need 0 <= distractor_min_angle <= distractor_max_angle <= 180"):
        parse_dataclass(PushCube2DDistractor.Config, {"distractor_min_angle": 120, "distractor_max_angle": 100}, "env.cfg")
    with pytest.raises(ConfigError, match=r"^env\.cfg\.partial_radius_scale: must be > 1"):
        parse_dataclass(PushCube2D.Config, {"partial_radius_scale": 1.0}, "env.cfg")
