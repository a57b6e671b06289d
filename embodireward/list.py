"""``python -m embodireward.list``: every registered component with its one-line description."""
from __future__ import annotations

import argparse
from typing import List, Optional

from embodireward.cli import run_cli
from embodireward.registry import ALL_REGISTRIES, describe, load_builtin_components, load_entry_point_plugins, load_plugin


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m embodireward.list", description=__doc__)
    parser.add_argument("--plugin", action="append", default=[], help="also import this plugin module or .py file")
    args = parser.parse_args(argv)
    load_builtin_components()
    load_entry_point_plugins()
    for spec in args.plugin:
        load_plugin(spec)
    for registry in ALL_REGISTRIES:
        print(f"{registry.kind}s:")
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
