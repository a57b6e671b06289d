"""Mixed precision: the float type compute runs in, and the gradient scaling fp16 needs.

``fp32`` runs everything in float32. ``bf16`` / ``fp16`` run matrix multiplies and convolutions
under ``torch.autocast`` while parameters, optimizer state and gradients stay float32 (the "master
weights"). bfloat16 has float32's exponent range, so its gradients never underflow and need no
scaling; float16 does, so ``fp16`` scales the loss with a ``GradScaler``. ``auto`` picks bf16
where the device computes it natively (CUDA GPUs with bf16, CPUs with AVX512-BF16 or AMX) and
fp32 elsewhere.
"""
from __future__ import annotations

import contextlib
from typing import Iterable, Iterator, Literal, Optional

import torch
from torch import nn

PrecisionName = Literal["auto", "fp32", "bf16", "fp16"]
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def cpu_has_native_bf16() -> bool:
    """True when the CPU has bfloat16 dot-product instructions (AVX512-BF16 or AMX)."""
    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    if any(check is not None for check in checks):
        return any(check() for check in checks if check is not None)
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(name: str, device: torch.device) -> str:
    """``auto`` -> ``bf16`` or ``fp32`` for ``device``; other names unchanged."""
    if name != "auto":
        return name
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_native_bf16() else "fp32"


class Precision:
    """One precision setting for one device: ``autocast()`` around forward passes, ``backward``
    and ``step`` around the optimizer (they scale and unscale the loss under fp16)."""

    def __init__(self, name: str = "fp32", device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.name = resolve_precision(name, self.device)
        if self.name not in _DTYPES:
            raise ValueError(f"unknown precision {name!r}; expected one of {', '.join(PRECISIONS)}")
        self.dtype: Optional[torch.dtype] = _DTYPES[self.name]
        # float16 gradients of small losses underflow to zero without loss scaling; bf16 needs none
        self.scaler = torch.amp.GradScaler(self.device.type) if self.name == "fp16" else None

    @property
    def is_mixed(self) -> bool:
        return self.dtype is not None

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def step(self, optimizer: torch.optim.Optimizer, clip_params: Optional[Iterable[nn.Parameter]] = None,
             max_grad_norm: Optional[float] = None) -> None:
        """Unscale (fp16), clip the global gradient norm if asked, step, and update the scale."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
        if clip_params is not None and max_grad_norm is not None:
            nn.utils.clip_grad_norm_(clip_params, max_grad_norm)
        if self.scaler is not None:
            self.scaler.step(optimizer)  # skips the step when the scaled gradients overflowed
            self.scaler.update()
        else:
            optimizer.step()

    def state_dict(self) -> dict:
        return {"scaler": self.scaler.state_dict()} if self.scaler is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])

    def __repr__(self) -> str:
        return f"Precision({self.name!r}, {self.device})"


@contextlib.contextmanager
def full_precision() -> Iterator[None]:
    """Leave autocast inside the block: what must stay float32 (log-probs, ratios, targets)."""
    with torch.autocast("cuda", enabled=False), torch.autocast("cpu", enabled=False):
        yield
