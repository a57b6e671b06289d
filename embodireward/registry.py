"""One generic registry type behind the ``register_*`` decorators.

A registered component is a class. If it has a ``Config`` dataclass attribute, the JSON ``cfg``
block for it is parsed into that dataclass (see ``embodireward.config.parse_dataclass``).
"""
from __future__ import annotations

import difflib
import importlib
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Callable, Dict, Iterator, Optional, Tuple, Type, TypeVar

T = TypeVar("T")

PLUGIN_ENTRY_POINT_GROUP = "embodireward.plugins"


class RegistryError(KeyError):
    """Unknown or duplicate registry name. ``str()`` is a one-line message."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""


def closest_name(name: str, candidates) -> Optional[str]:
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.5)
    return matches[0] if matches else None


class Registry:
    """Maps names to component classes of one kind (env, policy, algo, ...)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: Dict[str, type] = {}

    def register(self, name: str, override: bool = False) -> Callable[[Type[T]], Type[T]]:
        if not isinstance(name, str) or not name:
            raise RegistryError(f"{self.kind} name must be a non-empty string, got {name!r}")

        def decorator(cls: Type[T]) -> Type[T]:
            existing = self._entries.get(name)
            if existing is not None and existing is not cls and not override:
                raise RegistryError(
                    f"{self.kind} '{name}' is already registered by "
                    f"{existing.__module__}.{existing.__qualname__}; pass override=True to replace it"
                )
            self._entries[name] = cls
            cls.registry_name = name
            return cls

        return decorator

    def get(self, name: str) -> type:
        try:
            return self._entries[name]
        except KeyError:
            pass
        registered = ", ".join(sorted(self._entries)) or "none"
        hint = closest_name(name, self._entries)
        suggestion = f" (did you mean '{hint}'?)" if hint else ""
        raise RegistryError(f"unknown {self.kind} '{name}'{suggestion}; registered: {registered}")

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Tuple[str, type]]:
        return iter(sorted(self._entries.items()))

    def names(self):
        return sorted(self._entries)


ENVS = Registry("env")
POLICIES = Registry("policy")
ALGOS = Registry("algorithm")
REWARD_MODELS = Registry("reward model")
CALLBACKS = Registry("callback")
LABELLERS = Registry("labeller")
ALL_REGISTRIES = (ENVS, POLICIES, ALGOS, REWARD_MODELS, CALLBACKS, LABELLERS)


def register_env(name: str, override: bool = False):
    """Register a vector env class (a subclass of ``embodireward.envs.VecEnv``)."""
    return ENVS.register(name, override)


def register_policy(name: str, override: bool = False):
    """Register a policy class (a subclass of ``embodireward.policies.Policy``)."""
    return POLICIES.register(name, override)


def register_algo(name: str, override: bool = False):
    """Register an algorithm class (a subclass of ``embodireward.algos.Algorithm``)."""
    return ALGOS.register(name, override)


def register_reward_model(name: str, override: bool = False):
    """Register a reward model class (a subclass of ``embodireward.rewards.BaseRewardModel``)."""
    return REWARD_MODELS.register(name, override)


def register_callback(name: str, override: bool = False):
    """Register a trainer callback class (a subclass of ``embodireward.trainer.Callback``)."""
    return CALLBACKS.register(name, override)


def register_labeller(name: str, override: bool = False):
    """Register a labeller of reward-model refresh frames (a subclass of ``embodireward.rewards.refresh.Labeller``)."""
    return LABELLERS.register(name, override)


def describe(cls: type) -> str:
    """First line of a component's docstring."""
    doc = inspect.getdoc(cls) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


class PluginError(ImportError):
    pass


def is_plugin_file(spec: str) -> bool:
    return spec.endswith(".py") or "/" in spec or "\\" in spec


def plugin_file(spec: str, base_dir: Optional[Path] = None) -> Path:
    """A plugin file's absolute path: as given, else relative to ``base_dir`` (the config's folder)."""
    path = Path(spec)
    if not path.is_absolute() and base_dir is not None and not path.exists():
        path = base_dir / path
    return path.resolve()


def load_plugin(spec: str, base_dir: Optional[Path] = None) -> None:
    """Import a plugin given as a module name (``my_pkg.my_module``) or a path to a ``.py`` file.

    Importing the module runs its ``@register_*`` decorators.
    """
    if is_plugin_file(spec):
        path = plugin_file(spec, base_dir)
        if not path.is_file():
            raise PluginError(f"plugin file '{spec}' not found")
        module_name = f"embodireward_plugin_{path.stem}_{abs(hash(str(path.resolve()))) % 10**8}"
        if module_name in sys.modules:
            return
        module_spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_name] = module
        try:
            module_spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[module_name]
            raise PluginError(f"plugin file '{spec}' failed to import: {type(exc).__name__}: {exc}") from exc
        return
    try:
        importlib.import_module(spec)
    except ModuleNotFoundError as exc:
        raise PluginError(f"plugin module '{spec}' not found ({exc})") from exc
    except Exception as exc:
        raise PluginError(f"plugin module '{spec}' failed to import: {type(exc).__name__}: {exc}") from exc


def load_entry_point_plugins() -> None:
    """Import plugins installed as packages under the ``embodireward.plugins`` entry-point group."""
    from importlib.metadata import entry_points

    for entry_point in entry_points(group=PLUGIN_ENTRY_POINT_GROUP):
        try:
            entry_point.load()
        except Exception as exc:
            raise PluginError(
                f"installed plugin '{entry_point.name}' ({entry_point.value}) failed to load: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
