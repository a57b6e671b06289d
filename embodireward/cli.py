"""Shared command-line behaviour: bad input is one line on stderr and exit status 2."""
from __future__ import annotations

import argparse
import sys
from typing import Callable

from embodireward.config import ConfigError
from embodireward.registry import PluginError, RegistryError
from embodireward.utils.io import FileSystemError

USAGE_ERRORS = (ConfigError, RegistryError, PluginError)


class CommandError(ValueError):
    """Bad command-line input that argparse cannot see (a run directory without logs, ...). One line."""


def run_cli(main: Callable[[], int]) -> None:
    """Run ``main`` and turn known input errors into ``error: <message>`` with exit status 2."""
    from embodireward.trainer.checkpoint import CheckpointError

    try:
        sys.exit(main())
    except (*USAGE_ERRORS, CheckpointError, CommandError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except FileSystemError as exc:  # a fault of the machine, not of the input: exit 1
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


def prog(module_form: str) -> str:
    """Program name shown by ``--help``: ``embodireward <command>`` when started by the ``embodireward``
    dispatcher (which sets ``sys.argv[0]`` so), else ``module_form`` (``python -m embodireward.train``)."""
    return sys.argv[0] if sys.argv[0].startswith("embodireward ") else module_form


def make_parser(module_form: str, description: str, examples: str) -> argparse.ArgumentParser:
    """A parser whose ``--help`` is plain text: ``description``, the options, then ``examples`` verbatim."""
    return argparse.ArgumentParser(prog=prog(module_form), description=description,
                                   epilog="examples:\n" + examples.strip("\n"),
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
