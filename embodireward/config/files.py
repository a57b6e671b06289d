"""Loading a training config: file -> dict -> ``--set`` overrides -> dataclasses."""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Dict, List, Optional

from embodireward.config.parsing import ConfigError, parse_dataclass
from embodireward.config.sections import TrainConfig




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
