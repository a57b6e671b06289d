"""SAC's pieces against hand computations: target, entropy tuning, Polyak, collection, policy, update, config errors."""
from __future__ import annotations

import copy
import io

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn
from torch.distributions import Normal, TransformedDistribution
from torch.distributions.transforms import AffineTransform, TanhTransform

from embodireward.algos.sac import SAC, SACConfig, alpha_loss, polyak_update, soft_q_target
from embodireward.builder import validate_config
from embodireward.config import ConfigError, NetworkConfig, PolicySection, parse_dataclass, parse_train_config
from embodireward.envs.push_cube_2d import PushCube2D, PushCube2DConfig
from embodireward.policies.squashed_gaussian import SquashedGaussianPolicy
from embodireward.utils.precision import Precision
from tests.conftest import REPO_ROOT, run_module, write_json

STATE = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)


# -- the soft Q target --------------------------------------------------------------------------
REWARDS = torch.tensor([1.0, 0.5, 2.0, 0.0])
TERMINATED = torch.tensor([False, True, False, True])  # the third transition is a time-limit cut
NEXT_Q1, NEXT_Q2 = torch.tensor([3.0, 4.0, 1.0, 2.0]), torch.tensor([2.5, 5.0, 0.5, 3.0])
NEXT_LOG_PROB = torch.tensor([-1.0, 0.5, 2.0, 0.0])


@pytest.mark.parametrize("mode, expected", [
    # min(Q1', Q2') - 0.2 * log pi = [2.7, 3.9, 0.1, 2.0]; y = r + 0.9 * (1 - d) * that
    ("truncated", [1 + 0.9 * 2.7, 0.5, 2 + 0.9 * 0.1, 0.0]),  # terminated: no bootstrap; truncated: bootstraps
    ("always", [1 + 0.9 * 2.7, 0.5 + 0.9 * 3.9, 2 + 0.9 * 0.1, 0.9 * 2.0]),
])
def test_soft_q_target_matches_hand_computation(mode, expected):
    target = soft_q_target(REWARDS, TERMINATED, NEXT_Q1, NEXT_Q2, NEXT_LOG_PROB, torch.tensor(0.2), 0.9, mode)
    assert target.dtype == torch.float32
    torch.testing.assert_close(target, torch.tensor(expected))


def test_soft_q_target_stays_float32_from_bf16_critics():
    q1, q2 = (torch.tensor([1000.0, 1000.0]).bfloat16(),) * 2
    target = soft_q_target(torch.tensor([0.0, 0.0]), torch.tensor([False, False]), q1, q2,
                           torch.tensor([0.01, 0.0]), torch.tensor(1.0), 1.0, "truncated")
    assert target.dtype == torch.float32 and target[0] != target[1]  # bf16 would round 999.99 to 1000


# -- entropy temperature ------------------------------------------------------------------------
@pytest.mark.parametrize("log_prob, rises", [(3.0, True), (-5.0, False)])
def test_alpha_rises_below_the_target_entropy_and_falls_above(log_prob, rises):
    # target entropy -2: entropy -log pi = -3 is below it, 5 above it
    log_alpha = torch.zeros((), requires_grad=True)
    optimizer = torch.optim.SGD([log_alpha], lr=0.1)
    alpha_loss(log_alpha, torch.full((8,), log_prob), target_entropy=-2.0).backward()
    optimizer.step()
    assert (log_alpha.item() > 0) == rises


# -- Polyak averaging ---------------------------------------------------------------------------
def test_polyak_update_moves_target_by_tau():
    source, target = nn.Linear(3, 2), nn.Linear(3, 2)
    before = copy.deepcopy(target.state_dict())
    polyak_update(target, source, tau=0.1)
    for name, value in target.state_dict().items():
        torch.testing.assert_close(value, 0.1 * source.state_dict()[name] + 0.9 * before[name])


