"""The top-level sections of a training config: ``runtime``, ``env``, ``policy``, ``algorithm``,
``callbacks``, ``reward``, ``plugins``. A component's own ``cfg`` block is parsed later, into the
``Config`` dataclass the component declares, once plugins are loaded."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Literal, Optional

from embodireward.config.parsing import ConfigError, config_error, join_path
from embodireward.registry import closest_name




@dataclass
class RuntimeConfig:
    exp_name: str = "experiment"
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:i
    iterations: int = 100
    rollout_steps: int = 32  # env steps per env per iteration
    eval_freq: int = 10  # iterations between evaluations; 0 disables
    eval_episodes: int = 64
    save_freq: int = 50  # iterations between periodic checkpoints; 0 keeps only latest/best
    log_freq: int = 1  # iterations between scalar logs
    use_wandb: bool = False
    wandb_project_name: str = "embodireward"
    output_dir: str = "outputs"
    run_dir: Optional[str] = None  # exact run directory (used by pipelines); default <output_dir>/<exp_name>_<timestamp>
    resume: Optional[str] = None  # run dir or checkpoint file to continue
    init_from: Optional[str] = None  # checkpoint whose policy weights start a new run
    record_video: bool = False
    video_episodes: int = 1
    num_threads: int = 0  # torch intra-op threads; 0 keeps torch's default
    # threads while collecting rollouts; 0: num_threads. 1 suits envs that simulate in worker
    # processes: small per-step batches gain nothing from threads, whose spinning takes the workers' cores
    rollout_threads: int = 0
    # compute type of updates and inference (utils.precision). "auto" = bf16 where the device computes
    # it natively (AVX512-BF16/AMX CPUs, CUDA GPUs with bf16), else fp32: 1.59x the PPO loop on this
    # CPU with unchanged learning (docs/benchmarks.md, Speed)
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    compile: bool = False  # torch.compile the update and inference
    progress_bar: bool = True

    def validate(self, path: str) -> None:
        dev = self.device
        if not (dev in ("auto", "cpu", "cuda") or (dev.startswith("cuda:") and dev[5:].isdigit())):
            raise config_error(path, "device", f"expected 'auto', 'cpu', 'cuda' or 'cuda:<index>', got {dev!r}")
        for key in ("iterations", "rollout_steps"):
            if getattr(self, key) < 1:
                raise config_error(path, key, f"must be >= 1, got {getattr(self, key)}")
        for key in ("eval_freq", "save_freq", "eval_episodes", "log_freq", "num_threads", "rollout_threads"):
            if getattr(self, key) < 0:
                raise config_error(path, key, f"must be >= 0, got {getattr(self, key)}")
        if self.resume and self.init_from:
            raise config_error(path, "init_from", "cannot be combined with runtime.resume (resume restores everything)")


@dataclass
class EnvSection:
    id: str
    cfg: Dict[str, Any] = field(default_factory=dict)
    eval_env: Optional[Dict[str, Any]] = None  # cfg keys overriding ``cfg`` for the eval env


@dataclass
class NetworkConfig:
    """A network block: ``{"type": "mlp", "hidden_sizes": [...], "activation": "tanh"}`` or a CNN."""

    type: Literal["mlp", "cnn"] = "mlp"
    hidden_sizes: List[int] = field(default_factory=lambda: [256, 256])
    activation: str = "tanh"
    # cnn only: conv layers as [out_channels, kernel, stride]; an MLP of ``hidden_sizes`` follows
    conv_layers: List[List[int]] = field(default_factory=lambda: [[32, 8, 4], [64, 4, 2], [64, 3, 1]])
    image_key: str = "rgb"  # which observation entry a CNN reads
    state_key: Optional[str] = "state"  # concatenated after the CNN features when present

    def validate(self, path: str) -> None:
        from embodireward.policies.networks import ACTIVATIONS

        if self.activation not in ACTIVATIONS:
            hint = closest_name(self.activation, ACTIVATIONS)
            extra = f" (did you mean '{hint}'?)" if hint else ""
            raise config_error(path, "activation", f"unknown activation {self.activation!r}{extra}; expected one of: {', '.join(ACTIVATIONS)}")
        for i, layer in enumerate(self.conv_layers):
            if len(layer) != 3 or min(layer) < 1:
                raise ConfigError(f"{join_path(path, 'conv_layers')}[{i}]", "expected [out_channels, kernel, stride] of positive integers")


@dataclass
class PolicySection:
    name: str = "actor_critic"
    cfg: Dict[str, Any] = field(default_factory=dict)
    actor: Optional[NetworkConfig] = None
    critic: Optional[NetworkConfig] = None


@dataclass
class ComponentSection:
    name: str
    cfg: Dict[str, Any] = field(default_factory=dict)


@dataclass
class RefreshSection:
    """Online refresh of the learned reward during training (``embodireward.rewards.refresh``)."""

    every: int = 10  # iterations between refreshes; 0: only on drift
    # also refresh when an iteration's predicted and true success rates differ by more than this
    # (needs the env's success signal); None: on schedule only
    drift_threshold: Optional[float] = None
    labeller: ComponentSection = field(default_factory=lambda: ComponentSection(name="env_success"))
    label_budget: Optional[int] = 500  # labels a budgeted labeller (env_success, queue) may give in the run; None: no limit
    frames_per_refresh: int = 100  # frames sent to the labeller at each refresh
    confident_fraction: float = 0.5  # of those, the share the model is most sure are successes; the rest a random sample
    # which frames that share is: "highest" P(success), or a "uniform" sample of the frames the model
    # predicts successes (labels go where the learned reward pays most often)
    confident_selection: Literal["highest", "uniform"] = "highest"
    pool_size: int = 1024  # random frames kept between refreshes (sampled uniformly from all scored frames)
    steps: int = 100  # fine-tuning gradient steps per refresh
    batch_size: int = 64
    new_fraction: float = 0.5  # share of each fine-tuning batch drawn from the refresh labels, the rest from the original data
    lr: float = 1e-4
    val_split: float = 0.2  # refresh trajectories held out (by a hash of their id, so a frame never changes side)
    min_new_labels: int = 1  # fine-tune only once this many new labels have arrived
    data_dir: str = "{run_dir}/refresh_data"  # the labelled frames, a reward-data directory ({run_dir} is replaced)

    def validate(self, path: str) -> None:
        for key in ("every", "min_new_labels"):
            if getattr(self, key) < 0:
                raise config_error(path, key, f"must be >= 0, got {getattr(self, key)}")
        for key in ("frames_per_refresh", "pool_size", "steps", "batch_size"):
            if getattr(self, key) < 1:
                raise config_error(path, key, f"must be >= 1, got {getattr(self, key)}")
        if self.every == 0 and self.drift_threshold is None:
            raise config_error(path, "every", "is 0 and drift_threshold is null: the model would never be refreshed")
        if self.drift_threshold is not None and not 0.0 < self.drift_threshold <= 1.0:
            raise config_error(path, "drift_threshold", f"must be in (0, 1], got {self.drift_threshold}")
        if self.label_budget is not None and self.label_budget < 0:
            raise config_error(path, "label_budget", f"must be >= 0 or null, got {self.label_budget}")
        for key in ("confident_fraction", "new_fraction"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise config_error(path, key, f"must be in [0, 1], got {getattr(self, key)}")
        if not 0.0 < self.val_split < 1.0:
            raise config_error(path, "val_split", f"must be in (0, 1), got {self.val_split}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise config_error(path, "lr", f"must be a finite number > 0, got {self.lr}")


@dataclass
class RewardSection:
    """The reward-model hook (see ``embodireward.rewards.hook``)."""

    use_reward_model: bool = False
    name: str = "resnet_reward"
    checkpoint_path: Optional[str] = None
    reward_mode: Literal["terminal", "per_step"] = "terminal"
    combine_mode: Literal["replace", "add", "weighted"] = "replace"
    reward_weight: float = 1.0
    env_reward_weight: float = 0.0
    threshold: Optional[float] = None  # None: the checkpoint's recommended threshold, else 0.5
    use_soft_reward: bool = False  # binary: fail + p (success - fail); K classes: expected class reward
    success_reward: float = 1.0
    fail_reward: float = 0.0
    class_rewards: Optional[List[float]] = None  # K-class models: one reward per class (success last), e.g. [0, 0.5, 1]
    # frames per reward-model forward pass: bounds peak memory; on CPU larger batches run faster
    # (resnet10 at 64x64: 1024 frames in one pass take ~25% less time than 4 passes of 256)
    batch_size: int = 1024
    debug_save_dir: Optional[str] = None
    debug_save_max: int = 1000
    refresh: Optional[RefreshSection] = None  # None: the model stays as trained

    def validate(self, path: str) -> None:
        if self.refresh is not None and not self.use_reward_model:
            raise config_error(path, "refresh", "needs use_reward_model: true (there is no model to refresh)")
        if self.use_reward_model and not self.checkpoint_path:
            raise config_error(path, "checkpoint_path", "required when use_reward_model is true")
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise config_error(path, "threshold", f"must be in [0, 1], got {self.threshold}")
        if self.batch_size < 1:
            raise config_error(path, "batch_size", f"must be >= 1, got {self.batch_size}")


@dataclass
class TrainConfig:
    env: EnvSection  # the one required section: which env to train on
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    plugins: List[str] = field(default_factory=list)
    policy: PolicySection = field(default_factory=PolicySection)
    algorithm: ComponentSection = field(default_factory=lambda: ComponentSection(name="ppo"))
    callbacks: List[ComponentSection] = field(default_factory=list)
    reward: RewardSection = field(default_factory=RewardSection)
