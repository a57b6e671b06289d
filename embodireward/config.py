"""Typed configuration: JSON -> dataclasses, with one-line errors that name the JSON path.

Top-level sections (``runtime``, ``env``, ``policy``, ``algorithm``, ``callbacks``, ``reward``,
``plugins``) are parsed here. Each registered component may declare a ``Config`` dataclass; its
``cfg`` block is parsed into that dataclass by :func:`parse_dataclass` once plugins are loaded.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional, Union

from embodireward.registry import closest_name


class ConfigError(ValueError):
    """Invalid configuration. ``str()`` is one line: ``<json.path>: <what is wrong>``."""

    def __init__(self, path: str, message: str):
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


def join_path(path: str, key: str) -> str:
    """``env.cfg`` + ``num_envs`` -> ``env.cfg.num_envs`` (just ``key`` at the top level)."""
    return f"{path}.{key}" if path else key


def config_error(path: str, key: str, message: str) -> ConfigError:
    """A :class:`ConfigError` for ``key`` of the section at ``path``; ``raise config_error(...)``."""
    return ConfigError(join_path(path, key), message)


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(v) for v in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin in (list, List):
        (inner,) = typing.get_args(tp) or (Any,)
        return f"list of {_type_name(inner)}"
    if origin in (dict, Dict):
        return "object"
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return "object"
    return {float: "number", int: "integer", str: "string", bool: "boolean"}.get(tp, getattr(tp, "__name__", str(tp)))


def _describe_value(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def parse_value(tp: Any, value: Any, path: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and convert it (nested dataclasses included)."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return parse_value(arg, value, path)
            except ConfigError as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        raise ConfigError(path, f"expected {_type_name(tp)}, got {_describe_value(value)}")
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed or isinstance(value, bool) != any(isinstance(a, bool) for a in allowed if a == value):
            hint = closest_name(str(value), [str(a) for a in allowed]) if isinstance(value, str) else None
            extra = f" (did you mean '{hint}'?)" if hint else ""
            raise ConfigError(path, f"expected one of {', '.join(repr(a) for a in allowed)}, got {_describe_value(value)}{extra}")
        return value
    if origin in (list, List):
        if not isinstance(value, list):
            raise ConfigError(path, f"expected {_type_name(tp)}, got {_describe_value(value)}")
        (inner,) = typing.get_args(tp) or (Any,)
        return [parse_value(inner, item, f"{path}[{i}]") for i, item in enumerate(value)]
    if origin in (dict, Dict) or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(path, f"expected an object, got {_describe_value(value)}")
        args = typing.get_args(tp)
        if args:
            return {k: parse_value(args[1], v, join_path(path, k)) for k, v in value.items()}
        return dict(value)
    if dataclasses.is_dataclass(tp):
        return parse_dataclass(tp, value, path)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(path, f"expected a boolean, got {_describe_value(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
                return int(value)  # allow 1e6 for step counts
            raise ConfigError(path, f"expected an integer, got {_describe_value(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(path, f"expected a number, got {_describe_value(value)}")
        if not math.isfinite(value):  # NaN slips through every range check (nan <= 0 is False)
            raise ConfigError(path, f"expected a finite number, got {value}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(path, f"expected a string, got {_describe_value(value)}")
        return value
    raise TypeError(f"unsupported config annotation {tp!r} at {path}")


def parse_dataclass(cls: type, data: Any, path: str = "") -> Any:
    """Build dataclass ``cls`` from a JSON object, rejecting unknown keys and wrong types.

    Fields without a default are required. A dataclass may define ``validate(self, path)`` for
    cross-field checks; it raises :class:`ConfigError`.
    """
    if isinstance(data, cls):
        return data
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(path, f"expected an object, got {_describe_value(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if key not in fields:
            hint = closest_name(key, fields)
            extra = f" (did you mean {hint}?)" if hint else f" (expected one of: {', '.join(fields)})"
            raise config_error(path, key, f"unknown key{extra}")
    kwargs = {}
    for name, f in fields.items():
        if name in data:
            kwargs[name] = parse_value(hints[name], data[name], join_path(path, name))
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise config_error(path, name, f"missing required key ({_type_name(hints[name])})")
    instance = cls(**kwargs)
    validate = getattr(instance, "validate", None)
    if callable(validate):
        validate(path)
    return instance


def to_dict(instance: Any) -> Any:
    """Dataclass (possibly nested) -> plain JSON-able dict."""
    if dataclasses.is_dataclass(instance):
        return {f.name: to_dict(getattr(instance, f.name)) for f in dataclasses.fields(instance)}
    if isinstance(instance, list):
        return [to_dict(v) for v in instance]
    if isinstance(instance, dict):
        return {k: to_dict(v) for k, v in instance.items()}
    return instance


# --------------------------------------------------------------------------------------------
# Top-level sections
# --------------------------------------------------------------------------------------------


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

    def validate(self, path: str) -> None:
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


# --------------------------------------------------------------------------------------------
# Loading: file -> dict -> overrides -> dataclasses
# --------------------------------------------------------------------------------------------


def load_json(path: str | Path) -> Dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        raise ConfigError("", f"config file '{path}' is a directory; expected a JSON file")
    if not path.is_file():
        raise ConfigError("", f"config file '{path}' not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError("", f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError("", f"{path}: not a UTF-8 text file ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError("", f"config file '{path}' cannot be read: {exc.strerror}") from None
    if not isinstance(data, dict):
        raise ConfigError("", f"{path}: top level must be a JSON object")
    return data


def _parse_override_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text  # bare strings need no quotes: --set runtime.exp_name=foo


def apply_overrides(data: Dict[str, Any], overrides: List[str]) -> Dict[str, Any]:
    """Apply ``a.b.c=value`` overrides (value parsed as JSON, else taken as a string)."""
    data = copy.deepcopy(data)
    for item in overrides:
        if "=" not in item:
            raise ConfigError("--set", f"expected KEY=VALUE, got {item!r}")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        if not all(parts):
            raise ConfigError("--set", f"expected KEY=VALUE with a dotted key like runtime.seed=1, got {item!r}")
        node = data
        for i, part in enumerate(parts[:-1]):
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise ConfigError(".".join(parts[: i + 1]), "list index out of range in --set")
                node = node[int(part)]
                continue
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, (dict, list)):
                raise ConfigError(".".join(parts[: i + 1]), f"cannot set a key inside a {type(child).__name__}")
            node = child
        last = parts[-1]
        if isinstance(node, list):
            if not last.isdigit() or int(last) >= len(node):
                raise ConfigError(key, "list index out of range in --set")
            node[int(last)] = _parse_override_value(raw)
        else:
            node[last] = _parse_override_value(raw)
    return data


def parse_train_config(data: Dict[str, Any]) -> TrainConfig:
    return parse_dataclass(TrainConfig, data, "")


def load_train_config(path: str | Path, overrides: Optional[List[str]] = None) -> TrainConfig:
    return parse_train_config(apply_overrides(load_json(path), overrides or []))
