"""Reward-model checkpoints: ``<stem>.safetensors`` (weights) + ``<stem>.json`` (sidecar).

The sidecar makes a checkpoint self-describing::

    {"name": "resnet_reward", "config": {...model Config...}, "manifest": {...data manifest...},
     "recommended_threshold": 0.42, "metrics": {...}, "format_version": 1}

(``manifest["class_names"]`` names the classes of a ``num_classes`` >= 2 model, success last;
``recommended_threshold`` is null for such a model, which predicts the most probable class)

so :func:`load_reward_model` rebuilds the model without the user repeating ``hidden_dim`` or
``image_size``, and checks that the env an RL run uses matches the env the data came from.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Optional, Union

import torch

from embodireward.config import ConfigError, parse_dataclass, to_dict
from embodireward.registry import REWARD_MODELS, RegistryError
from embodireward.utils.io import atomic_path, atomic_write_json, read_json

if TYPE_CHECKING:  # pragma: no cover
    from embodireward.rewards.base import BaseRewardModel

FORMAT_VERSION = 1
DEFAULT_STEM = "best_model"
# env.describe() keys that must match between the data a model was trained on and the env it rewards.
ENV_COMPAT_KEYS = ("env_id", "camera_keys", "image_size", "show_goal", "control_mode")


class RewardCheckpointError(ConfigError):
    """A reward-model checkpoint that is missing, corrupt or incompatible. One line, names the file."""

    def __init__(self, message: str):
        super().__init__("", message)


def save_reward_model(model: "BaseRewardModel", directory: Union[str, Path], stem: str = DEFAULT_STEM,
                      extra_sidecar: Optional[Dict[str, Any]] = None) -> Path:
    """Write ``<directory>/<stem>.safetensors`` and its ``.json`` sidecar atomically; return the weights path.

    ``extra_sidecar`` supplies ``manifest``, ``recommended_threshold`` and ``metrics`` (defaults:
    the model's own ``sidecar`` values).
    """
    from safetensors.torch import save_file

    directory = Path(directory)
    sidecar = {
        "name": model.registry_name,
        "config": to_dict(model.cfg),
        "manifest": model.sidecar.get("manifest", {}),
        "recommended_threshold": model.sidecar.get("recommended_threshold"),
        "metrics": model.sidecar.get("metrics", {}),
        **(extra_sidecar or {}),
        "format_version": FORMAT_VERSION,
    }
    weights = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    weights_path = directory / f"{stem}.safetensors"
    with atomic_path(weights_path) as tmp:
        save_file(weights, str(tmp))
    # Sidecar last: a complete sidecar never points at half-written weights.
    atomic_write_json(directory / f"{stem}.json", sidecar)
    return weights_path


def resolve_checkpoint(path: Union[str, Path]) -> Path:
    """``.safetensors`` path, ``.json`` sidecar path or a directory (-> ``best_model``) -> weights path."""
    path = Path(path)
    if path.is_dir():
        path = path / f"{DEFAULT_STEM}.safetensors"
    elif path.suffix == ".json":
        path = path.with_suffix(".safetensors")
    elif path.suffix != ".safetensors":
        raise RewardCheckpointError(f"reward model checkpoint '{path}': expected a .safetensors file, its .json sidecar or a directory")
    if not path.is_file():
        raise RewardCheckpointError(f"reward model checkpoint '{path}' not found")
    return path


def read_sidecar(weights_path: Path) -> Dict[str, Any]:
    sidecar_path = weights_path.with_suffix(".json")
    if not sidecar_path.is_file():
        raise RewardCheckpointError(f"reward model sidecar '{sidecar_path}' not found (it holds the model name and config)")
    sidecar = read_json(sidecar_path, RewardCheckpointError, f"reward model sidecar '{sidecar_path}' is unreadable")
    if not isinstance(sidecar, dict) or not isinstance(sidecar.get("name"), str) or not isinstance(sidecar.get("config"), dict):
        raise RewardCheckpointError(f"reward model sidecar '{sidecar_path}' must be an object with 'name' and 'config'")
    if sidecar.get("format_version") != FORMAT_VERSION:
        raise RewardCheckpointError(f"reward model sidecar '{sidecar_path}': format_version {sidecar.get('format_version')!r} is not supported (expected {FORMAT_VERSION})")
    return sidecar


def load_weights(model: "BaseRewardModel", path: Union[str, Path]) -> None:
    """Load a ``.safetensors`` state dict into ``model`` (strict); errors name the file."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise RewardCheckpointError(f"reward model weights '{path}' not found")
    try:
        state = load_file(str(path))
    except Exception as exc:
        raise RewardCheckpointError(f"reward model weights '{path}' are corrupt or unreadable: {type(exc).__name__}: {exc}") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or wrong_shape:
        detail = "; ".join(
            f"{what} {keys[:3]}{'...' if len(keys) > 3 else ''}"
            for what, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong_shape)) if keys
        )
        raise RewardCheckpointError(f"reward model weights '{path}' do not fit {type(model).__name__}: {detail}")
    model.load_state_dict(state)


