"""The ``embodireward`` dispatcher: every subcommand's plain-text --help, one-line errors."""
import importlib.util
import re

import pytest

from embodireward.commands import COMMANDS
from tests.conftest import run_module


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_subcommand_shows_plain_help_with_examples(command):
    result = run_module("embodireward", command, "--help")
    if command == "eval-reward" and importlib.util.find_spec("embodireward.tools.eval_reward") is None:
        # written in parallel: until it exists the dispatcher says so in one line
        assert result.returncode == 2 and result.stderr.strip().count("\n") == 0
        assert "embodireward.tools.eval_reward is missing" in result.stderr
        return
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: embodireward {command} ")
    assert "examples:" in result.stdout and f"embodireward {command}" in result.stdout.split("examples:")[1]
    assert "``" not in result.stdout and ":class:" not in result.stdout


@pytest.mark.parametrize("module", ["embodireward.train", "embodireward.train_reward", "embodireward.list"])
def test_module_forms_keep_working_with_plain_help(module):
    result = run_module(module, "--help")
    assert result.returncode == 0 and result.stdout.startswith(f"usage: python -m {module} ")
    assert "``" not in result.stdout and "examples:" in result.stdout


def test_top_level_help_lists_the_commands_and_unknown_ones_are_one_line():
    listing = run_module("embodireward", "--help")
    assert listing.returncode == 0 and all(f"  {name} " in listing.stdout for name in COMMANDS)
    unknown = run_module("embodireward", "evaluate")
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == ("error: unknown command 'evaluate' (did you mean eval?); "
                                      "commands: train, train-reward, eval, eval-reward, plot, list")


def test_list_spells_policies_and_loads_a_plugin(tmp_path):
    plugin = tmp_path / "my_plugin.py"
    plugin.write_text(
        "from embodireward.registry import register_callback\n"
        "from embodireward.trainer.callbacks import Callback\n\n"
        "@register_callback('my_counter')\n"
        "class MyCounter(Callback):\n"
        "    \"\"\"Counts env steps.\"\"\"\n")
    result = run_module("embodireward", "list", "--plugin", str(plugin))
    assert result.returncode == 0, result.stderr
    assert "policies:\n  actor_critic" in result.stdout and "policys" not in result.stdout
    assert re.search(r"^  my_counter +Counts env steps\.$", result.stdout, re.M)
