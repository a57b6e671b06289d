"""How much memory a device has free, and sizes in words: checked before large allocations."""
from __future__ import annotations

from typing import Optional

import torch


def available_bytes(device: torch.device | str) -> Optional[int]:
    """Bytes that can still be allocated on ``device``: free GPU memory, or the kernel's
    ``MemAvailable`` (free plus reclaimable page cache) for the CPU; None where it cannot be read."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # reported in kB
    except OSError:
        pass
    return None


def format_bytes(count: float) -> str:
    """``3.2 GiB``-style size."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(count) < 1024:
            return f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"
