"""JSON -> dataclasses: type checks, ranges left to each dataclass's ``validate``, and one-line
errors that name the JSON path of the offending value (with "did you mean" for unknown keys)."""
from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from typing import Any, Dict, List, Literal, Union

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
