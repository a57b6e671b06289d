"""``python -m embodireward.list``: every registered component with its one-line description."""
from __future__ import annotations

from typing import List, Optional

from embodireward.cli import make_parser, run_cli
from embodireward.builtins import load_builtin_components
from embodireward.registry import ALL_REGISTRIES, describe, load_entry_point_plugins, load_plugin

DESCRIPTION = """List every registered component (envs, policies, algorithms, reward models, callbacks)
with its one-line description: the built-in ones, those of installed packages declaring the
entry-point group "embodireward.plugins", and those of each --plugin."""

EXAMPLES = """
  embodireward list
  embodireward list --plugin my_pkg.my_module --plugin path/to/my_plugin.py
"""
# registry kind -> heading (English plurals are not all kind + "s")
PLURALS = {"policy": "policies"}


def main(argv: Optional[List[str]] = None) -> int:
    parser = make_parser("python -m embodireward.list", DESCRIPTION, EXAMPLES)
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE_OR_FILE",
                        help="also import this plugin (a module name or a .py file) before listing; repeatable")
    args = parser.parse_args(argv)
    load_builtin_components()
    load_entry_point_plugins()
    for spec in args.plugin:
        load_plugin(spec)
    for registry in ALL_REGISTRIES:
        print(f"{PLURALS.get(registry.kind, registry.kind + 's')}:")
        entries = list(registry)
        width = max((len(name) for name, _ in entries), default=0)
        for name, cls in entries:
            print(f"  {name:<{width}}  {describe(cls)}")
        if not entries:
            print("  (none)")
    return 0


def cli() -> None:
    """Console-script entry point."""
    run_cli(main)


if __name__ == "__main__":
    cli()
