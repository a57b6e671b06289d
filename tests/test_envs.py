"""Tests of the built-in envs: push_cube_2d and the gymnasium wrapper."""
from __future__ import annotations

import importlib.util

import gymnasium as gym
import numpy as np
import pytest
import torch

from embodireward.config import ConfigError, parse_dataclass
from embodireward.envs import Frames, VecEnv
from embodireward.envs.gymnasium_env import GymnasiumVecEnv
from embodireward.envs.push_cube_2d import CUBE, GOAL, GOAL_REACHED, PALETTE, STATE_DIM, PushCube2D, box_contact
from embodireward.registry import ENVS

torch.set_num_threads(1)
CPU = torch.device("cpu")


def make_push(seed: int = 0, **cfg) -> PushCube2D:
    return PushCube2D(parse_dataclass(PushCube2D.Config, cfg, "env.cfg"), CPU, seed)


def unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm(dim=-1, keepdim=True).clamp(min=1e-6)


def scripted_push(state: torch.Tensor, max_speed: float = 0.1) -> torch.Tensor:
    """Go around to the far side of the cube, then push it along the cube->goal line."""
    pusher, cube, goal = state[:, 0:2], state[:, 4:6], state[:, 6:8]
    to_goal = unit(goal - cube)
    rel = pusher - cube
    along = (rel * to_goal).sum(-1, keepdim=True)  # negative: behind the cube
    across = rel - along * to_goal
    aligned = (along < -0.15) & (across.norm(dim=-1, keepdim=True) < 0.06)
    side = unit(torch.where(across.norm(dim=-1, keepdim=True) > 1e-3, across, torch.stack([-to_goal[:, 1], to_goal[:, 0]], -1)))
    detour = cube + 0.3 * side - 0.3 * to_goal  # pass beside the cube, not through it
    approach = torch.where(along > -0.15, detour, cube - 0.2 * to_goal)
    slow_down = ((goal - cube).norm(dim=-1, keepdim=True) / max_speed).clamp(max=1.0)  # don't overshoot
    push = to_goal * slow_down - 2.0 * across
    return torch.where(aligned, push, (approach - pusher) / max_speed).clamp(-1, 1)


def colour_mask(images: torch.Tensor, index: int) -> torch.Tensor:
    return (images == torch.tensor(PALETTE[index], dtype=torch.uint8)).all(-1)


# ------------------------------------------------------------------------------ push_cube_2d


def test_registered_with_docstrings():
    for name in ("push_cube_2d", "gymnasium"):
        cls = ENVS.get(name)
        assert issubclass(cls, VecEnv) and cls.__doc__ and cls.Config


def test_state_obs_shapes_and_info():
    env = make_push(num_envs=8)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (8, STATE_DIM) and obs.dtype == torch.float32
    assert env.single_observation_space.shape == (STATE_DIM,) and env.action_dim == 2
    obs, reward, terminated, truncated, info = env.step(torch.zeros(8, 2))
    assert reward.shape == (8,) and reward.dtype == torch.float32
    assert terminated.dtype == torch.bool and truncated.dtype == torch.bool
    assert info["success"].dtype == torch.bool and "frames" not in info
    assert torch.allclose(sum(info["rewards"].values()), reward)
    assert set(info["rewards"]) == {"reach", "push", "success"}
    assert info["metrics"]["cube_goal_dist"].shape == (8,)
    assert env.describe() == {
        "env_id": "push_cube_2d", "camera_keys": ["top_camera"], "image_size": [64, 64], "obs_mode": "state",
        "control_mode": "pusher_velocity", "show_goal": True, "highlight_success": False, "episode_length": 50,
        "robot_state_dim": 4,
    }


