"""Figures of a reward-model evaluation (matplotlib, Agg backend): a reliability diagram and image galleries.

Both return PNG bytes, so the caller writes them atomically.
"""
from __future__ import annotations

import io
import math
from typing import Dict, List, Sequence

import torch

GALLERY_COLUMNS = 4


def _figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt, plt.figure(figsize=(width, height), dpi=100)


def _png(plt, figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def reliability_diagram(bins: Dict[str, List[float]], ece: float, x_label: str, y_label: str, title: str) -> bytes:
    """Observed frequency against mean confidence per bin (bars: sample counts), with the diagonal."""
    plt, figure = _figure(4.5, 5.0)
    top, bottom = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    edges = bins["bin_edges"]
    centres = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:])]
    width = edges[1] - edges[0]
    filled = [i for i, n in enumerate(bins["count"]) if n]
    top.plot([0, 1], [0, 1], "--", color="grey", linewidth=1, label="perfect calibration")
    top.bar([centres[i] for i in filled], [bins["frequency"][i] for i in filled], width=width * 0.9, alpha=0.35, color="tab:blue")
    top.plot([bins["confidence"][i] for i in filled], [bins["frequency"][i] for i in filled], "o-", color="tab:blue", label="model")
    top.set(xlim=(0, 1), ylim=(0, 1), ylabel=y_label, title=f"{title}\nECE {ece:.3f}")
    top.legend(loc="upper left", fontsize=8)
    bottom.bar(centres, bins["count"], width=width * 0.9, color="tab:grey")
    bottom.set(xlabel=x_label, ylabel="samples")
    return _png(plt, figure)


def image_gallery(images: torch.Tensor, captions: Sequence[str], title: str) -> bytes:
    """uint8 ``[N, 3, H, W]`` images in a grid, each with its caption; an empty set says so."""
    rows = max(1, math.ceil(len(images) / GALLERY_COLUMNS))
    plt, figure = _figure(2.2 * GALLERY_COLUMNS, 2.4 * rows + 0.4)
    figure.suptitle(title, fontsize=10)
    if len(images) == 0:
        figure.text(0.5, 0.5, "none", ha="center", va="center", fontsize=14)
    for i, (image, caption) in enumerate(zip(images, captions)):
        axis = figure.add_subplot(rows, GALLERY_COLUMNS, i + 1)
        axis.imshow(image.permute(1, 2, 0).numpy(), interpolation="nearest")
        axis.set_title(caption, fontsize=8)
        axis.axis("off")
    return _png(plt, figure)
