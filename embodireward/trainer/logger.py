"""Scalars, images and videos to TensorBoard (always) and Weights & Biases (``use_wandb``)."""
from __future__ import annotations

import functools
import io
import os
import threading
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

import numpy as np

from embodireward.utils.io import FileSystemError

_default_excepthook = threading.excepthook


def _quiet_writer_thread_errors(args) -> None:
    # TensorBoard's background writer thread dies on a full/read-only disk and prints a traceback;
    # the same OSError reaches the next logging call on the main thread, which reports it as one line
    if isinstance(args.exc_value, OSError) and type(args.thread).__name__ == "_AsyncWriterThread":
        return
    _default_excepthook(args)


threading.excepthook = _quiet_writer_thread_errors


def _file_system_errors(method):
    """OSErrors of the event writer become one-line FileSystemErrors naming the log directory."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except FileSystemError:
            raise
        except OSError as exc:
            raise FileSystemError.from_os_error(self.log_dir, exc) from None
    return wrapper


class Logger:
    """Writes on rank 0 only; on other ranks every call is a no-op."""

    @_file_system_errors
    def __init__(self, log_dir: Path, enabled: bool = True, use_wandb: bool = False, wandb_project: str = "embodireward",
                 run_name: str = "run", config: Optional[Dict[str, Any]] = None, wandb_dir: Optional[Path] = None,
                 purge_step: Optional[int] = None):
        self.enabled = enabled
        self.log_dir = log_dir
        self.writer = None
        self.wandb_run = None
        if not enabled:
            return
        from torch.utils.tensorboard import SummaryWriter

        # purge_step drops events past a resumed checkpoint, so curves do not fork
        self.writer = SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)
        if use_wandb:
            import wandb

            wandb_dir = Path(wandb_dir or log_dir.parent)
            wandb_dir.mkdir(parents=True, exist_ok=True)
            self.wandb_run = wandb.init(project=wandb_project, name=run_name, config=config, dir=str(wandb_dir),
                                        mode=os.environ.get("WANDB_MODE", "online"), reinit="finish_previous")

    @_file_system_errors
    def add_scalar(self, tag: str, value: float, step: int) -> None:
        if self.writer is None:
            return
        self.writer.add_scalar(tag, value, step)
        if self.wandb_run is not None:
            self.wandb_run.log({tag: value}, step=step)

    @_file_system_errors
    def add_scalars(self, values: Mapping[str, float], step: int) -> None:
        if self.writer is None:
            return
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)
        if self.wandb_run is not None:
            self.wandb_run.log(dict(values), step=step)

    @_file_system_errors
    def add_image(self, tag: str, image_hwc_uint8: np.ndarray, step: int) -> None:
        if self.writer is None:
            return
        self.writer.add_image(tag, np.asarray(image_hwc_uint8), step, dataformats="HWC")

    @_file_system_errors
    def add_gif(self, tag: str, frames_thwc_uint8: np.ndarray, step: int, fps: int = 10) -> None:
        """An animated GIF in TensorBoard's image tab (what ``add_video`` does, without moviepy)."""
        if self.writer is None:
            return
        import imageio.v3 as iio
        from tensorboard.compat.proto.summary_pb2 import Summary

        frames = np.asarray(frames_thwc_uint8)
        gif = iio.imwrite("<bytes>", frames, extension=".gif", duration=int(1000 / fps), loop=0)
        image = Summary.Image(height=frames.shape[1], width=frames.shape[2], colorspace=3, encoded_image_string=gif)
        self.writer._get_file_writer().add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)
        if self.wandb_run is not None:
            import wandb

            self.wandb_run.log({tag: wandb.Video(io.BytesIO(gif), format="gif")}, step=step)

    @_file_system_errors
    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    @_file_system_errors
    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.wandb_run is not None:
            self.wandb_run.finish()
