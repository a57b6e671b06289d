"""Memory estimates checked before allocating, so an impossible size is a one-line config error."""
from __future__ import annotations

import contextlib
import os
import re
from typing import Iterator

import torch

from embodireward.config import ConfigError


def available_bytes(device: torch.device) -> int:
    """Free memory the process can still allocate on ``device`` (CUDA: free device memory)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def format_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(count) < 1024 or unit == "PiB":
            return f"{count:.1f} {unit}" if unit != "B" else f"{int(count)} B"
        count /= 1024
    return f"{count:.1f} PiB"


def check_fits(nbytes: float, device: torch.device, path: str, what: str) -> None:
    """Raise ``ConfigError(path, ...)`` when ``nbytes`` exceed the memory available on ``device``."""
    free = available_bytes(device)
    if nbytes > free:
        raise ConfigError(path, f"{what} needs about {format_bytes(nbytes)}, but only {format_bytes(free)} "
                                f"of {device.type} memory is available")


@contextlib.contextmanager
def allocation_errors(path: str, what: str) -> Iterator[None]:
    """Turn an allocator failure inside the block into a one-line ``ConfigError`` about ``path``."""
    try:
        yield
    except (MemoryError, torch.OutOfMemoryError) as exc:
        raise ConfigError(path, f"{what} does not fit in memory ({_first_line(exc)})") from None
    except RuntimeError as exc:
        message = str(exc)
        if "alloc" in message.lower() or "out of memory" in message.lower():
            raise ConfigError(path, f"{what} does not fit in memory ({_first_line(exc)})") from None
        raise


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    match = re.search(r"tried to allocate (\d+) bytes", text)
    if match:
        return f"tried to allocate {format_bytes(int(match.group(1)))}"
    return text.splitlines()[0][:200] if text else type(exc).__name__
