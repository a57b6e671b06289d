"""Proximal Policy Optimization (Schulman et al. 2017), clipped-surrogate variant.

The update follows CleanRL's ``ppo_continuous_action.py`` line by line: GAE advantages, per-minibatch
advantage normalisation, clipped policy loss, optionally clipped value loss, entropy bonus, global
gradient-norm clipping and a ``target_kl`` early stop.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Literal, Optional

import gymnasium as gym
import torch
from torch import nn

from embodireward.algos.base import Algorithm, StepFn
from embodireward.algos.gae import compute_gae
from embodireward.algos.rollout_buffer import RolloutBuffer
from embodireward.config import ConfigError, config_error
from embodireward.envs.base import Obs
from embodireward.policies.base import ActorCriticPolicy
from embodireward.registry import register_algo
from embodireward.utils.distributed import all_reduce_mean, data_parallel
from embodireward.utils.memory import check_fits
from embodireward.utils.compile import compile_function
from embodireward.utils.precision import Precision

LOSS_KEYS = ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction")
from embodireward.utils.obs import map_in_chunks, obs_cat, obs_index


@dataclass
class PPOConfig:
    learning_rate: float = 3e-4
    lr_schedule: Literal["constant", "linear"] = "constant"
    num_epochs: int = 4
    num_minibatches: int = 4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_coef: float = 0.2
    clip_value_loss: bool = False
    vf_coef: float = 0.5
    ent_coef: float = 0.0
    max_grad_norm: float = 0.5
    target_kl: Optional[float] = None
    normalize_advantages: bool = True
    adam_eps: float = 1e-5
    # which episode ends GAE bootstraps from V(final_obs): "truncated" (time-limit cuts only; a
    # terminated episode's next value is 0) or "always" (ManiSkill's PPO baseline: a task that
    # terminates on success then values success like staying at the goal, so a dense reward never
    # pays the policy for hovering short of it)
    bootstrap_at_done: Literal["truncated", "always"] = "truncated"

    def validate(self, path: str) -> None:
        for key in ("learning_rate", "num_epochs", "num_minibatches", "clip_coef", "max_grad_norm"):
            if getattr(self, key) <= 0:
                raise config_error(path, key, f"must be > 0, got {getattr(self, key)}")
        for key in ("gamma", "gae_lambda"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise config_error(path, key, f"must be in [0, 1], got {getattr(self, key)}")


@register_algo("ppo")
class PPO(Algorithm):
    """PPO with GAE, clipped surrogate, value clipping, entropy bonus and target-KL early stop."""

    Config = PPOConfig
    policy_methods = ("act", "get_value", "evaluate_actions")

    def __init__(self, cfg: PPOConfig, policy: ActorCriticPolicy, device: torch.device,
                 precision: Optional[Precision] = None, compile: bool = False):
        super().__init__(cfg, policy, device, precision, compile)
        # losses go through forward(): under torchrun DistributedDataParallel averages the gradients;
        # the normaliser pools its statistics over ranks itself, so no per-forward buffer broadcast
        self.train_module: nn.Module = data_parallel(policy, device, broadcast_buffers=False)
        self.optimizer = torch.optim.Adam(policy.parameters(), lr=cfg.learning_rate, eps=cfg.adam_eps)
        self.buffer: Optional[RolloutBuffer] = None
        self.generator = torch.Generator()
        # compiled once: every minibatch has the same shapes, so the graph is reused for the whole run
        self._loss = compile_function(self.minibatch_loss, device) if compile else self.minibatch_loss

    def initialize_buffer(self, num_steps: int, num_envs: int, obs_space: gym.Space, action_space: gym.spaces.Box) -> None:
        batch_size = num_steps * num_envs
        if batch_size < self.cfg.num_minibatches:
            raise ConfigError("algorithm.cfg.num_minibatches", f"{self.cfg.num_minibatches} exceeds the rollout batch of {batch_size} transitions")
        action_dim = int(action_space.shape[0])
        check_fits(RolloutBuffer.estimate_bytes(num_steps, num_envs, obs_space, action_dim), self.device, "runtime.rollout_steps",
                   f"the rollout buffer ({num_steps} steps x {num_envs} envs)")
        self.buffer = RolloutBuffer(num_steps, num_envs, obs_space, action_dim, self.device)

    # -- data collection ----------------------------------------------------------------------
    @torch.no_grad()
    def collect_rollout(self, obs: Obs, num_steps: int, step_env: StepFn) -> Obs:
        self.buffer.clear()
        bootstrap_steps, bootstrap_envs, bootstrap_obs = [], [], []  # episode ends GAE bootstraps from
        for t in range(num_steps):
            with self.precision.autocast():  # the policy samples in float32 from the network's output
                actions, log_probs = self.policy.act(obs)
            next_obs, rewards, terminated, truncated, info = step_env(actions)
            # A time-limit cut is not a real end: bootstrap from the value of the true final obs.
            ends_value = terminated if self.cfg.bootstrap_at_done == "truncated" else torch.zeros_like(terminated)
            cut = (terminated | truncated) & ~ends_value
            if cut.any():
                env_ids = cut.nonzero().flatten()
                bootstrap_steps.append(torch.full_like(env_ids, t))
                bootstrap_envs.append(env_ids)
                bootstrap_obs.append(obs_index(info["final_obs"], env_ids))
            self.buffer.add(obs, actions, log_probs, rewards, ends_value, terminated | truncated)
            obs = next_obs
        # The policy does not change during a rollout, so its values come out the same from a few
        # large batches afterwards as from a critic pass per step, at a fraction of the per-call cost.
        b = self.buffer
        b.values.copy_(self._values(b.observations()).view(b.num_steps, b.num_envs))
        b.bootstrap_values.zero_()
        if bootstrap_obs:
            b.bootstrap_values[torch.cat(bootstrap_steps), torch.cat(bootstrap_envs)] = self._values(obs_cat(bootstrap_obs))
        last_values = self._values(obs)
        # GAE runs in float32 on float32 values: a bf16 sum over 50 steps would lose the small deltas
        b.advantages, b.returns = compute_gae(
            b.rewards, b.values, last_values, b.bootstrap_values, b.terminated, b.dones, self.cfg.gamma, self.cfg.gae_lambda
        )
        return obs

    def _values(self, obs: Obs) -> torch.Tensor:
        """``V(obs)`` (float32) of a flat batch, in chunks that bound the memory of image encoders."""
        with self.precision.autocast():
            return map_in_chunks(self.policy.get_value, obs, chunk=4096).float()

    # -- policy update ------------------------------------------------------------------------
    def learning_rate(self, progress: float) -> float:
        if self.cfg.lr_schedule == "linear":
            return self.cfg.learning_rate * max(1.0 - progress, 0.0)
        return self.cfg.learning_rate

    def minibatch_loss(self, batch: Dict[str, torch.Tensor]) -> tuple:
        """Loss of one minibatch and its statistics ``[policy_loss, value_loss, entropy, approx_kl, clip_fraction]``.

        Only the networks run under autocast; the policy returns float32 log-probs, entropies and
        values, so the ratio, the advantages and every loss term and reduction below are float32:
        ``exp(new - old)`` of bf16 log-probs would be off by ~1% where the clip acts at 20%.
        """
        cfg = self.cfg
        with self.precision.autocast():
            # forward() of the (possibly DDP-wrapped) module, so gradients are synchronised
            new_log_probs, entropy, new_values = self.train_module(batch["obs"], batch["actions"])
        log_ratio = new_log_probs.float() - batch["log_probs"]
        ratio = log_ratio.exp()
        with torch.no_grad():
            approx_kl = ((ratio - 1) - log_ratio).mean()  # k3 estimator (Schulman's blog)
            clip_fraction = ((ratio - 1.0).abs() > cfg.clip_coef).float().mean()

        advantages = batch["advantages"]
        if cfg.normalize_advantages:
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        policy_loss = torch.max(-advantages * ratio, -advantages * torch.clamp(ratio, 1 - cfg.clip_coef, 1 + cfg.clip_coef)).mean()

        new_values = new_values.float()
        if cfg.clip_value_loss:
            values_clipped = batch["values"] + torch.clamp(new_values - batch["values"], -cfg.clip_coef, cfg.clip_coef)
            value_loss = 0.5 * torch.max((new_values - batch["returns"]) ** 2, (values_clipped - batch["returns"]) ** 2).mean()
        else:
            value_loss = 0.5 * ((new_values - batch["returns"]) ** 2).mean()

        entropy_mean = entropy.float().mean()
        loss = policy_loss - cfg.ent_coef * entropy_mean + cfg.vf_coef * value_loss
        stats = torch.stack([policy_loss, value_loss, entropy_mean, approx_kl, clip_fraction]).detach()
        return loss, stats

    def update(self, progress: float) -> Dict[str, float]:
        cfg = self.cfg
        lr = self.learning_rate(progress)
        for group in self.optimizer.param_groups:
            group["lr"] = lr

        totals = torch.zeros(len(LOSS_KEYS), device=self.device)
        num_updates = 0
        stopped_early = False
        for _ in range(cfg.num_epochs):
            for batch in self.buffer.minibatches(cfg.num_minibatches, self.generator):
                loss, stats = self._loss(batch)
                self.optimizer.zero_grad(set_to_none=True)
                self.precision.backward(loss)
                self.precision.step(self.optimizer, self.policy.parameters(), cfg.max_grad_norm)
                num_updates += 1
                totals += stats  # summed on the device: one host transfer per update, not five per minibatch
                # every rank must stop at the same minibatch, so decide on the rank-averaged KL
                if cfg.target_kl is not None and all_reduce_mean(stats[3].clone()).item() > cfg.target_kl:
                    stopped_early = True
                    break
            if stopped_early:
                break

        values, returns = self.buffer.values.flatten(), self.buffer.returns.flatten()
        var_returns = returns.var()
        explained_variance = float("nan") if var_returns == 0 else (1 - (returns - values).var() / var_returns).item()
        # Fold this rollout into the observation statistics only now, so that the rollout and the
        # update used identical normalisation (the first PPO ratio is exactly 1).
        self.policy.update_normalizer(self.buffer.observations())

        metrics = dict(zip(LOSS_KEYS, (totals / max(num_updates, 1)).tolist()))
        metrics["explained_variance"] = explained_variance
        # one all-reduce, so rank 0 logs the average over ranks rather than its own share's numbers
        metrics = dict(zip(metrics, all_reduce_mean(torch.tensor(list(metrics.values()), dtype=torch.float64)).tolist()))
        metrics.update(learning_rate=lr, num_minibatch_updates=float(num_updates), **self.policy.metrics())
        return metrics

    # -- checkpointing ------------------------------------------------------------------------
    def state_dict(self) -> Dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict(), "generator": self.generator.get_state()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