def make_sac(obs_space: gym.Space, action_space: gym.spaces.Box, num_envs: int, **cfg) -> SAC:
    block = NetworkConfig(hidden_sizes=[16, 16], activation="relu")
    policy = SquashedGaussianPolicy(PolicySection(name="squashed_gaussian", actor=block, critic=block), obs_space, action_space)
    sac = SAC(parse_dataclass(SACConfig, cfg, "algorithm.cfg"), policy, torch.device("cpu"))
    sac.initialize_buffer(1, num_envs, obs_space, action_space)
    return sac


def test_collection_stores_the_true_final_observation_at_episode_ends():
    env = PushCube2D(PushCube2DConfig(num_envs=3, episode_length=3), torch.device("cpu"), seed=0)
    sac = make_sac(env.single_observation_space, env.single_action_space, 3, buffer_size=30, batch_size=4, learning_starts=0)
    obs, _ = env.reset(seed=0)
    steps = []

    def step_env(actions):
        result = env.step(actions)
        steps.append(result)
        return result

    sac.collect_rollout(obs, 7, step_env)
    stored_next, stored_obs = sac.buffer.next_obs[:21].view(7, 3, -1), sac.buffer.obs[:21].view(7, 3, -1)
    for t, (next_obs, reward, terminated, truncated, info) in enumerate(steps):
        assert torch.equal(sac.buffer.rewards[:21].view(7, 3)[t], reward)
        assert torch.equal(sac.buffer.truncated[:21].view(7, 3)[t], truncated)
        if truncated.all():  # episode end: the terminal observation, not the reset one that follows
            assert not torch.equal(info["final_obs"], next_obs)
            assert torch.equal(stored_next[t], info["final_obs"])
        else:
            assert torch.equal(stored_next[t], next_obs)
        if t + 1 < 7:
            assert torch.equal(stored_obs[t + 1], next_obs)  # the next transition starts where the env is
    assert sac.buffer.truncated[:21].view(7, 3).all(1).tolist() == [False, False, True] * 2 + [False]


# -- the policy ---------------------------------------------------------------------------------
def test_squashed_gaussian_actions_stay_in_bounds_with_the_tanh_log_density():
    bounds = gym.spaces.Box(np.array([-1.0, 0.0], np.float32), np.array([3.0, 0.5], np.float32))
    block = NetworkConfig(hidden_sizes=[32], activation="relu")
    policy = SquashedGaussianPolicy(PolicySection(name="squashed_gaussian", actor=block, critic=block), STATE, bounds)
    nn.init.constant_(policy.actor.log_std.bias, 0.5)  # std about 1: some samples saturate the tanh
    obs = torch.randn(2000, 3) * 5
    actions, log_prob = policy.act(obs)
    assert (actions >= torch.tensor([-1.0, 0.0])).all() and (actions <= torch.tensor([3.0, 0.5])).all()
    assert actions[:, 0].max() > 2.9 and actions[:, 0].min() < -0.9  # uses the whole range
    mean, log_std = policy.actor(obs)
    squashed = TransformedDistribution(Normal(mean, log_std.exp()), [TanhTransform(), AffineTransform(policy.action_bias, policy.action_scale)])
    inside = (((actions - policy.action_bias) / policy.action_scale).abs() < 0.999).all(-1)  # torch's atanh is inexact at the bounds
    assert inside.float().mean() > 0.5
    torch.testing.assert_close(log_prob[inside], squashed.log_prob(actions).sum(-1)[inside], rtol=1e-4, atol=1e-3)
    deterministic, _ = policy.act(obs, deterministic=True)
    torch.testing.assert_close(deterministic, torch.tanh(mean) * torch.tensor([2.0, 0.25]) + torch.tensor([1.0, 0.25]))


def test_bf16_autocast_keeps_q_values_and_log_probs_float32():
    block = NetworkConfig(hidden_sizes=[32, 32], activation="relu")
    policy = SquashedGaussianPolicy(PolicySection(name="squashed_gaussian", actor=block, critic=block), STATE,
                                    gym.spaces.Box(-1.0, 1.0, (2,), np.float32))
    with Precision("bf16").autocast():
        actions, log_prob = policy.rsample(torch.randn(8, 3))
        q1, q2 = policy.critic(torch.randn(8, 3), actions)
        hidden = policy.critic.q1.body(torch.randn(8, 5))
    assert hidden.dtype == torch.bfloat16  # the layers did run in bf16
    assert actions.dtype == log_prob.dtype == q1.dtype == q2.dtype == torch.float32


