"""The ``embodireward`` command: one entry point, one subcommand per tool.

Each subcommand is a module with ``main(argv) -> int``, imported only when it runs, so
``embodireward list`` does not pay for importing the trainer. ``python -m embodireward.<module>``
runs the same ``main``.
"""
from __future__ import annotations

import importlib
import sys
from typing import Dict, List, Optional, Tuple

from embodireward.cli import CommandError, run_cli
from embodireward.registry import closest_name

# subcommand -> (module with main(argv), one-line description)
COMMANDS: Dict[str, Tuple[str, str]] = {
    "train": ("embodireward.train", "train a policy, or run a three-stage pipeline config"),
    "train-reward": ("embodireward.train_reward", "train an image reward model on collected data"),
    "eval": ("embodireward.tools.eval_policy", "evaluate and watch a checkpoint (success with a 95% interval, MP4)"),
    "eval-reward": ("embodireward.tools.eval_reward", "judge a reward model on a data directory"),
    "plot": ("embodireward.tools.plot", "plot TensorBoard scalars of runs, seeds aggregated (PNG + CSV)"),
    "list": ("embodireward.list", "list the registered envs, policies, algorithms, reward models, callbacks"),
}

EXAMPLES = """\
examples:
  embodireward train --config configs/push_cube_2d/ppo.json --set runtime.seed=1
  embodireward train --config configs/push_cube_2d/pipeline.json
  embodireward eval outputs/push_cube_2d_pipeline/3_learned_reward --episodes 256 --video
  embodireward plot 'outputs/push_cube_2d_ppo_*' --tag eval/success_rate
  embodireward train --help        (every command has its own --help)"""


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: embodireward <command> [options]", "", "commands:"]
    lines += [f"  {name:<{width}}  {description}" for name, (_, description) in COMMANDS.items()]
    return "\n".join(lines) + "\n\n" + EXAMPLES


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage(), file=sys.stdout if argv else sys.stderr)  # no command at all is a usage error
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        hint = closest_name(name, list(COMMANDS))
        raise CommandError(f"unknown command '{name}'{f' (did you mean {hint}?)' if hint else ''}; "
                           f"commands: {', '.join(COMMANDS)}")
    module_name = COMMANDS[name][0]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:  # a dependency is missing: that traceback is the useful message
            raise
        raise CommandError(f"'embodireward {name}' is not available in this installation ({module_name} is missing)") from None
    sys.argv[0] = f"embodireward {name}"  # so the command's --help and usage name it (see cli.prog)
    return module.main(rest)


def cli() -> None:
    """Console-script entry point (``embodireward``)."""
    run_cli(main)


if __name__ == "__main__":
    cli()
