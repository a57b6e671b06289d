"""Soft Actor-Critic (Haarnoja et al. 2018, "SAC: Algorithms and Applications", v2: automatic temperature).

The update follows CleanRL's ``sac_continuous_action.py``: twin Q critics with clipped double-Q
targets from Polyak-averaged target critics, a reparameterised tanh-Gaussian actor, delayed actor
updates (``policy_frequency``, compensated by as many actor steps) and temperature tuning towards
the target entropy ``-action_dim``. Each iteration adds ``rollout_steps x num_envs`` transitions to
the replay buffer and then makes ``utd`` gradient steps per transition collected; the first
``learning_starts`` transitions use uniformly random actions and trigger no update.
"""
from __future__ import annotations

import copy
import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Dict, Iterable, Iterator, List, Literal, Optional

import gymnasium as gym
import torch
from torch import nn

from embodireward.algos.base import Algorithm, StepFn
from embodireward.algos.replay_buffer import ReplayBuffer, check_fits
from embodireward.config import ConfigError, config_error
from embodireward.envs.base import Obs
from embodireward.policies.base import ActorQPolicy
from embodireward.registry import register_algo
from embodireward.utils.distributed import all_reduce_mean, average_gradients, broadcast_module, world_size
from embodireward.utils.obs import obs_batch_size, obs_to
from embodireward.utils.precision import Precision, full_precision


@dataclass
class SACConfig:
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    alpha_lr: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005  # Polyak coefficient of the target critics
    batch_size: int = 256
    buffer_size: int = 1_000_000  # transitions kept per rank
    buffer_device: str = "auto"  # where the replay buffer lives: "auto" (the training device), "cpu", "cuda[:i]"
    utd: float = 0.5  # update-to-data ratio: gradient steps per env transition collected (per rank)
    learning_starts: int = 5_000  # env transitions (all ranks) collected with uniform random actions before learning
    policy_frequency: int = 1  # actor (and alpha) updated every this many gradient steps, this many times
    target_network_frequency: int = 1  # Polyak update every this many gradient steps
    init_alpha: float = 1.0  # the entropy temperature (fixed when autotune is false)
    autotune: bool = True  # tune alpha so that the policy's entropy tracks -action_dim
    # "truncated": bootstrap only past time-limit cuts; "always": past every episode end (ManiSkill's SAC)
    bootstrap_at_done: Literal["truncated", "always"] = "truncated"
    save_replay_buffer: bool = False  # put the buffer in checkpoints, so a resume continues exactly

    def validate(self, path: str) -> None:
        for key in ("actor_lr", "critic_lr", "alpha_lr", "utd", "init_alpha"):
            if not getattr(self, key) > 0:
                raise config_error(path, key, f"must be > 0, got {getattr(self, key)}")
        for key in ("batch_size", "buffer_size", "policy_frequency", "target_network_frequency"):
            if getattr(self, key) < 1:
                raise config_error(path, key, f"must be >= 1, got {getattr(self, key)}")
        if not 0.0 <= self.gamma <= 1.0:
            raise config_error(path, "gamma", f"must be in [0, 1], got {self.gamma}")
        if not 0.0 < self.tau <= 1.0:
            raise config_error(path, "tau", f"must be in (0, 1], got {self.tau}")
        if self.learning_starts < 0:
            raise config_error(path, "learning_starts", f"must be >= 0, got {self.learning_starts}")
        if self.batch_size > self.buffer_size:
            raise config_error(path, "batch_size", f"{self.batch_size} is larger than buffer_size ({self.buffer_size})")
        device = self.buffer_device
        if not (device in ("auto", "cpu", "cuda") or (device.startswith("cuda:") and device[5:].isdigit())):
            raise config_error(path, "buffer_device", f"expected 'auto', 'cpu', 'cuda' or 'cuda:<index>', got {device!r}")


