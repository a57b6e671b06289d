"""Binary-classification metrics of a reward model (computed here: no sklearn dependency)."""
from __future__ import annotations

import math
from typing import Dict, Tuple

import torch


def binary_metrics(probs: torch.Tensor, labels: torch.Tensor, threshold: float = 0.5) -> Dict[str, float]:
    """Accuracy, precision, recall and F1 of ``probs >= threshold`` against ``labels`` (0/1)."""
    predicted = probs >= threshold
    actual = labels > 0.5
    tp = float((predicted & actual).sum())
    fp = float((predicted & ~actual).sum())
    fn = float((~predicted & actual).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {
        "accuracy": float((predicted == actual).float().mean()) if labels.numel() else math.nan,
        "precision": precision,
        "recall": recall,
        "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0,
    }


def auroc(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """Area under the ROC curve (Mann-Whitney U with tied scores sharing their mean rank); NaN with one class."""
    actual = labels > 0.5
    n_pos, n_neg = int(actual.sum()), int((~actual).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    sorted_probs, order = probs.double().sort()
    _, inverse, counts = torch.unique_consecutive(sorted_probs, return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).double()
    mean_rank = (ends - (counts.double() - 1) / 2)[inverse]  # 1-based ranks, ties averaged
    ranks = torch.empty_like(mean_rank).scatter_(0, order, mean_rank)
    return float((ranks[actual].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def best_f1_threshold(probs: torch.Tensor, labels: torch.Tensor) -> Tuple[float, float]:
    """``(threshold, f1)`` maximising F1 of ``probs >= threshold``.

    The threshold sits halfway between the lowest probability still called positive and the
    next lower one, i.e. in the middle of the gap rather than on a sample.
    """
    if probs.numel() == 0:
        return 0.5, 0.0
    sorted_probs, order = probs.double().sort(descending=True)
    actual = (labels[order] > 0.5).double()
    tp = actual.cumsum(0)
    fp = (1 - actual).cumsum(0)
    # a threshold can only split between distinct values: keep the last index of each run of ties
    last = torch.cat([torch.nonzero(sorted_probs[1:] != sorted_probs[:-1]).squeeze(1), torch.tensor([len(sorted_probs) - 1])])
    tp, fp = tp[last], fp[last]
    fn = actual.sum() - tp
    f1 = 2 * tp / (2 * tp + fp + fn).clamp_min(1e-12)
    best = int(f1.argmax())  # first maximum: the highest threshold reaching the best F1
    lower = sorted_probs[last[best] + 1] if last[best] + 1 < len(sorted_probs) else torch.tensor(0.0, dtype=torch.float64)
    return float((sorted_probs[last[best]] + lower) / 2), float(f1[best])
