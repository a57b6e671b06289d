"""Build env, policy, algorithm and callbacks from a parsed config through the registries.

Every lookup or ``cfg`` parse error becomes a :class:`ConfigError` naming the JSON path, so
``validate_config`` can reject a bad file before any work starts.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from embodireward.config import ConfigError, EnvSection, TrainConfig, parse_dataclass, to_dict
from embodireward.builtins import load_builtin_components
from embodireward.registry import (ALGOS, CALLBACKS, ENVS, LABELLERS, POLICIES, PluginError, Registry, RegistryError,
                                   is_plugin_file, load_entry_point_plugins, load_plugin, plugin_file)
from embodireward.utils.distributed import local_rank, local_world_size


def load_plugins(config: TrainConfig, base_dir: Optional[Path] = None) -> None:
    """Built-in components, installed entry-point plugins, then the config's ``plugins`` list."""
    load_builtin_components()
    try:
        load_entry_point_plugins()
    except PluginError as exc:
        raise ConfigError("plugins", str(exc)) from None
    load_plugin_list(config.plugins, base_dir, "plugins")


def load_plugin_list(specs: List[str], base_dir: Optional[Path], path: str) -> None:
    """Import each plugin of a config's ``plugins`` list at ``path``; errors name ``path[i]``."""
    for i, spec in enumerate(specs):
        try:
            load_plugin(spec, base_dir)
        except PluginError as exc:
            raise ConfigError(f"{path}[{i}]", str(exc)) from None


def lookup(registry: Registry, name: str, path: str) -> type:
    try:
        return registry.get(name)
    except RegistryError as exc:
        raise ConfigError(path, str(exc)) from None


def parse_component_cfg(cls: type, cfg: Dict[str, Any], path: str) -> Any:
    """A component's ``cfg`` block as its ``Config`` dataclass (or the plain dict if it has none)."""
    config_cls = getattr(cls, "Config", None)
    return parse_dataclass(config_cls, cfg, path) if config_cls is not None else dict(cfg)


def eval_env_cfg(section: EnvSection, eval_episodes: int) -> Dict[str, Any]:
    """Train env cfg with the ``eval_env`` overrides; one env per eval episode unless set."""
    cfg = copy.deepcopy(section.cfg)
    overrides = section.eval_env or {}
    if "num_envs" in cfg and "num_envs" not in overrides:
        cfg["num_envs"] = eval_episodes
    cfg.update(overrides)
    return cfg


def validate_config(config: TrainConfig, base_dir: Optional[Path] = None) -> Dict[str, Any]:
    """Load plugins and check every component name and ``cfg`` block; return the resolved config dict."""
    load_plugins(config, base_dir)
    resolved = to_dict(config)
    # plugin files as absolute paths, so the run's saved config.json runs from anywhere
    resolved["plugins"] = [str(plugin_file(spec, base_dir)) if is_plugin_file(spec) else spec for spec in config.plugins]
    env_cls = lookup(ENVS, config.env.id, "env.id")
    resolved["env"]["cfg"] = to_dict(parse_component_cfg(env_cls, config.env.cfg, "env.cfg"))
    if config.runtime.eval_freq > 0:
        parse_component_cfg(env_cls, eval_env_cfg(config.env, config.runtime.eval_episodes), "env.eval_env")
    policy_cls = lookup(POLICIES, config.policy.name, "policy.name")
    resolved["policy"]["cfg"] = to_dict(parse_component_cfg(policy_cls, config.policy.cfg, "policy.cfg"))
    algo_cls = lookup(ALGOS, config.algorithm.name, "algorithm.name")
    missing = [name for name in getattr(algo_cls, "policy_methods", ()) if not callable(getattr(policy_cls, name, None))]
    if missing:
        raise ConfigError("policy.name", f"'{config.policy.name}' lacks {', '.join(missing)}, which algorithm "
                                         f"'{config.algorithm.name}' calls; use a policy made for it")
    resolved["algorithm"]["cfg"] = to_dict(parse_component_cfg(algo_cls, config.algorithm.cfg, "algorithm.cfg"))
    for i, section in enumerate(config.callbacks):
        callback_cls = lookup(CALLBACKS, section.name, f"callbacks[{i}].name")
        resolved["callbacks"][i]["cfg"] = to_dict(parse_component_cfg(callback_cls, section.cfg, f"callbacks[{i}].cfg"))
    refresh = config.reward.refresh
    if refresh is not None:
        labeller_cls = lookup(LABELLERS, refresh.labeller.name, "reward.refresh.labeller.name")
        resolved["reward"]["refresh"]["labeller"]["cfg"] = to_dict(parse_component_cfg(labeller_cls, refresh.labeller.cfg, "reward.refresh.labeller.cfg"))
    return resolved


def resolve_device(spec: str, path: str = "runtime.device") -> torch.device:
    """``auto`` / ``cuda`` -> this process's GPU (``LOCAL_RANK`` under torchrun), else the CPU."""
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(path, f"'{spec}' requested but CUDA is not available on this machine (use 'auto' or 'cpu')")
    if spec in ("auto", "cuda"):
        return torch.device(f"cuda:{local_rank()}") if torch.cuda.is_available() else torch.device("cpu")
    if spec.startswith("cuda:") and local_world_size() > 1:
        raise ConfigError(path, f"'{spec}' would put all {local_world_size()} torchrun processes of this node on one GPU; "
                                "use 'auto' or 'cuda' (each rank takes GPU LOCAL_RANK)")
    return torch.device(spec)


def build_env(config: TrainConfig, device: torch.device, seed: int, for_eval: bool = False):
    env_cls = ENVS.get(config.env.id)
    if for_eval:
        cfg = parse_component_cfg(env_cls, eval_env_cfg(config.env, config.runtime.eval_episodes), "env.eval_env")
    else:
        cfg = parse_component_cfg(env_cls, config.env.cfg, "env.cfg")
    return env_cls(cfg, device, seed)


def build_policy(config: TrainConfig, obs_space, action_space, device: torch.device):
    return POLICIES.get(config.policy.name)(config.policy, obs_space, action_space).to(device)


def build_algo(config: TrainConfig, policy, device: torch.device):
    from embodireward.utils.precision import Precision

    algo_cls = ALGOS.get(config.algorithm.name)
    cfg = parse_component_cfg(algo_cls, config.algorithm.cfg, "algorithm.cfg")
    return algo_cls(cfg, policy, device, precision=Precision(config.runtime.precision, device), compile=config.runtime.compile)


def build_callbacks(config: TrainConfig, trainer) -> List[Any]:
    """Construct every callback; one that fails to start is a one-line error naming it."""
    callbacks = []
    for i, section in enumerate(config.callbacks):
        callback_cls = CALLBACKS.get(section.name)
        cfg = parse_component_cfg(callback_cls, section.cfg, f"callbacks[{i}].cfg")
        try:
            callbacks.append(callback_cls(cfg, trainer))
        except (ConfigError, RegistryError):
            raise
        except Exception as exc:  # user code: name the callback instead of a traceback from inside it
            raise ConfigError(f"callbacks[{i}]", f"callback '{section.name}' failed to start: {type(exc).__name__}: {exc}") from None
    if config.reward.refresh is not None and trainer.reward_hook is not None:
        from embodireward.rewards.refresh import RewardRefresh

        callbacks.append(RewardRefresh(config.reward.refresh, trainer))  # after the user's: it sees their steps' rewards
    return callbacks