# -- the losses (SAC paper v2, section 5; twin critics as in TD3 / CleanRL) ------------------------
def soft_q_target(rewards: torch.Tensor, terminated: torch.Tensor, next_q1: torch.Tensor, next_q2: torch.Tensor,
                  next_log_prob: torch.Tensor, alpha: torch.Tensor, gamma: float, bootstrap_at_done: str) -> torch.Tensor:
    """y = r + gamma * (1 - d) * (min(Q1', Q2')(s', a') - alpha * log pi(a'|s')),  a' ~ pi(.|s').

    ``Q'`` are the target critics; the bracket is the soft value V(s') (paper eq. 3). ``d`` is
    ``terminated`` under ``bootstrap_at_done: truncated`` and 0 under ``always``; a truncated
    episode always bootstraps from its true final observation s'.
    """
    # float32: the target is a difference of large Q values and a small entropy term, which bf16 would round away
    with full_precision():
        done = terminated.float() if bootstrap_at_done == "truncated" else torch.zeros_like(rewards, dtype=torch.float32)
        soft_value = torch.min(next_q1, next_q2).float() - alpha * next_log_prob.float()
        return rewards.float() + gamma * (1.0 - done) * soft_value


def critic_loss(q1: torch.Tensor, q2: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """J_Q = mean (Q1(s, a) - y)^2 + mean (Q2(s, a) - y)^2 (paper eq. 5 without its 1/2, as CleanRL)."""
    # float32 reduction: the mean of many squared errors accumulates rounding in bf16
    with full_precision():
        return ((q1.float() - target) ** 2).mean() + ((q2.float() - target) ** 2).mean()


def actor_loss(log_prob: torch.Tensor, q1: torch.Tensor, q2: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """J_pi = mean [alpha * log pi(a~|s) - min(Q1, Q2)(s, a~)],  a~ = f(eps; s) reparameterised (paper eq. 7, 12)."""
    with full_precision():  # float32 reduction, and log pi is float32 already
        return (alpha * log_prob - torch.min(q1, q2).float()).mean()


def alpha_loss(log_alpha: torch.Tensor, log_prob: torch.Tensor, target_entropy: float) -> torch.Tensor:
    """J(alpha) = mean [-alpha * (log pi(a|s) + H_target)] (paper eq. 18; CleanRL's form with alpha = exp(log_alpha)).

    Its gradient raises alpha while the entropy -log pi is below the target and lowers it above.
    """
    with full_precision():  # a tiny scalar gradient: keep it float32
        return (-log_alpha.exp() * (log_prob.detach().float() + target_entropy)).mean()


@torch.no_grad()
def polyak_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """theta' <- tau * theta + (1 - tau) * theta' for every parameter."""
    torch._foreach_lerp_(list(target.parameters()), list(source.parameters()), tau)


@contextmanager
def frozen(params: List[nn.Parameter]) -> Iterator[None]:
    """No parameter gradients inside the block (the actor loss needs none for the critics)."""
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


@register_algo("sac")
class SAC(Algorithm):
    """SAC with twin Q critics, target critics, automatic entropy tuning and a replay buffer."""

    Config = SACConfig
    policy_methods = ("act", "normalize_obs", "rsample")
    resume_only_state = ("replay_buffer",)

    def __init__(self, cfg: SACConfig, policy: ActorQPolicy, device: torch.device,
                 precision: Optional[Precision] = None, compile: bool = False):
        super().__init__(cfg, policy, device, precision, compile)
        broadcast_module(policy)  # every rank starts from rank 0's weights; gradients are averaged below
        self.actor_params = list(policy.actor.parameters())
        self.critic_params = list(policy.critic.parameters())
        self.critic_target = copy.deepcopy(policy.critic).requires_grad_(False)
        self._target_synced = False  # copied from the critic at the first update, after any init_from
        self.log_alpha = torch.tensor(math.log(cfg.init_alpha), device=device, requires_grad=True)
        self.actor_optimizer = torch.optim.Adam(self.actor_params, lr=cfg.actor_lr)
        self.critic_optimizer = torch.optim.Adam(self.critic_params, lr=cfg.critic_lr)
        self.alpha_optimizer = torch.optim.Adam([self.log_alpha], lr=cfg.alpha_lr)
        self.generator = torch.Generator().manual_seed(int(torch.randint(2**62, ())))  # seeded per rank by the trainer
        self.buffer: Optional[ReplayBuffer] = None
        self.collected = 0  # transitions this rank has added
        self.seen = 0  # of them, those counted by the last update
        self.pending_steps = 0.0  # fractional gradient steps carried to the next update
        self.gradient_steps = 0

    def initialize_buffer(self, num_steps: int, num_envs: int, obs_space: gym.Space, action_space: gym.spaces.Box) -> None:
        from embodireward.builder import resolve_device

        cfg = self.cfg
        if cfg.buffer_size < num_envs:
            raise ConfigError("algorithm.cfg.buffer_size", f"{cfg.buffer_size} is smaller than one step of the {num_envs} envs")
        device = self.device if cfg.buffer_device == "auto" else resolve_device(cfg.buffer_device, "algorithm.cfg.buffer_device")
        action_dim = int(action_space.shape[0])
        check_fits(cfg.buffer_size, obs_space, action_dim, device)
        self.buffer = ReplayBuffer(cfg.buffer_size, obs_space, action_dim, device)
        self.action_low = torch.as_tensor(action_space.low, dtype=torch.float32, device=self.device)
        self.action_high = torch.as_tensor(action_space.high, dtype=torch.float32, device=self.device)
        self.target_entropy = -float(action_dim)

    # -- data collection ----------------------------------------------------------------------
    @property
    def learning_started(self) -> bool:
        return self.collected * world_size() >= self.cfg.learning_starts

    @torch.no_grad()
    def collect_rollout(self, obs: Obs, num_steps: int, step_env: StepFn) -> Obs:
        num_envs = obs_batch_size(obs)
        for _ in range(num_steps):
            if self.learning_started:
                with self.precision.autocast():
                    actions, _ = self.policy.act(obs)
            else:
                uniform = torch.rand(num_envs, len(self.action_low), device=self.device)
                actions = self.action_low + (self.action_high - self.action_low) * uniform
            next_obs, rewards, terminated, truncated, info = step_env(actions)
            # info["final_obs"] is next_obs except at episode ends, where it is the true terminal observation
            self.buffer.add(obs, actions, rewards, info["final_obs"], terminated, truncated)
            self.collected += num_envs
            obs = next_obs
        self.policy.update_normalizer(obs_to(self.buffer.recent_obs(num_steps * num_envs), self.device))
        return obs

    # -- update -------------------------------------------------------------------------------
    def update(self, progress: float) -> Dict[str, float]:
        cfg = self.cfg
        # utd gradient steps per transition collected since learning started, fractions carried over
        start = max(self.seen, math.ceil(cfg.learning_starts / world_size()))
        self.pending_steps += cfg.utd * max(0, self.collected - start)
        self.seen = self.collected
        if len(self.buffer) < cfg.batch_size:  # e.g. resumed without the saved buffer: nothing to learn from yet
            self.pending_steps = 0.0
        num_steps = int(self.pending_steps + 1e-9)  # the epsilon keeps 0.29 x 100 (28.999...) from rounding down to 28
        self.pending_steps -= num_steps
        if num_steps == 0:
            return {"gradient_steps": 0.0}
        if not self._target_synced:
            self.critic_target.load_state_dict(self.policy.critic.state_dict())
            self._target_synced = True
        history: Dict[str, List[torch.Tensor]] = {}
        for _ in range(num_steps):
            for key, value in self._gradient_step().items():
                history.setdefault(key, []).append(value)
        # one host sync for the whole update: stack, average over steps, then over ranks
        means = torch.stack([torch.stack(values).mean() for values in history.values()]).double()
        metrics = dict(zip(history, all_reduce_mean(means).tolist()))
        metrics["gradient_steps"] = float(num_steps)
        return metrics

    def _optimize(self, optimizer: torch.optim.Optimizer, loss: torch.Tensor, params: Iterable[nn.Parameter]) -> None:
        optimizer.zero_grad(set_to_none=True)
        self.precision.backward(loss)
        average_gradients(params)  # each rank sampled its own buffer: the step uses the mean gradient
        self.precision.step(optimizer)

    def _gradient_step(self) -> Dict[str, torch.Tensor]:
        cfg, policy = self.cfg, self.policy
        batch = self.buffer.sample(cfg.batch_size, self.generator, self.device)
        obs, next_obs = policy.normalize_obs(batch["obs"]), policy.normalize_obs(batch["next_obs"])
        alpha = self.log_alpha.detach().exp()

        with torch.no_grad(), self.precision.autocast():
            next_actions, next_log_prob = policy.rsample(next_obs)
            next_q1, next_q2 = self.critic_target(next_obs, next_actions)
        target = soft_q_target(batch["rewards"], batch["terminated"], next_q1, next_q2, next_log_prob, alpha,
                               cfg.gamma, cfg.bootstrap_at_done)
        with self.precision.autocast():
            q1, q2 = policy.critic(obs, batch["actions"])
        qf_loss = critic_loss(q1, q2, target)
        self._optimize(self.critic_optimizer, qf_loss, self.critic_params)
        self.gradient_steps += 1
        metrics = {"qf_loss": qf_loss.detach(), "q_values": (q1.detach().float().mean() + q2.detach().float().mean()) / 2}

        if self.gradient_steps % cfg.policy_frequency == 0:
            for _ in range(cfg.policy_frequency):  # TD3-style delay, compensated by as many actor steps
                with self.precision.autocast(), frozen(self.critic_params):
                    actions, log_prob = policy.rsample(obs)
                    pi_loss = actor_loss(log_prob, *policy.critic(obs, actions), alpha)
                self._optimize(self.actor_optimizer, pi_loss, self.actor_params)
                metrics.update(actor_loss=pi_loss.detach(), entropy=-log_prob.detach().mean())
                if cfg.autotune:
                    temperature_loss = alpha_loss(self.log_alpha, log_prob, self.target_entropy)
                    self._optimize(self.alpha_optimizer, temperature_loss, [self.log_alpha])
                    alpha = self.log_alpha.detach().exp()
                    metrics["alpha_loss"] = temperature_loss.detach()
        if self.gradient_steps % cfg.target_network_frequency == 0:
            polyak_update(self.critic_target, policy.critic, cfg.tau)
        metrics["alpha"] = alpha
        return metrics

    # -- checkpointing ------------------------------------------------------------------------
    def state_dict(self) -> Dict[str, Any]:
        state = {"critic_target": self.critic_target.state_dict(), "log_alpha": self.log_alpha.detach().clone(),
                 "actor_optimizer": self.actor_optimizer.state_dict(), "critic_optimizer": self.critic_optimizer.state_dict(),
                 "alpha_optimizer": self.alpha_optimizer.state_dict(), "generator": self.generator.get_state(),
                 "collected": self.collected, "seen": self.seen, "pending_steps": self.pending_steps,
                 "gradient_steps": self.gradient_steps, "target_synced": self._target_synced,
                 "precision": self.precision.state_dict()}
        if self.cfg.save_replay_buffer:
            state["replay_buffer"] = self.buffer.state_dict()
        return state

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.critic_target.load_state_dict(state["critic_target"])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        for name in ("actor_optimizer", "critic_optimizer", "alpha_optimizer"):
            getattr(self, name).load_state_dict(state[name])
        self.generator.set_state(state["generator"])
        self.collected, self.seen, self.gradient_steps = int(state["collected"]), int(state["seen"]), int(state["gradient_steps"])
        self.pending_steps, self._target_synced = float(state["pending_steps"]), bool(state["target_synced"])
        self.precision.load_state_dict(state["precision"])
        if "replay_buffer" in state:
            self.buffer.load_state_dict(state["replay_buffer"])
