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
