"""Vulkan device selection for SAPIEN (ManiSkill's renderer).

SAPIEN renders through Vulkan. Without an NVIDIA GPU the only device is Mesa's CPU rasteriser
lavapipe; Debian 12's own Mesa (22.3) is too old, bookworm-backports' (>= 24.3) works.
:func:`require_vulkan` points the Vulkan loader at lavapipe when there is no NVIDIA GPU (unless
the user chose a driver), then checks that SAPIEN finds a device, failing with install steps.
"""
from __future__ import annotations

import glob
import os
from typing import Optional

ICD_VARIABLES = ("VK_ICD_FILENAMES", "VK_DRIVER_FILES")  # the loader's old and new spelling
LAVAPIPE_ICD_GLOB = "/usr/share/vulkan/icd.d/lvp_icd*.json"
INSTALL_HINT = (
    "without an NVIDIA GPU install Mesa's lavapipe CPU driver, Mesa >= 24.3 (on Debian 12: "
    "`apt-get install -t bookworm-backports mesa-vulkan-drivers` with bookworm-backports enabled, "
    "or run `bash scripts/install_vulkan.sh`), which provides /usr/share/vulkan/icd.d/lvp_icd.json "
    "(picked automatically, or set VK_ICD_FILENAMES to it); with an NVIDIA GPU in a container, "
    "expose the driver's Vulkan ICD (NVIDIA_DRIVER_CAPABILITIES=all)"
)


class VulkanUnavailableError(RuntimeError):
    """SAPIEN found no Vulkan device to render with."""


def lavapipe_icd() -> Optional[str]:
    icds = sorted(glob.glob(LAVAPIPE_ICD_GLOB))
    return icds[0] if icds else None


def select_lavapipe_without_gpu() -> Optional[str]:
    """Point Vulkan at lavapipe if there is no NVIDIA GPU and the user set no driver; returns the ICD chosen.

    Must run before the first Vulkan instance is created (SAPIEN creates it lazily), and before
    worker processes start, which inherit the environment.
    """
    import torch

    if any(os.environ.get(name) for name in ICD_VARIABLES) or torch.cuda.is_available():
        return None
    icd = lavapipe_icd()
    if icd is not None:
        for name in ICD_VARIABLES:
            os.environ[name] = icd
    return icd


def vulkan_device_error() -> Optional[str]:
    """None when SAPIEN can render, otherwise why not (selects lavapipe first, see above)."""
    select_lavapipe_without_gpu()
    import sapien

    try:
        sapien.render.get_device_summary()
    except RuntimeError as exc:
        return str(exc)
    return None


def require_vulkan() -> None:
    error = vulkan_device_error()
    if error is not None:
        raise VulkanUnavailableError(f"no usable Vulkan device for SAPIEN rendering ({error}): {INSTALL_HINT}")
