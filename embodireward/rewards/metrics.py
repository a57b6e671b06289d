"""Classification metrics of a reward model (computed here: no sklearn dependency).

Binary metrics score P(success) against 0/1 labels at a threshold; class metrics score the
argmax of ``[N, K]`` class probabilities against class labels. On imbalanced data the honest
summary is balanced accuracy (the mean per-class recall), precision and recall, not accuracy.
"""
from __future__ import annotations

import math
from typing import Dict, List, Sequence, Tuple

import torch

NUM_BINS = 10  # reliability-diagram bins over [0, 1]


def _ratio(num: float, den: float) -> float:
    return num / den if den else 0.0


def binary_metrics(probs: torch.Tensor, labels: torch.Tensor, threshold: float = 0.5) -> Dict[str, float]:
    """Accuracy, balanced accuracy, precision, recall and F1 of ``probs >= threshold`` against ``labels`` (0/1).

    ``balanced_accuracy = (TP / (TP + FN) + TN / (TN + FP)) / 2``; an absent class is left out of
    the mean. Undefined ratios (no predicted positives for precision, ...) are 0.
    """
    predicted = probs >= threshold
    actual = labels > 0.5
    tp = float((predicted & actual).sum())
    fp = float((predicted & ~actual).sum())
    fn = float((~predicted & actual).sum())
    tn = float((~predicted & ~actual).sum())
    recalls = [r for r, present in ((_ratio(tp, tp + fn), tp + fn), (_ratio(tn, tn + fp), tn + fp)) if present]
    return {
        "accuracy": float((predicted == actual).float().mean()) if labels.numel() else math.nan,
        "balanced_accuracy": sum(recalls) / len(recalls) if recalls else math.nan,
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
    }


def binary_confusion(probs: torch.Tensor, labels: torch.Tensor, threshold: float) -> List[List[int]]:
    """``[[TN, FP], [FN, TP]]``: rows the true class (failure, success), columns the predicted one."""
    predicted = (probs >= threshold).long()
    return confusion_matrix(predicted, (labels > 0.5).long(), 2)


def confusion_matrix(predicted: torch.Tensor, labels: torch.Tensor, num_classes: int) -> List[List[int]]:
    """``M[i][j]``: samples of true class ``i`` predicted as ``j``."""
    flat = torch.bincount(labels.long() * num_classes + predicted.long(), minlength=num_classes * num_classes)
    return flat.view(num_classes, num_classes).tolist()


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


def _ranked_counts(probs: torch.Tensor, labels: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Descending distinct scores and the TP / FP counts of ``probs >= score`` at each of them."""
    sorted_probs, order = probs.double().sort(descending=True)
    actual = (labels[order] > 0.5).double()
    # a threshold can only split between distinct values: keep the last index of each run of ties
    last = torch.cat([torch.nonzero(sorted_probs[1:] != sorted_probs[:-1]).squeeze(1), torch.tensor([len(sorted_probs) - 1])])
    return sorted_probs, last, actual.cumsum(0)[last], (1 - actual).cumsum(0)[last]


def average_precision(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """``AP = sum_n (R_n - R_{n-1}) P_n`` over the distinct thresholds, highest first (no interpolation,
    as sklearn's ``average_precision_score``); NaN without positives."""
    n_pos = int((labels > 0.5).sum())
    if n_pos == 0 or probs.numel() == 0:
        return math.nan
    _, _, tp, fp = _ranked_counts(probs, labels)
    recall = tp / n_pos
    precision = tp / (tp + fp)
    previous = torch.cat([recall.new_zeros(1), recall[:-1]])
    return float(((recall - previous) * precision).sum())


def best_f1_threshold(probs: torch.Tensor, labels: torch.Tensor) -> Tuple[float, float]:
    """``(threshold, f1)`` maximising F1 of ``probs >= threshold``.

    The threshold sits halfway between the lowest probability still called positive and the
    next lower one, i.e. in the middle of the gap rather than on a sample.
    """
    if probs.numel() == 0:
        return 0.5, 0.0
    sorted_probs, last, tp, fp = _ranked_counts(probs, labels)
    fn = (labels > 0.5).double().sum() - tp
    f1 = 2 * tp / (2 * tp + fp + fn).clamp_min(1e-12)
    best = int(f1.argmax())  # first maximum: the highest threshold reaching the best F1
    lower = sorted_probs[last[best] + 1] if last[best] + 1 < len(sorted_probs) else torch.tensor(0.0, dtype=torch.float64)
    return float((sorted_probs[last[best]] + lower) / 2), float(f1[best])


def class_metrics(probs: torch.Tensor, labels: torch.Tensor, class_names: Sequence[str]) -> Dict[str, object]:
    """Metrics of ``argmax probs`` (``[N, K]``) against class ``labels`` ``[N]``.

    Precision, recall and F1 are macro means over the classes present in ``labels``; AUROC and
    average precision are macro means of one-vs-rest scores. ``per_class`` has each class's
    precision, recall, F1, AUROC, AP and support.
    """
    k = len(class_names)
    predicted = probs.argmax(dim=-1)
    matrix = torch.tensor(confusion_matrix(predicted, labels, k), dtype=torch.float64)
    per_class = {}
    for i, name in enumerate(class_names):
        tp, support, called = float(matrix[i, i]), float(matrix[i].sum()), float(matrix[:, i].sum())
        precision, recall = _ratio(tp, called), _ratio(tp, support)
        one_vs_rest = (labels == i).float()
        per_class[name] = {"precision": precision, "recall": recall, "f1": _ratio(2 * tp, called + support),
                           "auroc": auroc(probs[:, i], one_vs_rest), "average_precision": average_precision(probs[:, i], one_vs_rest),
                           "support": int(support)}
    present = [m for m in per_class.values() if m["support"]]

    def mean(key: str) -> float:
        values = [m[key] for m in present if not math.isnan(m[key])]
        return sum(values) / len(values) if values else math.nan

    return {
        "accuracy": float((predicted == labels).float().mean()) if labels.numel() else math.nan,
        "balanced_accuracy": mean("recall"),
        "precision": mean("precision"),
        "recall": mean("recall"),
        "f1": mean("f1"),
        "auroc": mean("auroc"),
        "average_precision": mean("average_precision"),
        "per_class": per_class,
        "confusion": matrix.long().tolist(),
    }


def reliability(confidence: torch.Tensor, outcome: torch.Tensor, bins: int = NUM_BINS) -> Dict[str, object]:
    """Calibration of ``confidence`` (in [0, 1]) against 0/1 ``outcome`` over equal-width bins.

    ``ECE = sum_b (n_b / N) |mean(outcome)_b - mean(confidence)_b|``. For P(success) the outcome is
    "is a success"; for a K-class model's top-class confidence it is "the top class is right".
    """
    confidence, outcome = confidence.double(), outcome.double()
    which = (confidence * bins).long().clamp(0, bins - 1)  # bin b holds [b/bins, (b+1)/bins), 1.0 in the last
    count = torch.bincount(which, minlength=bins).double()
    mean_confidence = torch.bincount(which, confidence, minlength=bins) / count.clamp_min(1)
    frequency = torch.bincount(which, outcome, minlength=bins) / count.clamp_min(1)
    ece = float((count / max(1, len(confidence)) * (frequency - mean_confidence).abs()).sum())
    return {"ece": ece, "bin_edges": torch.linspace(0, 1, bins + 1).tolist(), "count": count.long().tolist(),
            "confidence": mean_confidence.tolist(), "frequency": frequency.tolist()}