def _same(a: Any, b: Any) -> bool:
    # JSON round trip: tuples vs lists, ints vs floats compare like the sidecar stores them.
    return json.loads(json.dumps(a)) == json.loads(json.dumps(b))


def check_env_compatibility(manifest_env: Dict[str, Any], env_desc: Dict[str, Any], source: str) -> None:
    """Raise a one-line ConfigError if ``env_desc`` (an ``env.describe()``) differs from the recorded env.

    Only keys present on both sides are compared (see ``ENV_COMPAT_KEYS``). ``source`` names where
    the recorded env came from, e.g. ``"reward model 'runs/rm/best_model.safetensors'"``.
    """
    for key in ENV_COMPAT_KEYS:
        if key in manifest_env and key in env_desc and not _same(manifest_env[key], env_desc[key]):
            raise ConfigError("", f"env mismatch on '{key}': {source} was recorded with {manifest_env[key]!r}, this env has {env_desc[key]!r}")


def load_reward_model(path: Union[str, Path], device: Union[str, torch.device] = "cpu",
                      overrides: Optional[Dict[str, Any]] = None, expected_env: Optional[Dict[str, Any]] = None,
                      overrides_path: str = "reward.model_cfg") -> "BaseRewardModel":
    """Rebuild a reward model from its checkpoint, in eval mode on ``device``.

    ``overrides``: model config keys the caller's config also sets; each must equal the sidecar's
    value (error: ``<overrides_path>.<key>: checkpoint has X, config says Y``). ``expected_env``:
    the RL env's ``describe()``, checked against the data manifest the model was trained on.
    """
    weights_path = resolve_checkpoint(path)
    sidecar = read_sidecar(weights_path)
    try:
        cls = REWARD_MODELS.get(sidecar["name"])
    except RegistryError as exc:
        raise RewardCheckpointError(f"reward model sidecar '{weights_path.with_suffix('.json')}': {exc}") from None
    config = dict(sidecar["config"])
    for key, value in (overrides or {}).items():
        if key not in config:
            raise ConfigError(f"{overrides_path}.{key}", f"not a {sidecar['name']} config key (checkpoint config has: {', '.join(config)})")
        if not _same(config[key], value):
            raise ConfigError(f"{overrides_path}.{key}", f"checkpoint has {config[key]!r}, config says {value!r}")
    # The weights come from the checkpoint: never look for ImageNet / encoder weight files again.
    for key, neutral in (("pretrained", False), ("pretrained_path", None)):
        if key in config:
            config[key] = neutral
    try:
        cfg = parse_dataclass(cls.Config, config, "config")
    except ConfigError as exc:
        raise RewardCheckpointError(f"reward model sidecar '{weights_path.with_suffix('.json')}': {exc}") from None
    class_names = sidecar.get("manifest", {}).get("class_names")
    num_classes = getattr(cfg, "num_classes", 1)
    if num_classes >= 2 and class_names is not None and len(class_names) != num_classes:
        raise RewardCheckpointError(f"reward model sidecar '{weights_path.with_suffix('.json')}': config has num_classes "
                                    f"{num_classes} but the data manifest names {len(class_names)} classes {class_names}")
    if expected_env is not None:
        check_env_compatibility(sidecar.get("manifest", {}).get("env", {}), expected_env, f"reward model '{weights_path}'")
    with torch.random.fork_rng(devices=[]):  # the random init is overwritten: loading leaves the caller's RNG as it was
        model = cls(cfg)
    load_weights(model, weights_path)
    model.sidecar = sidecar
    return model.to(device).eval()
