"""Judging a reward model on labelled data: predictions, the loss, metrics and the ``evaluation/`` report.

Labels are the data's class indices (the last class is success). A binary model (logits ``[N]``)
is scored as P(success) against "label is the last class" at a threshold; a ``K``-class model
(logits ``[N, K]``) by its most probable class. ``evaluate_reward_model`` writes::

    evaluation/reward_eval.json     metrics (see reward_report), threshold, counts, per_class
    evaluation/reliability.png      calibration of P(success) (binary) / of the top class (K classes)
    evaluation/false_positives.png  most confident false successes
    evaluation/false_negatives.png  most confident missed successes
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from embodireward.rewards import plots
from embodireward.rewards.base import BaseRewardModel, success_probability
from embodireward.rewards.dataset import RewardDataset
from embodireward.rewards.metrics import auroc, average_precision, binary_confusion, binary_metrics, class_metrics, reliability
from embodireward.utils.io import atomic_write_bytes, atomic_write_json, make_dirs
from embodireward.utils.precision import Precision

EVALUATION_DIR = "evaluation"
GALLERY_SIZE = 16
SUMMARY_KEYS = ("balanced_accuracy", "precision", "recall", "f1", "auroc", "average_precision", "accuracy")


def success_targets(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Float 0/1 ``[N]``: whether each label is the success (last) class."""
    return (labels == num_classes - 1).float()


def loss_weight(class_counts: Sequence[int], binary: bool) -> torch.Tensor:
    """Loss weights against imbalance: BCE ``pos_weight = negatives / positives`` (binary), else
    cross-entropy class weights ``w_k = n / (K n_k)`` (each class contributes equally)."""
    counts = torch.tensor(class_counts, dtype=torch.float32)
    if binary:
        return (counts.sum() - counts[-1]) / counts[-1]
    return counts.sum() / (len(counts) * counts.clamp_min(1))


def classification_loss(logits: torch.Tensor, labels: torch.Tensor, num_classes: int,
                        weight: Optional[torch.Tensor] = None) -> torch.Tensor:
    """BCE-with-logits on success for binary logits ``[N]``, cross-entropy on the classes for ``[N, K]``."""
    logits = logits.float()  # the loss reduction stays in fp32 under autocast
    weight = None if weight is None else weight.to(logits.device)
    if logits.dim() == 1:
        return F.binary_cross_entropy_with_logits(logits, success_targets(labels, num_classes), pos_weight=weight)
    return F.cross_entropy(logits, labels, weight=weight)


@torch.no_grad()
def predict(model: BaseRewardModel, loader: DataLoader) -> Tuple[torch.Tensor, torch.Tensor]:
    """Float logits and class labels of every sample of ``loader`` (in order), with the model in eval mode."""
    model.eval()
    logits, labels = [], []
    for images, batch_labels in loader:
        logits.append(model.predict_logits(images).float().cpu())
        labels.append(batch_labels.long())
    return torch.cat(logits), torch.cat(labels)


def score(logits: torch.Tensor, labels: torch.Tensor, class_names: Sequence[str], weight: Optional[torch.Tensor] = None,
          threshold: float = 0.5) -> Dict[str, float]:
    """Scalar metrics: the loss, then those of :func:`binary_metrics` (at ``threshold``) or
    :func:`class_metrics` (with ``<class>/precision|recall|f1`` per class), AUROC and AP."""
    metrics = {"loss": float(classification_loss(logits, labels, len(class_names), weight))}
    if logits.dim() == 1:
        probs, success = torch.sigmoid(logits), success_targets(labels, len(class_names))
        metrics |= binary_metrics(probs, success, threshold)
        metrics |= {"auroc": auroc(probs, success), "average_precision": average_precision(probs, success)}
        return metrics
    result = class_metrics(torch.softmax(logits, dim=-1), labels, class_names)
    metrics |= {key: value for key, value in result.items() if isinstance(value, float)}
    for name, per in result["per_class"].items():
        metrics |= {f"{name}/{key}": per[key] for key in ("precision", "recall", "f1")}
    return metrics


def summary_line(metrics: Dict[str, Any], prefix: str = "") -> str:
    """Balanced accuracy, precision and recall first; accuracy only after them."""
    return "  ".join(f"{prefix}{key} {metrics[prefix + key]:.4f}" for key in SUMMARY_KEYS if prefix + key in metrics)


