"""Scalars, images and videos to TensorBoard (always) and Weights & Biases (``use_wandb``)."""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

import numpy as np


class Logger:
    """Writes on rank 0 only; on other ranks every call is a no-op."""

    def __init__(self, log_dir: Path, enabled: bool = True, use_wandb: bool = False, wandb_project: str = "embodireward",
                 run_name: str = "run", config: Optional[Dict[str, Any]] = None, wandb_dir: Optional[Path] = None,
                 purge_step: Optional[int] = None):
        self.enabled = enabled
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

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        if self.writer is None:
            return
        self.writer.add_scalar(tag, value, step)
        if self.wandb_run is not None:
            self.wandb_run.log({tag: value}, step=step)

    def add_scalars(self, values: Mapping[str, float], step: int) -> None:
        if self.writer is None:
            return
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)
        if self.wandb_run is not None:
            self.wandb_run.log(dict(values), step=step)

    def add_image(self, tag: str, image_hwc_uint8: np.ndarray, step: int) -> None:
        if self.writer is None:
            return
        self.writer.add_image(tag, np.asarray(image_hwc_uint8), step, dataformats="HWC")

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

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.wandb_run is not None:
            self.wandb_run.finish()