@pytest.mark.parametrize("obs_mode", ["rgb", "state+rgb"])
def test_rgb_obs_modes(obs_mode):
    env = make_push(num_envs=4, obs_mode=obs_mode, image_size=32)
    obs, _ = env.reset(seed=0)
    keys = {"rgb"} if obs_mode == "rgb" else {"state", "rgb"}
    assert set(obs) == keys == set(env.single_observation_space.spaces)
    assert obs["rgb"].shape == (4, 32, 32, 3) and obs["rgb"].dtype == torch.uint8
    assert torch.equal(obs["rgb"], env.render_frames().images["top_camera"])
    obs, *_ = env.step(torch.ones(4, 2))
    assert env.single_observation_space.contains({k: v[0].numpy() for k, v in obs.items()})
    assert torch.equal(obs["rgb"], env.render_frames().images["top_camera"])


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"^env\.cfg\.obs_mode: expected one of"):
        parse_dataclass(PushCube2D.Config, {"obs_mode": "depth"}, "env.cfg")
    with pytest.raises(ConfigError, match=r"^env\.cfg\.max_speed: "):
        parse_dataclass(PushCube2D.Config, {"max_speed": 0.5}, "env.cfg")
    with pytest.raises(ConfigError, match=r"^env\.cfg\.num_envs: must be >= 1"):
        parse_dataclass(PushCube2D.Config, {"num_envs": 0}, "env.cfg")