def reward_report(logits: torch.Tensor, labels: torch.Tensor, class_names: Sequence[str], threshold: Optional[float]) -> Dict[str, Any]:
    """Every number of ``reward_eval.json``: accuracy, balanced accuracy, precision, recall, F1, AUROC,
    AP, ECE (+ reliability bins), the confusion matrix (rows true, columns predicted, in the order
    of ``class_names``) and ``threshold`` (binary; null for a K-class model, which takes the argmax)."""
    if logits.dim() == 1:
        threshold = 0.5 if threshold is None else float(threshold)
        probs, success = torch.sigmoid(logits), success_targets(labels, len(class_names))
        report: Dict[str, Any] = binary_metrics(probs, success, threshold)
        report |= {"auroc": auroc(probs, success), "average_precision": average_precision(probs, success)}
        bins = reliability(probs, success)
        names = list(class_names) if len(class_names) == 2 else [f"not {class_names[-1]}", class_names[-1]]
        report |= {"confusion": binary_confusion(probs, success, threshold), "class_names": names, "threshold": threshold}
    else:
        probs = torch.softmax(logits, dim=-1)
        report = class_metrics(probs, labels, class_names)
        top, predicted = probs.max(dim=-1)
        bins = reliability(top, (predicted == labels).float())
        report |= {"class_names": list(class_names), "threshold": None}
    report["ece"] = bins.pop("ece")
    report["reliability"] = bins
    return report


def confident_mistakes(logits: torch.Tensor, labels: torch.Tensor, num_classes: int, threshold: Optional[float],
                       count: int = GALLERY_SIZE) -> Tuple[torch.Tensor, torch.Tensor]:
    """Indices of the most confident false positives (highest P(success) among predicted successes that
    are not) and false negatives (lowest P(success) among missed successes)."""
    p = success_probability(logits)
    called = p >= (0.5 if threshold is None else threshold) if logits.dim() == 1 else logits.argmax(dim=-1) == num_classes - 1
    actual = labels == num_classes - 1
    false_pos = torch.nonzero(called & ~actual).squeeze(1)
    false_neg = torch.nonzero(~called & actual).squeeze(1)
    return (false_pos[p[false_pos].argsort(descending=True)][:count], false_neg[p[false_neg].argsort()][:count])


def _gallery(dataset: RewardDataset, picks: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor, title: str) -> bytes:
    """The first camera's image (a clip's last frame) of each pick, captioned with P(success) and the true class."""
    names = dataset.data.class_names
    images = [next(iter(dataset[int(i)][0].values())) for i in picks]
    images = torch.stack([image[-1] if image.dim() == 4 else image for image in images]) if images else torch.zeros(0, 3, 1, 1)
    p = success_probability(logits)
    captions = [f"P(success) {float(p[i]):.3f}\ntrue: {names[int(labels[i])]}" for i in picks]
    return plots.image_gallery(images, captions, title)


def evaluate_reward_model(model: BaseRewardModel, dataset: RewardDataset, directory: Path, threshold: Optional[float] = None,
                          batch_size: int = 256, info: Optional[Dict[str, Any]] = None, precision: str = "fp32") -> Dict[str, Any]:
    """Score ``model`` on ``dataset`` and write ``<directory>/evaluation/`` (see the module docstring).

    ``threshold`` defaults to the sidecar's recommended threshold (binary models), else 0.5.
    ``info`` (e.g. the model and data paths, the split) is added to the JSON as it is.
    ``precision``: the compute type of inference (``utils.precision``), e.g. to check that bf16,
    as the reward hook may run it, scores like fp32.
    """
    if threshold is None and model.num_classes == 1:
        threshold = model.sidecar.get("recommended_threshold")
    with Precision(precision, model.device).autocast():
        logits, labels = predict(model, DataLoader(dataset, batch_size=batch_size))
    names = dataset.data.class_names
    report = reward_report(logits, labels, names, threshold)
    report["counts"] = dataset.data.counts(dataset.index)
    report["inference_precision"] = Precision(precision, model.device).name
    report |= info or {}
    out = make_dirs(Path(directory) / EVALUATION_DIR)
    x_label = "P(success)" if logits.dim() == 1 else "top-class probability"
    y_label = "fraction successes" if logits.dim() == 1 else "fraction correct"
    atomic_write_bytes(out / "reliability.png", plots.reliability_diagram(report["reliability"], report["ece"], x_label, y_label,
                                                                          f"reliability ({len(labels)} samples)"))
    false_pos, false_neg = confident_mistakes(logits, labels, len(names), report["threshold"])
    for name, picks, what in (("false_positives", false_pos, "false positives"), ("false_negatives", false_neg, "false negatives")):
        title = f"most confident {what} ({len(picks)} shown)"
        atomic_write_bytes(out / f"{name}.png", _gallery(dataset, picks, logits, labels, title))
    atomic_write_json(out / "reward_eval.json", report)
    return report