def test_squashed_gaussian_rejects_unbounded_actions():
    with pytest.raises(ConfigError, match="policy.name: 'squashed_gaussian' needs a bounded action space"):
        SquashedGaussianPolicy(PolicySection(name="squashed_gaussian"), STATE, gym.spaces.Box(-np.inf, np.inf, (2,), np.float32))


# -- one SAC update -----------------------------------------------------------------------------
def filled_sac(**cfg) -> SAC:
    bounds = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    sac = make_sac(STATE, bounds, 8, **{"buffer_size": 64, "batch_size": 16, "learning_starts": 0, **cfg})
    g = torch.Generator().manual_seed(0)
    for _ in range(8):
        sac.buffer.add(torch.randn(8, 3, generator=g), torch.rand(8, 2, generator=g) * 2 - 1, torch.randn(8, generator=g),
                       torch.randn(8, 3, generator=g), torch.rand(8, generator=g) < 0.2, torch.zeros(8, dtype=torch.bool))
    sac.collected = 64
    return sac


@pytest.mark.parametrize("target_entropy, rises", [(100.0, True), (-100.0, False)])
def test_update_tunes_alpha_towards_the_target_entropy(target_entropy, rises):
    sac = filled_sac(utd=0.125, init_alpha=0.5, alpha_lr=0.01)
    sac.target_entropy = target_entropy
    metrics = sac.update(progress=0.0)
    assert metrics["gradient_steps"] == 8  # utd 0.125 x 64 new transitions
    assert (sac.log_alpha.exp().item() > 0.5) == rises
    for key in ("qf_loss", "actor_loss", "alpha_loss", "q_values", "entropy"):
        assert np.isfinite(metrics[key]), key


def test_update_counts_gradient_steps_and_delays_actor_and_target():
    sac = filled_sac(utd=0.05, policy_frequency=2, target_network_frequency=3)  # 3.2 steps: 3 now, 0.2 carried
    actor_before = copy.deepcopy(sac.policy.actor.state_dict())
    critic_start = copy.deepcopy(sac.policy.critic.state_dict())
    metrics = sac.update(progress=0.0)
    assert metrics["gradient_steps"] == 3 and sac.pending_steps == pytest.approx(0.2)
    # step 2 made two actor steps; the target moved once (step 3) from the critic's starting weights
    assert any(not torch.equal(v, actor_before[k]) for k, v in sac.policy.actor.state_dict().items())
    assert sac.actor_optimizer.state_dict()["state"][0]["step"].item() == 2
    assert sac.critic_optimizer.state_dict()["state"][0]["step"].item() == 3
    for name, value in sac.critic_target.state_dict().items():
        expected = 0.005 * sac.policy.critic.state_dict()[name] + 0.995 * critic_start[name]
        torch.testing.assert_close(value, expected)
    sac.collected += 56  # 0.05 x 56 + 0.2 = 3.0 steps
    assert sac.update(progress=0.0)["gradient_steps"] == 3


def test_update_waits_for_a_batch_when_resumed_without_the_buffer():
    sac = filled_sac(utd=0.5)
    state = sac.state_dict()  # save_replay_buffer is off
    assert "replay_buffer" not in state
    resumed = make_sac(STATE, gym.spaces.Box(-1.0, 1.0, (2,), np.float32), 8, buffer_size=64, batch_size=16, learning_starts=0, utd=0.5)
    resumed.load_state_dict(state)
    resumed.collected += 8
    resumed.buffer.add(torch.randn(8, 3), torch.zeros(8, 2), torch.zeros(8), torch.randn(8, 3), torch.zeros(8, dtype=torch.bool),
                       torch.zeros(8, dtype=torch.bool))
    assert resumed.update(progress=0.0) == {"gradient_steps": 0.0} and resumed.pending_steps == 0  # 8 < batch_size
    resumed.collected += 8
    resumed.buffer.add(torch.randn(8, 3), torch.zeros(8, 2), torch.zeros(8), torch.randn(8, 3), torch.zeros(8, dtype=torch.bool),
                       torch.zeros(8, dtype=torch.bool))
    assert resumed.update(progress=0.0)["gradient_steps"] == 4  # 0.5 x the 8 new transitions, no burst of the earlier ones


