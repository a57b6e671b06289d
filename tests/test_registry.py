import pytest

from embodireward.builtins import load_builtin_components
from embodireward.registry import Registry, RegistryError, ENVS, POLICIES, ALGOS, CALLBACKS, REWARD_MODELS
from tests.conftest import run_module


def test_duplicate_name_is_an_error_unless_override():
    registry = Registry("widget")

    @registry.register("a")
    class A:
        pass

    with pytest.raises(RegistryError, match="widget 'a' is already registered"):
        @registry.register("a")
        class B:
            pass

    @registry.register("a", override=True)
    class C:
        pass

    assert registry.get("a") is C


def test_unknown_name_lists_registered_and_suggests_closest():
    registry = Registry("env")
    for name in ("push_cube_2d", "gymnasium", "maniskill"):
        registry.register(name)(type(name, (), {}))
    with pytest.raises(RegistryError) as info:
        registry.get("push_cub_2d")
    message = str(info.value)
    assert "did you mean 'push_cube_2d'?" in message
    assert "registered: gymnasium, maniskill, push_cube_2d" in message
    assert "\n" not in message


def test_builtin_components_are_registered():
    load_builtin_components()
    assert "push_cube_2d" in ENVS and "gymnasium" in ENVS
    assert "actor_critic" in POLICIES and "ppo" in ALGOS
    assert "reward_data_collection" in CALLBACKS
    assert "resnet_reward" in REWARD_MODELS and "video_reward" in REWARD_MODELS


def test_list_command_prints_components_with_descriptions():
    result = run_module("embodireward.list")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for heading in ("envs:", "policies:", "algorithms:", "reward models:", "callbacks:"):
        assert heading in out
    line = next(line for line in out.splitlines() if line.strip().startswith("ppo"))
    assert "PPO" in line  # the docstring's first line


def test_installed_package_plugins_load_through_the_entry_point_group(tmp_path, monkeypatch):
    import importlib.metadata
    import sys

    from embodireward.registry import PLUGIN_ENTRY_POINT_GROUP, load_entry_point_plugins

    (tmp_path / "ep_plugin_pkg.py").write_text(
        "from embodireward import register_callback\n"
        "from embodireward.trainer.callbacks import Callback\n"
        "@register_callback('from_entry_point')\n"
        "class FromEntryPoint(Callback):\n"
        "    '''Registered by an installed package.'''\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    entry = importlib.metadata.EntryPoint(name="ep", value="ep_plugin_pkg", group=PLUGIN_ENTRY_POINT_GROUP)
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda group=None: [entry] if group == PLUGIN_ENTRY_POINT_GROUP else [])
    load_entry_point_plugins()
    assert "from_entry_point" in CALLBACKS
    sys.modules.pop("ep_plugin_pkg", None)
