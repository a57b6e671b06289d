"""What ``embodireward eval`` reports: success with Wilson intervals, return and length as mean +- std,
and a reward model's agreement with the true success on the video frames."""
from __future__ import annotations

from typing import Any, Dict, List, Optional

import numpy as np

from embodireward.rewards.hook import agreement_metrics
from embodireward.tools.stats import mean_std, wilson_interval
from embodireward.trainer.evaluator import EvalEpisodes, EpisodeVideo


def summarize(result: EvalEpisodes) -> Dict[str, Any]:
    """``episodes``; ``success_rate`` / ``success_once``: mean, 95% Wilson interval and count (when the
    env reports success); ``return`` / ``length``: mean and sample standard deviation."""
    rows = result.episodes
    summary: Dict[str, Any] = {"episodes": len(rows)}
    if result.has_success:
        for name, key in (("success_rate", "success"), ("success_once", "success_once")):
            successes = sum(bool(row[key]) for row in rows)
            low, high = wilson_interval(successes, len(rows))
            summary[name] = {"mean": successes / len(rows), "ci95": [low, high], "successes": successes}
    for key in ("return", "length"):
        mean, std = mean_std([row[key] for row in rows])
        summary[key] = {"mean": mean, "std": std}
    return summary


def reward_model_agreement(video: EpisodeVideo, probs: np.ndarray, threshold: float) -> Dict[str, Any]:
    """The reward model's predictions (``probs >= threshold``) on each episode's own frames, against the
    frames' true success: precision, recall, agreement and false-positive rate (those defined)."""
    steps = np.arange(probs.shape[0])[:, None]
    own = steps < video.lengths[None, :]  # frames past an episode's end repeat its last one
    predicted = probs[own] >= threshold
    report: Dict[str, Any] = {"threshold": threshold, "frames": int(own.sum()), "mean_prob": float(probs[own].mean()),
                              "predicted_success_rate": float(predicted.mean())}
    if video.success is not None:
        truth = video.success[own]
        counts = [int((predicted & truth).sum()), int((predicted & ~truth).sum()),
                  int((~predicted & ~truth).sum()), int((~predicted & truth).sum())]
        report["true_success_rate"] = float(truth.mean())
        report.update({key.split("/", 1)[1]: value for key, value in agreement_metrics("frames", *counts).items()})
    return report


def format_summary(summary: Dict[str, Any], reward_model: Optional[Dict[str, Any]] = None) -> List[str]:
    """Console lines of a summary (what the JSON holds, minus the per-episode rows)."""
    lines = [f"episodes      {summary['episodes']}"]
    for name in ("success_rate", "success_once"):
        if name in summary:
            low, high = summary[name]["ci95"]
            lines.append(f"{name:<13} {summary[name]['mean']:.3f}  [{low:.3f}, {high:.3f}] 95% Wilson interval")
    for name in ("return", "length"):
        lines.append(f"{name:<13} {summary[name]['mean']:.3f} +- {summary[name]['std']:.3f} (mean +- std)")
    if reward_model is not None:
        scores = ", ".join(f"{key} {reward_model[key]:.3f}" for key in ("precision", "recall", "agreement") if key in reward_model)
        lines.append(f"reward model  {reward_model['frames']} video frames at threshold {reward_model['threshold']:.2f}: "
                     f"mean p {reward_model['mean_prob']:.3f}" + (f", {scores}" if scores else ""))
    return lines