def test_state_dict_round_trip_continues_the_update_exactly():
    sac = filled_sac(utd=0.0625, save_replay_buffer=True)
    sac.update(progress=0.0)
    blob = io.BytesIO()
    torch.save({"policy": sac.policy.state_dict(), "algorithm": sac.state_dict()}, blob)
    blob.seek(0)
    saved = torch.load(blob, weights_only=True)
    sac.collected += 64
    torch.manual_seed(5)
    expected = sac.update(progress=0.0)

    restored = make_sac(STATE, gym.spaces.Box(-1.0, 1.0, (2,), np.float32), 8, buffer_size=64, batch_size=16,
                        learning_starts=0, utd=0.0625, save_replay_buffer=True)
    restored.policy.load_state_dict(saved["policy"])
    restored.load_state_dict(saved["algorithm"])
    restored.collected += 64
    torch.manual_seed(5)
    assert restored.update(progress=0.0) == expected
    for (name, value), other in zip(sac.policy.state_dict().items(), restored.policy.state_dict().values()):
        assert torch.equal(value, other), name


# -- config errors ------------------------------------------------------------------------------
def sac_config(tmp_path, **algorithm) -> dict:
    import json

    config = json.loads((REPO_ROOT / "configs/push_cube_2d/sac.json").read_text())
    config["runtime"].update(iterations=1, rollout_steps=2, eval_freq=0, save_freq=0, progress_bar=False,
                             run_dir=str(tmp_path / "run"), device="cpu")
    config["env"]["cfg"]["num_envs"] = 4
    config["algorithm"]["cfg"].update(algorithm)
    return config


@pytest.mark.parametrize("override, message", [
    ({"utd": 0}, "algorithm.cfg.utd: must be > 0, got 0.0"),
    ({"utd": -1.0}, "algorithm.cfg.utd: must be > 0, got -1.0"),
    ({"batch_size": 512, "buffer_size": 256}, "algorithm.cfg.batch_size: 512 is larger than buffer_size (256)"),
    ({"tau": 0.0}, "algorithm.cfg.tau: must be in (0, 1], got 0.0"),
    ({"buffer_device": "gpu"}, "algorithm.cfg.buffer_device: expected 'auto', 'cpu', 'cuda' or 'cuda:<index>', got 'gpu'"),
])
def test_bad_sac_settings_are_one_line_config_errors(tmp_path, override, message):
    with pytest.raises(ConfigError) as info:
        validate_config(parse_train_config(sac_config(tmp_path, **override)))
    assert str(info.value) == message


def test_a_replay_buffer_larger_than_memory_is_refused_before_allocating(tmp_path):
    config = sac_config(tmp_path, buffer_size=10**11)  # 110 bytes per state transition: 10 TiB
    result = run_module("embodireward.train", "--config", str(write_json(tmp_path / "big.json", config)))
    assert result.returncode == 2
    assert result.stderr.startswith("error: algorithm.cfg.buffer_size: a replay buffer of 100000000000 transitions (lower buffer_size) "
                                    "needs about 10.0 TiB, but only ")
    assert result.stderr.strip().endswith("of cpu memory is available") and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()  # refused before the run directory was created


def test_policies_and_algorithms_that_do_not_fit_are_rejected(tmp_path):
    config = sac_config(tmp_path)
    config["policy"]["name"] = "actor_critic"
    config["policy"]["cfg"] = {}
    with pytest.raises(ConfigError, match="policy.name: 'actor_critic' lacks rsample, which algorithm 'sac' calls"):
        validate_config(parse_train_config(config))
    config = sac_config(tmp_path)
    config["algorithm"] = {"name": "ppo"}
    with pytest.raises(ConfigError, match="policy.name: 'squashed_gaussian' lacks get_value, evaluate_actions"):
        validate_config(parse_train_config(config))
