"""Eval videos: episodes upscaled and tiled, a caption band per tile, written as MP4 (GIF without ffmpeg).

Each tile is one episode, enlarged by nearest-neighbour (pixels stay sharp) to at least
``MIN_TILE`` pixels. The band under it shows the step, the env's true success of the frame's
state and, when a reward model is given, its success probability as a number and a bar with a
tick at the decision threshold.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from embodireward.trainer.evaluator import EpisodeVideo
from embodireward.utils.io import atomic_write_bytes

MIN_TILE = 256  # pixels: a 64 x 64 camera image becomes 256 x 256
MACRO_BLOCK = 16  # H.264 encodes 16 x 16 blocks: frames are padded to a multiple
GREEN, RED, GREY, INK, PAPER = (40, 160, 60), (200, 40, 40), (150, 150, 150), (20, 20, 20), (245, 245, 245)


def upscale(images: np.ndarray, min_size: int = MIN_TILE) -> np.ndarray:
    """``[..., H, W, 3]`` enlarged by the smallest integer factor that makes both sides ``>= min_size``."""
    height, width = images.shape[-3:-1]
    scale = max(1, math.ceil(min_size / min(height, width)))
    return images.repeat(scale, axis=-3).repeat(scale, axis=-2)


def tile_grid(tiles: np.ndarray, columns: int, gap: int = 4) -> np.ndarray:
    """``[K, h, w, 3]`` -> one image of ``ceil(K / columns)`` rows, ``gap`` white pixels between tiles."""
    count, height, width, _ = tiles.shape
    rows = math.ceil(count / columns)
    canvas = np.full((rows * (height + gap) - gap, columns * (width + gap) - gap, 3), 255, dtype=np.uint8)
    for k in range(count):
        top, left = (k // columns) * (height + gap), (k % columns) * (width + gap)
        canvas[top:top + height, left:left + width] = tiles[k]
    return canvas


class CaptionPainter:
    """Draws the band under one tile: step, true success and the reward model's probability."""

    def __init__(self, width: int, with_reward_model: bool):
        self.width = width
        size = max(12, width // 20)
        self.font = ImageFont.load_default(size=size)  # Pillow's bundled scalable font (Pillow >= 10.1)
        self.line = int(size * 1.35)
        self.with_reward_model = with_reward_model
        self.height = self.line * (3 if with_reward_model else 2) + (self.line // 2 if with_reward_model else 0) + 4

    def paint(self, episode: int, step: int, length: int, success: Optional[bool],
              prob: Optional[float] = None, threshold: float = 0.5) -> np.ndarray:
        band = Image.new("RGB", (self.width, self.height), PAPER)
        draw = ImageDraw.Draw(band)
        x, y = 6, 2
        ended = " (ended)" if step > length else ""
        draw.text((x, y), f"episode {episode}  step {min(step, length)}/{length}{ended}", fill=INK, font=self.font)
        y += self.line
        verdict = {True: ("yes", GREEN), False: ("no", RED), None: ("n/a", GREY)}[success]
        draw.text((x, y), "true success: ", fill=INK, font=self.font)
        draw.text((x + draw.textlength("true success: ", font=self.font), y), verdict[0], fill=verdict[1], font=self.font)
        if self.with_reward_model and prob is not None:
            y += self.line
            colour = GREEN if prob >= threshold else RED
            verdict = "success" if prob >= threshold else "failure"
            draw.text((x, y), f"reward model p = {prob:.2f} ({verdict})", fill=colour, font=self.font)
            y += self.line
            bar_width = self.width - 2 * x
            draw.rectangle((x, y, x + bar_width, y + self.line // 2), outline=GREY)
            draw.rectangle((x, y, x + int(round(prob * bar_width)), y + self.line // 2), fill=colour)
            tick = x + int(round(threshold * bar_width))
            draw.line((tick, y - 2, tick, y + self.line // 2 + 2), fill=INK, width=2)
        return np.asarray(band)


def compose(video: EpisodeVideo, camera: str, probs: Optional[np.ndarray] = None, threshold: float = 0.5,
            min_tile: int = MIN_TILE) -> np.ndarray:
    """Video frames ``uint8 [T, H, W, 3]``: every episode of ``video`` as a captioned, upscaled tile.

    ``probs``: the reward model's P(success) of each frame, ``[T, K]`` (None: no reward-model line).
    """
    tiles = upscale(video.images[camera], min_tile)  # [T, K, h, w, 3]
    steps, count = tiles.shape[:2]
    painter = CaptionPainter(tiles.shape[3], probs is not None)
    columns = math.ceil(math.sqrt(count))
    frames = []
    for t in range(steps):
        captioned = []
        for k in range(count):
            success = None if video.success is None else bool(video.success[t, k])
            prob = None if probs is None else float(probs[t, k])
            band = painter.paint(k + 1, t + 1, int(video.lengths[k]), success, prob, threshold)
            captioned.append(np.concatenate([tiles[t, k], band], axis=0))
        frames.append(tile_grid(np.stack(captioned), columns))
    return np.stack(frames)


def pad_to_macro_blocks(frames: np.ndarray) -> np.ndarray:
    """White-pad ``[T, H, W, 3]`` at the bottom/right so H and W are multiples of 16."""
    height, width = frames.shape[1:3]
    pad_h, pad_w = -height % MACRO_BLOCK, -width % MACRO_BLOCK
    return np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), constant_values=255)


def ffmpeg_available() -> bool:
    try:
        import imageio_ffmpeg

        imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        return False
    return True


def write_video(path_stem: Path, frames: np.ndarray, fps: float = 10.0) -> Path:
    """Write ``<path_stem>.mp4`` (H.264 through imageio's ffmpeg plugin) or, without ffmpeg,
    ``<path_stem>.gif``; atomically. Returns the path written."""
    import imageio.v3 as iio

    if ffmpeg_available():
        path = path_stem.with_suffix(".mp4")
        data = iio.imwrite("<bytes>", pad_to_macro_blocks(frames), extension=".mp4", plugin="FFMPEG", fps=fps)
    else:
        path = path_stem.with_suffix(".gif")
        data = iio.imwrite("<bytes>", frames, extension=".gif", duration=int(1000 / fps), loop=0)
    atomic_write_bytes(path, data)
    return path
