"""``runtime.compile``: torch.compile for the hot functions of an update (and inference).

On CUDA the ``reduce-overhead`` mode also captures CUDA graphs, which removes the per-kernel
launch cost that dominates small-network RL updates (as ManiSkill's ``ppo_fast.py`` and LeanRL do);
on the CPU the default mode fuses elementwise work into a few generated C++ kernels. Shapes are
static (every minibatch has the same size), so each function compiles once per run.
"""
from __future__ import annotations

from typing import Callable, TypeVar

import torch

F = TypeVar("F", bound=Callable)


def compile_function(fn: F, device: torch.device) -> F:
    mode = "reduce-overhead" if device.type == "cuda" else "default"
    return torch.compile(fn, mode=mode, dynamic=False)