def run_random(env: PushCube2D, steps: int, seed: int):
    actions = torch.rand(steps, env.num_envs, 2, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    return [env.step(a)[0] for a in actions]


def test_same_seed_same_episodes():
    a, b = make_push(num_envs=16, episode_length=10), make_push(num_envs=16, episode_length=10, seed=99)
    first, _ = a.reset(seed=7)
    assert torch.equal(first, b.reset(seed=7)[0])
    assert not torch.equal(first, b.reset(seed=8)[0])
    b.reset(seed=7)
    # 25 steps cross two auto-resets, whose randomisation must match too
    for obs_a, obs_b in zip(run_random(a, 25, seed=1), run_random(b, 25, seed=1)):
        assert torch.equal(obs_a, obs_b)
    # the constructor seed seeds an unseeded reset
    assert torch.equal(make_push(num_envs=16, seed=3).reset()[0], make_push(num_envs=16, seed=3).reset()[0])


def test_state_dict_resumes_the_same_episodes():
    env = make_push(num_envs=16, episode_length=10)
    env.reset(seed=0)
    run_random(env, 7, seed=1)
    saved = env.state_dict()
    expected = run_random(env, 20, seed=2)
    resumed = make_push(num_envs=16, episode_length=10, seed=123)
    resumed.load_state_dict(saved)
    for obs, obs_expected in zip(run_random(resumed, 20, seed=2), expected):
        assert torch.equal(obs, obs_expected)


def test_truncation_and_auto_reset():
    env = make_push(num_envs=32, episode_length=5)
    env.reset(seed=0)
    for _ in range(4):
        obs, _, terminated, truncated, info = env.step(torch.ones(32, 2))
        assert not truncated.any() and not terminated.any()
        assert torch.equal(info["final_obs"], obs)
    obs, _, terminated, truncated, info = env.step(torch.ones(32, 2))
    assert truncated.all() and not terminated.any()
    final = info["final_obs"]
    assert (final - obs).abs().sum(-1).gt(0).all()  # the next episode started
    assert final[:, 2:4].abs().sum() > 0 and obs[:, 2:4].abs().sum() == 0  # pusher velocity restarts at 0
    for _ in range(4):
        assert not env.step(torch.zeros(32, 2))[3].any()
    assert env.step(torch.zeros(32, 2))[3].all()


def place_cube_on_goal(env: PushCube2D, env_ids) -> None:
    env.cube_pos[env_ids] = env.goal_pos[env_ids]
    env.pusher_pos[env_ids] = env.goal_pos[env_ids] - 0.4 * env.goal_pos[env_ids].sign()  # well clear, towards the centre


@pytest.mark.parametrize("terminate_on_success", [False, True])
def test_success_and_termination(terminate_on_success):
    env = make_push(num_envs=6, terminate_on_success=terminate_on_success)
    env.reset(seed=0)
    place_cube_on_goal(env, [1, 4])
    _, reward, terminated, truncated, info = env.step(torch.zeros(6, 2))
    expected = torch.tensor([False, True, False, False, True, False])
    assert torch.equal(info["success"], expected)
    assert torch.equal(terminated, expected & terminate_on_success) and not truncated.any()
    assert (info["rewards"]["success"][expected] == env.cfg.success_reward).all()
    assert reward[expected].min() > reward[~expected].max()


def test_box_contact():
    points = torch.tensor([[0.15, 0.0], [0.05, -0.02], [-0.2, 0.2]])
    dist, normal = box_contact(points, torch.zeros(3, 2), 0.1)
    assert torch.allclose(dist, torch.tensor([0.05, -0.05, 0.02**0.5]))
    assert torch.allclose(normal, torch.tensor([[1.0, 0.0], [1.0, 0.0], [-(0.5**0.5), 0.5**0.5]]))


def test_contact_pushes_cube_and_keeps_it_on_table():
    env = make_push(num_envs=2)
    env.reset(seed=0)
    env.cube_pos[:] = torch.tensor([[0.0, 0.0], [0.75, 0.3]])
    env.pusher_pos[:] = torch.tensor([[-0.4, 0.0], [0.3, 0.3]])
    right = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    for _ in range(2):  # not yet touching
        env.step(right)
    assert torch.equal(env.cube_pos, torch.tensor([[0.0, 0.0], [0.75, 0.3]]))
    for _ in range(10):
        env.step(right)
        gap, _ = box_contact(env.pusher_pos, env.cube_pos, env.cfg.cube_half_size)
        assert (gap >= env.cfg.pusher_radius - 1e-5).all()  # never overlapping
    assert env.cube_pos[0, 0] > 0.5 and env.cube_pos[0, 1].abs() < 1e-6  # pushed straight along x
    assert env.cube_pos[1, 0] == pytest.approx(1.0 - env.cfg.cube_half_size)  # stopped by the wall
    assert (env.pusher_pos.abs() <= 1.0 - env.cfg.pusher_radius + 1e-6).all()
    cube = env.cube_pos.clone()
    env.step(-right)  # pulling away leaves the cube where it is
    assert torch.equal(env.cube_pos, cube)


def test_scripted_policy_succeeds_random_does_not():
    env = make_push(num_envs=256)
    obs, _ = env.reset(seed=0)
    for _ in range(50):
        obs, _, _, truncated, info = env.step(scripted_push(obs))
    assert truncated.all() and info["success"].float().mean() > 0.9
    env.reset(seed=0)
    for _ in range(50):
        _, _, _, _, info = env.step(torch.rand(256, 2) * 2 - 1)
    assert info["success"].float().mean() < 0.1


def test_render_requests():
    # twin with a longer episode: after 5 steps it still shows what `env` ended its episodes in
    env, twin = make_push(num_envs=6, episode_length=5), make_push(num_envs=6, episode_length=6)
    env.reset(seed=0), twin.reset(seed=0)
    for step in range(5):
        actions = torch.rand(6, 2) * 2 - 1
        *_, info = env.step(actions, render="never" if step < 2 else "episode_end")
        twin.step(actions)
        if step < 2:
            assert "frames" not in info
        elif step < 4:
            assert len(info["frames"]) == 0 and info["frames"].images["top_camera"].shape == (0, 64, 64, 3)
    terminal = twin.render_frames()
    assert torch.equal(info["frames"].env_ids, torch.arange(6))
    assert torch.equal(info["frames"].images["top_camera"], terminal.images["top_camera"])

    env, twin = make_push(num_envs=6, terminate_on_success=True), make_push(num_envs=6)
    env.reset(seed=0), twin.reset(seed=0)
    place_cube_on_goal(env, [2, 3]), place_cube_on_goal(twin, [2, 3])  # only envs 2 and 3 finish
    *_, info = env.step(torch.zeros(6, 2), render="episode_end")
    twin.step(torch.zeros(6, 2))
    assert torch.equal(info["frames"].env_ids, torch.tensor([2, 3]))
    assert torch.equal(info["frames"].images["top_camera"], twin.render_frames().select(torch.tensor([2, 3])).images["top_camera"])


def test_every_step_and_rgb_obs_show_terminal_state():
    env, twin = make_push(num_envs=4, episode_length=3, obs_mode="rgb"), make_push(num_envs=4, episode_length=4)
    env.reset(seed=0), twin.reset(seed=0)
    for _ in range(3):
        actions = torch.rand(4, 2) * 2 - 1
        obs, _, _, truncated, info = env.step(actions, render="every_step")
        twin.step(actions)
    terminal = twin.render_frames().images["top_camera"]
    assert truncated.all()
    assert torch.equal(info["frames"].images["top_camera"], terminal)
    assert torch.equal(info["final_obs"]["rgb"], terminal)
    assert torch.equal(obs["rgb"], env.render_frames().images["top_camera"])  # the reset state
    assert not torch.equal(obs["rgb"], terminal)


def test_success_is_visible_in_images():
    env = make_push(num_envs=4)
    env.reset(seed=0)
    place_cube_on_goal(env, [0])
    images = env.render_frames().images["top_camera"]
    assert (colour_mask(images, CUBE).sum(dim=(1, 2)) > 30).all()
    # the cube covers the middle of the goal disc: a ring of goal colour remains around it
    disc_pixels = np.pi * (env.cfg.goal_radius * 32) ** 2
    assert 0.2 * disc_pixels < colour_mask(images[0], GOAL).sum() < 0.6 * disc_pixels
    centre = ((1 - env.goal_pos[0, 1]) * 32).long(), ((env.goal_pos[0, 0] + 1) * 32).long()
    assert colour_mask(images[0, centre[0], centre[1]], CUBE)

    highlighted = make_push(num_envs=4, highlight_success=True)
    highlighted.load_state_dict(env.state_dict())
    images = highlighted.render_frames().images["top_camera"]
    assert colour_mask(images[0], GOAL_REACHED).sum() > 0 and colour_mask(images[0], GOAL).sum() == 0
    assert colour_mask(images[1:], GOAL_REACHED).sum() == 0

    hidden = make_push(num_envs=4, show_goal=False)
    hidden.load_state_dict(env.state_dict())
    assert colour_mask(hidden.render_frames().images["top_camera"], GOAL).sum() == 0


# ------------------------------------------------------------------------------ gymnasium wrapper


def make_gym(**cfg) -> GymnasiumVecEnv:
    return GymnasiumVecEnv(parse_dataclass(GymnasiumVecEnv.Config, cfg, "env.cfg"), CPU, 0)


class CountingEnv(gym.Env):
    """1-D walk; terminates (a success) past 2.5, frames show the step count as pixel value."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}

    def __init__(self, render_mode=None):
        self.render_mode = render_mode
        self.observation_space = gym.spaces.Box(-10, 10, (1,), np.float32)
        self.action_space = gym.spaces.Box(-1, 1, (1,), np.float32)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.position, self.count = 0.0, 0
        return np.array([self.position], np.float32), {}

    def step(self, action):
        self.position += float(action[0])
        self.count += 1
        done = self.position > 2.5
        return np.array([self.position], np.float32), 1.0, done, False, {"is_success": done}

    def render(self):
        return np.full((4, 6, 3), self.count, np.uint8)


gym.register("embodireward-test/Counting-v0", entry_point=CountingEnv, max_episode_steps=4)


def test_gymnasium_pendulum_truncates_at_time_limit():
    env = make_gym(env_id="Pendulum-v1", num_envs=3)
    assert env.max_episode_steps == 200 and env.camera_keys == ("render",)
    obs, _ = env.reset(seed=1)
    assert obs.shape == (3, 3) and obs.dtype == torch.float32
    assert torch.equal(obs, make_gym(env_id="Pendulum-v1", num_envs=3).reset(seed=1)[0])
    for step in range(1, 201):
        obs, reward, terminated, truncated, info = env.step(torch.rand(3, 1) * 4 - 2)
        assert reward.dtype == torch.float32 and not terminated.any() and "success" not in info
        assert truncated.all() == (step == 200) and truncated.any() == (step == 200)
        if step < 200:
            assert torch.equal(info["final_obs"], obs)
    assert (info["final_obs"] - obs).abs().sum(-1).gt(0).all()
    env.close()


def test_gymnasium_async_final_obs():
    env = make_gym(env_id="Pendulum-v1", num_envs=2, vectorization="async", env_kwargs={"max_episode_steps": 3})
    env.reset(seed=0)
    assert env.max_episode_steps == 3
    for _ in range(3):
        obs, _, _, truncated, info = env.step(torch.zeros(2, 1))
    assert truncated.all() and not torch.equal(info["final_obs"], obs)
    env.close()


def test_gymnasium_frames_success_and_final_obs():
    env = make_gym(env_id="embodireward-test/Counting-v0", num_envs=3)
    env.reset(seed=0)
    *_, info = env.step(torch.ones(3, 1))
    assert "frames" not in info and not info["success"].any()
    *_, info = env.step(torch.ones(3, 1), render="every_step")
    assert info["frames"].images["render"].shape == (3, 4, 6, 3)
    assert (info["frames"].images["render"] == 2).all()
    # env 0 reaches 3.0 (terminated, a success), envs 1 and 2 stay below
    obs, _, terminated, truncated, info = env.step(torch.tensor([[1.0], [0.0], [0.0]]), render="episode_end")
    assert terminated.tolist() == [True, False, False] and not truncated.any()
    assert info["success"].tolist() == [True, False, False]
    assert info["final_obs"][:, 0].tolist() == [3.0, 2.0, 2.0] and obs[:, 0].tolist() == [0.0, 2.0, 2.0]
    assert info["frames"].env_ids.tolist() == [0] and (info["frames"].images["render"] == 3).all()
    # envs 1 and 2 hit the 4-step time limit
    _, _, terminated, truncated, info = env.step(torch.zeros(3, 1), render="episode_end")
    assert truncated.tolist() == [False, True, True] and not terminated.any() and not info["success"].any()
    assert info["frames"].env_ids.tolist() == [1, 2] and (info["frames"].images["render"] == 4).all()
    # nothing finishes -> empty frames of the right shape
    *_, info = env.step(torch.zeros(3, 1), render="episode_end")
    assert len(info["frames"]) == 0 and info["frames"].images["render"].shape == (0, 4, 6, 3)
    assert isinstance(env.render_frames(), Frames)
    env.close()


def test_gymnasium_config_errors():
    with pytest.raises(ConfigError, match=r"^env\.cfg\.env_id: .*Pendulum"):
        make_gym(env_id="Pendulm-v1")
    with pytest.raises(ConfigError, match=r"^env\.cfg\.vectorization: "):
        make_gym(env_id="Pendulum-v1", vectorization="threads")
    with pytest.raises(ConfigError, match=r"^env\.cfg\.env_id: .*Discrete\(2\); only Box \(continuous\) action spaces"):
        make_gym(env_id="CartPole-v1")


def test_gymnasium_pendulum_rendering():
    env = make_gym(env_id="Pendulum-v1", num_envs=2)
    env.reset(seed=0)
    if importlib.util.find_spec("pygame") is None:
        with pytest.raises(gym.error.DependencyNotInstalled, match="pygame"):
            env.step(torch.zeros(2, 1), render="every_step")
        pytest.skip("pygame not installed")
    *_, info = env.step(torch.zeros(2, 1), render="every_step")
    images = info["frames"].images["render"]
    assert images.dtype == torch.uint8 and images.shape[0] == 2 and images.shape[-1] == 3
    assert env.render_frames().images["render"].shape == images.shape
    env.close()
