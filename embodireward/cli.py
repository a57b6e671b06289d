"""Shared command-line behaviour: bad input is one line on stderr and exit status 2."""
from __future__ import annotations

import sys
from typing import Callable

from embodireward.config import ConfigError
from embodireward.registry import PluginError, RegistryError

USAGE_ERRORS = (ConfigError, RegistryError, PluginError)


def run_cli(main: Callable[[], int]) -> None:
    """Run ``main`` and turn known input errors into ``error: <message>`` with exit status 2."""
    from embodireward.trainer.checkpoint import CheckpointError
    from embodireward.utils.io import FileSystemError

    try:
        sys.exit(main())
    except (*USAGE_ERRORS, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except FileSystemError as exc:  # a fault of the machine, not of the input: exit 1
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
