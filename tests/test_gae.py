import torch

from embodireward.algos.gae import compute_gae


def test_gae_bootstraps_truncation_but_not_termination():
    gamma, lam = 0.9, 0.5
    # one env, 4 steps: step 1 is a time-limit truncation, step 3 a true termination
    rewards = torch.tensor([[1.0], [2.0], [0.5], [3.0]])
    values = torch.tensor([[0.4], [0.6], [0.2], [0.8]])
    last_values = torch.tensor([5.0])  # must be ignored: the last step terminated
    bootstrap = torch.tensor([[0.0], [7.0], [0.0], [0.0]])  # V(final obs) of the truncated episode
    terminated = torch.tensor([[False], [False], [False], [True]])
    dones = torch.tensor([[False], [True], [False], [True]])
    adv, ret = compute_gae(rewards, values, last_values, bootstrap, terminated, dones, gamma, lam)

    # by hand, backwards
    d3 = 3.0 - 0.8                     # terminated: no bootstrap
    a3 = d3
    d2 = 0.5 + gamma * 0.8 - 0.2
    a2 = d2 + gamma * lam * a3
    d1 = 2.0 + gamma * 7.0 - 0.6       # truncated: bootstrap from V(final obs), chain cut
    a1 = d1
    d0 = 1.0 + gamma * 0.6 - 0.4
    a0 = d0 + gamma * lam * a1
    expected = torch.tensor([[a0], [a1], [a2], [a3]])
    assert torch.allclose(adv, expected, atol=1e-6)
    assert torch.allclose(ret, expected + values, atol=1e-6)


def test_gae_uses_last_values_for_an_unfinished_episode():
    rewards = torch.zeros(2, 1)
    values = torch.zeros(2, 1)
    none = torch.zeros(2, 1, dtype=torch.bool)
    adv, _ = compute_gae(rewards, values, torch.tensor([10.0]), torch.zeros(2, 1), none, none, gamma=0.5, gae_lambda=1.0)
    assert torch.allclose(adv, torch.tensor([[2.5], [5.0]]))


def _rollout_with_one_termination(bootstrap_at_done):
    """PPO collects 3 steps of one env whose episode terminates at step 1; returns its buffer."""
    import gymnasium as gym

    from embodireward.algos.ppo import PPO, PPOConfig
    from embodireward.config import NetworkConfig, PolicySection
    from embodireward.policies.actor_critic import ActorCritic

    obs_space = gym.spaces.Box(-1.0, 1.0, (2,))
    action_space = gym.spaces.Box(-1.0, 1.0, (1,))
    torch.manual_seed(0)
    policy = ActorCritic(PolicySection(actor=NetworkConfig(hidden_sizes=[4]), critic=NetworkConfig(hidden_sizes=[4])), obs_space, action_space)
    ppo = PPO(PPOConfig(num_minibatches=1, gamma=0.9, bootstrap_at_done=bootstrap_at_done), policy, torch.device("cpu"))
    ppo.initialize_buffer(3, 1, obs_space, action_space)
    final_obs = torch.tensor([[0.5, -0.5]])
    no = torch.tensor([False])

    def step_env(actions, steps=iter(range(3))):
        t = next(steps)
        next_obs = torch.tensor([[0.1 * (t + 1), 0.0]])  # distinct observations, so values differ per step
        ended = torch.tensor([t == 1])
        return next_obs, torch.ones(1), ended, no, {"final_obs": final_obs if ended else next_obs}

    ppo.collect_rollout(torch.zeros(1, 2), 3, step_env)
    # values are computed in one batch after the rollout: V(s_t) of the stored observations
    assert torch.allclose(ppo.buffer.values, policy.get_value(ppo.buffer.observations()).view(3, 1))
    return ppo.buffer, policy.get_value(final_obs)


def test_ppo_bootstraps_terminated_episodes_only_when_asked():
    buffer, _ = _rollout_with_one_termination("truncated")
    assert buffer.terminated[:, 0].tolist() == [False, True, False]
    assert buffer.bootstrap_values[1, 0] == 0

    buffer, final_value = _rollout_with_one_termination("always")  # ManiSkill's baseline
    assert buffer.terminated[:, 0].tolist() == [False, False, False]
    assert buffer.dones[:, 0].tolist() == [False, True, False]
    assert torch.allclose(buffer.bootstrap_values[1], final_value) and final_value.abs().item() > 0
    # the advantage at the end step uses r + gamma * V(final_obs): the lambda-chain stops there
    expected = 1.0 + 0.9 * final_value - buffer.values[1]
    assert torch.allclose(buffer.advantages[1], expected, atol=1e-6)

