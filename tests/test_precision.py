"""runtime.precision and runtime.compile: the PPO update gives fp32's numbers within stated
tolerances on a fixed batch, compiles once per run, and bad values are config errors."""
from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import pytest
import torch

from embodireward.algos.ppo import PPO, PPOConfig
from embodireward.config import ConfigError, NetworkConfig, PolicySection, parse_train_config
from embodireward.policies.actor_critic import ActorCritic
from embodireward.utils.precision import Precision, resolve_precision

OBS_DIM, ACTION_DIM, STEPS, ENVS = 12, 2, 8, 64


def filled_ppo(precision: str = "fp32", compile: bool = False, seed: int = 0) -> PPO:
    """A PPO with a 2x256 actor-critic and a rollout buffer full of fixed random data."""
    torch.manual_seed(seed)
    section = PolicySection(actor=NetworkConfig(hidden_sizes=[256, 256]), critic=NetworkConfig(hidden_sizes=[256, 256]))
    obs_space = gym.spaces.Box(-np.inf, np.inf, (OBS_DIM,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)
    policy = ActorCritic(section, obs_space, action_space)
    device = torch.device("cpu")
    ppo = PPO(PPOConfig(num_epochs=1, num_minibatches=4), policy, device, Precision(precision, device), compile)
    ppo.initialize_buffer(STEPS, ENVS, obs_space, action_space)
    generator = torch.Generator().manual_seed(123)
    b = ppo.buffer
    b.obs.copy_(torch.randn(STEPS, ENVS, OBS_DIM, generator=generator))
    b.actions.copy_(torch.randn(STEPS, ENVS, ACTION_DIM, generator=generator).clamp(-1, 1))
    with torch.no_grad():
        log_probs, _, values = policy.evaluate_actions(b.observations(), b.actions.flatten(0, 1))
    b.log_probs.copy_(log_probs.view(STEPS, ENVS) + 0.05 * torch.randn(STEPS, ENVS, generator=generator))
    b.values.copy_(values.view(STEPS, ENVS))
    b.advantages.copy_(torch.randn(STEPS, ENVS, generator=generator))
    b.returns.copy_(b.values + b.advantages)
    b.step = STEPS
    return ppo


def loss_and_grads(ppo: PPO):
    batch = next(ppo.buffer.minibatches(1, torch.Generator().manual_seed(0)))
    ppo.policy.zero_grad(set_to_none=True)
    loss, stats = ppo._loss(batch)
    ppo.precision.backward(loss)
    grads = torch.cat([p.grad.flatten() for p in ppo.policy.parameters() if p.grad is not None])
    return loss.detach(), stats, grads


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a, b, dim=0))


def test_bf16_update_matches_fp32_within_tolerance():
    loss32, stats32, grads32 = loss_and_grads(filled_ppo("fp32"))
    loss16, stats16, grads16 = loss_and_grads(filled_ppo("bf16"))
    assert loss16.dtype == torch.float32 and stats16.dtype == torch.float32  # reductions stay float32
    # bf16 keeps 8 bits of mantissa: the loss to 1e-2, the gradient's direction to 0.999
    assert torch.allclose(loss16, loss32, rtol=1e-2, atol=1e-2), (loss16, loss32)
    assert torch.allclose(stats16, stats32, rtol=5e-2, atol=5e-3), (stats16, stats32)
    assert cosine(grads16, grads32) > 0.999
    assert torch.allclose(grads16.norm(), grads32.norm(), rtol=2e-2)


def test_fp16_update_scales_the_loss_and_steps():
    ppo = filled_ppo("fp16")
    assert ppo.precision.scaler is not None
    before = [p.detach().clone() for p in ppo.policy.parameters()]
    metrics = ppo.update(progress=0.0)
    assert np.isfinite(metrics["policy_loss"]) and metrics["num_minibatch_updates"] == 4
    assert any(not torch.equal(a, b) for a, b in zip(before, ppo.policy.parameters()))


def test_compiled_update_matches_eager_and_compiles_once():
    from torch._dynamo.utils import counters

    loss_eager, stats_eager, grads_eager = loss_and_grads(filled_ppo("fp32"))
    torch._dynamo.reset()
    counters.clear()
    compiled = filled_ppo("fp32", compile=True)
    loss_compiled, stats_compiled, grads_compiled = loss_and_grads(compiled)
    assert torch.allclose(loss_compiled, loss_eager, rtol=1e-5, atol=1e-6)
    assert torch.allclose(stats_compiled, stats_eager, rtol=1e-4, atol=1e-6)
    assert torch.allclose(grads_compiled, grads_eager, rtol=1e-4, atol=1e-6)
    compiled.update(progress=0.0)  # the first update may still specialise (e.g. on the grad mode)
    graphs = counters["stats"]["unique_graphs"]
    assert graphs >= 1
    for iteration in range(3):  # later iterations (new data, new learning rates) reuse the graphs
        compiled.update(progress=(iteration + 1) / 4)
    assert counters["stats"]["unique_graphs"] == graphs


def test_auto_precision_follows_the_hardware():
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) in ("bf16", "fp32")
    assert resolve_precision("fp16", cpu) == "fp16"
    assert Precision("fp32", cpu).dtype is None and Precision("bf16", cpu).dtype == torch.bfloat16


@pytest.mark.parametrize("key, value, expected", [
    ("precision", "fp8", "runtime.precision: expected one of 'auto', 'fp32', 'bf16', 'fp16', got 'fp8'"),
    ("precision", 16, "runtime.precision: expected one of"),
    ("compile", "yes", "runtime.compile: expected a boolean, got 'yes'"),
])
def test_bad_precision_and_compile_values_are_config_errors(tiny_config, key, value, expected):
    config = copy.deepcopy(tiny_config)
    config["runtime"][key] = value
    with pytest.raises(ConfigError) as error:
        parse_train_config(config)
    assert str(error.value).startswith(expected)
