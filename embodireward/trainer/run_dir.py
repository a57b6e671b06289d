"""Where a run lives, and creating its files only once everything else has been checked.

Layout: ``<run_dir>/config.json`` (the resolved config it started with), ``config_history.json``
(changes accepted on resume), ``logs/`` (TensorBoard, W&B), ``checkpoints/`` and, when videos are
recorded, ``videos/``.
"""
from __future__ import annotations

import contextlib
import shutil
from datetime import datetime
from pathlib import Path
from typing import Iterator, Optional

import torch

from embodireward.config import ConfigError, TrainConfig
from embodireward.utils import distributed as dist_utils
from embodireward.utils.io import is_writable_location, remove_stale_temp_files


def choose_run_dir(config: TrainConfig, resume_checkpoint: Optional[Path]) -> Path:
    """Resume -> the checkpoint's run dir; ``runtime.run_dir`` if given; else ``<output_dir>/<exp_name>_<timestamp>``."""
    runtime = config.runtime
    if resume_checkpoint is not None:
        parent = resume_checkpoint.parent
        return parent.parent if parent.name == "checkpoints" else parent
    if runtime.run_dir:
        run_dir = Path(runtime.run_dir)
        if (run_dir / "checkpoints" / "latest.pt").is_file():
            raise ConfigError("runtime.run_dir", f"'{run_dir}' already holds a run (checkpoints/latest.pt); continue it with "
                                                 "runtime.resume or choose another directory")
        return run_dir
    stamp = [datetime.now().strftime("%Y%m%d_%H%M%S")]
    if dist_utils.is_distributed():  # every rank must agree on the directory
        torch.distributed.broadcast_object_list(stamp, src=0)
    run_dir = Path(runtime.output_dir) / f"{runtime.exp_name}_{stamp[0]}"
    suffix = 1
    while run_dir.exists() and any(run_dir.iterdir()):  # two runs started in the same second
        run_dir = Path(runtime.output_dir) / f"{runtime.exp_name}_{stamp[0]}_{suffix}"
        suffix += 1
    return run_dir


def check_run_dir_writable(run_dir: Path, key: str) -> None:
    problem = is_writable_location(run_dir)
    if problem is not None:
        raise ConfigError(key, f"cannot write the run directory '{run_dir}': {problem}")


@contextlib.contextmanager
def creating(run_dir: Path) -> Iterator[None]:
    """Create ``run_dir`` and its standard folders; if the block fails, remove what was created,
    so a failed start leaves the file system as it found it."""
    created = [path for path in (run_dir, *run_dir.parents) if not path.exists()]
    try:
        for sub in ("checkpoints", "logs"):
            (run_dir / sub).mkdir(parents=True, exist_ok=True)
        remove_stale_temp_files(run_dir)  # temp files of writes killed in an earlier life of this run
        yield
    except BaseException:
        if created:
            shutil.rmtree(created[-1], ignore_errors=True)  # the outermost directory this start created
        raise
