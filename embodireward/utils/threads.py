"""Process-wide settings scoped to a block: torch's thread count, SIGTERM handling."""
from __future__ import annotations

import contextlib
import signal
from typing import Iterator

import torch


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Use ``count`` torch intra-op threads inside the block (0: leave the setting alone)."""
    if not count:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """``kill`` ends the block like Ctrl-C (a KeyboardInterrupt), so cleanup code runs."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt
    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # signals can only be handled in the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
