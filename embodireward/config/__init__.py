"""Typed configuration: JSON -> dataclasses, with one-line errors that name the JSON path.

``parsing`` turns JSON into dataclasses, ``sections`` holds the top-level sections of a training
config (``runtime``, ``env``, ``policy``, ``algorithm``, ``callbacks``, ``reward``, ``plugins``),
``files`` loads a config file and applies ``--set`` overrides. Each registered component may
declare a ``Config`` dataclass; its ``cfg`` block is parsed into it by :func:`parse_dataclass`
once plugins are loaded.
"""
from embodireward.config.files import apply_overrides, load_json, load_train_config, parse_train_config
from embodireward.config.parsing import ConfigError, config_error, join_path, parse_dataclass, parse_value, to_dict
from embodireward.config.sections import (ComponentSection, EnvSection, NetworkConfig, PolicySection, RefreshSection, RewardSection,
                                          RuntimeConfig, TrainConfig)

__all__ = ["ComponentSection", "ConfigError", "EnvSection", "NetworkConfig", "PolicySection", "RefreshSection", "RewardSection", "RuntimeConfig",
           "TrainConfig", "apply_overrides", "config_error", "join_path", "load_json", "load_train_config", "parse_dataclass",
           "parse_train_config", "parse_value", "to_dict"]
