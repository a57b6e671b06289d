"""What a pipeline achieved: ``pipeline_summary.json`` and ``report.md`` beside it.

Both are rebuilt from what the stage directories hold, never from a last-iteration snapshot:

- every PPO stage: ``final`` and ``best`` value (with their env steps) of each ``eval/``,
  ``episode/`` and ``reward_model/`` scalar in its TensorBoard logs; ``best`` is the maximum, or the
  minimum for losses, ECE and false-positive rates; counters, lengths and thresholds get ``final`` only;
- the reward model: the same for its ``val/`` scalars (one step per epoch), the best epoch and the
  recommended threshold of ``metrics.json``, and the evaluation of ``evaluation/reward_eval.json``;
- the learned-reward stage: the reward model against the env's true success over every frame it
  scored in the stage (``reward_model_vs_true_success``: precision, recall, agreement, ...), and the
  hook's inference time (``reward_model_seconds``) and its share of the stage's wall time; with
  ``reward.refresh``, how many refreshes ran, the labels they used and the latest refreshed model;
- the paths of checkpoints, models and figures.

``report.md`` shows the same in tables with the figures: the success curve of both PPO stages
(``figures/``, drawn by ``embodireward.tools.plot``) and the reward-model evaluation figures in
``2_reward_model/evaluation/``. It links only files that exist.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional

from embodireward.utils.io import atomic_write_json, atomic_write_text

if TYPE_CHECKING:  # pragma: no cover
    from embodireward.pipeline import Pipeline

SUMMARY_NAME, REPORT_NAME, FIGURES_DIR = "pipeline_summary.json", "report.md", "figures"
STAGE_TITLES = {"warmup": "PPO on the env reward, collecting reward-model data",
                "reward_model": "Reward-model training", "learned_reward": "PPO on the learned reward"}
PPO_PREFIXES, REWARD_MODEL_PREFIXES = ("eval/", "episode/", "reward_model/", "refresh/"), ("val/",)
LOWER_IS_BETTER = ("loss", "ece", "false_positive_rate")
NO_DIRECTION = ("length", "episodes", "calls", "images", "seconds", "threshold", "predicted_success_rate", "mean_prob")
CURVE_TAGS = ("eval/success_rate", "episode/success_once")  # the report plots the first one the stages logged
EVAL_FIGURES = (("reliability.png", "reliability diagram"), ("false_positives.png", "most confident false positives"),
                ("false_negatives.png", "most confident false negatives"))
AGREEMENT_KEYS = ("precision", "recall", "agreement", "false_positive_rate", "predicted_success_rate", "true_success_rate")
LEAD_METRICS = ("balanced_accuracy", "precision", "recall", "f1", "auroc", "average_precision", "ece", "accuracy")


def scalar_summary(log_dir: Path, prefixes) -> Dict[str, Dict[str, float]]:
    """``tag -> {final, final_step[, best, best_step]}`` for the tags under ``prefixes``."""
    from embodireward.tools.scalars import read_event_scalars

    summary = {}
    for tag, rows in sorted(read_event_scalars(log_dir).items()):
        if not tag.startswith(prefixes):
            continue
        entry = {"final": float(rows[-1, 2]), "final_step": int(rows[-1, 0])}
        if not tag.endswith(NO_DIRECTION):
            best = rows[:, 2].argmin() if tag.endswith(LOWER_IS_BETTER) else rows[:, 2].argmax()
            entry.update(best=float(rows[best, 2]), best_step=int(rows[best, 0]))
        summary[tag] = entry
    return summary


def _read_json(path: Path) -> Optional[Dict[str, Any]]:
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except (OSError, json.JSONDecodeError):
        return None  # a torn or foreign file: the summary leaves the entry out rather than fail the pipeline


def stage_summary(stage: str, directory: Path, record: Dict[str, Any]) -> Dict[str, Any]:
    """One stage's entry of ``pipeline_summary.json`` (see the module docstring)."""
    from embodireward.tools.runs import event_dir

    entry: Dict[str, Any] = {"dir": str(directory), "seconds": record.get("seconds")}
    log_dir = event_dir(directory)
    if stage == "reward_model":
        metrics = _read_json(directory / "metrics.json") or {}
        entry.update(model=str(directory / "best_model.safetensors"), best_epoch=metrics.get("best_epoch"),
                     recommended_threshold=metrics.get("recommended_threshold"))
        evaluation = _read_json(directory / "evaluation" / "reward_eval.json")
        if evaluation is not None:
            entry["evaluation"] = evaluation
        prefixes = REWARD_MODEL_PREFIXES
    else:
        entry["checkpoint"] = str(directory / "checkpoints" / "latest.pt")
        if (directory / "checkpoints" / "best.pt").is_file():
            entry["best_checkpoint"] = str(directory / "checkpoints" / "best.pt")
        if record.get("reward_model_total"):
            totals = dict(record["reward_model_total"])
            seconds = totals.pop("seconds", None)
            entry["reward_model_vs_true_success"] = totals
            if seconds is not None and record.get("seconds"):
                # the hook's inference time against the whole stage's: the learned reward's cost
                entry["reward_model_seconds"] = round(seconds, 1)
                entry["reward_model_share_of_stage_time"] = round(seconds / record["seconds"], 4)
        refreshes = _read_json(directory / "reward_models" / "refreshes.json")
        if refreshes:
            last_model = next((r for r in reversed(refreshes) if "model" in r), None)
            entry["refresh"] = {"refreshes": len(refreshes), "labels_used": refreshes[-1]["labels_used"],
                                "models": sum("model" in r for r in refreshes),
                                "latest_model": str(directory / "reward_models" / f"{last_model['model']}.safetensors") if last_model else None,
                                "records": str(directory / "reward_models" / "refreshes.json")}
        prefixes = PPO_PREFIXES
    entry["scalars"] = scalar_summary(log_dir, prefixes) if log_dir is not None else {}
    return entry


def write_summary_and_report(pipeline: "Pipeline", config_path: Optional[Path] = None) -> Path:
    """(Re)write ``pipeline_summary.json``, the curve figure and ``report.md`` for the finished stages."""
    from embodireward.pipeline import DONE_MARKER, STAGES

    root = pipeline.root
    stages = {}
    for stage in STAGES:
        record = _read_json(pipeline.stage_dir[stage] / DONE_MARKER)
        if record is not None:
            stages[stage] = stage_summary(stage, pipeline.stage_dir[stage], record)
    figures = draw_curves(root, stages)
    summary = {"root": str(root), "config": str(config_path.resolve()) if config_path else None, "stages": stages,
               "figures": figures, "report": str(root / REPORT_NAME)}
    atomic_write_json(root / SUMMARY_NAME, summary)
    atomic_write_text(root / REPORT_NAME, render_report(root, summary))
    return root / SUMMARY_NAME


def draw_curves(root: Path, stages: Dict[str, Dict[str, Any]]) -> List[str]:
    """The first of ``CURVE_TAGS`` the PPO stages logged, one panel per stage, into ``figures/``."""
    from embodireward.tools.plot import plot_runs

    logged = {tag for entry in stages.values() for tag in entry["scalars"]}
    tag = next((tag for tag in CURVE_TAGS if tag in logged), None)
    if tag is None:
        return []
    png, csv_path, _ = plot_runs([str(root)], tag, out=root / FIGURES_DIR / f"{tag.replace('/', '_')}.png",
                                 title=f"{tag} per stage")
    return [str(png), str(csv_path)]


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _scalar_table(scalars: Dict[str, Dict[str, float]]) -> List[str]:
    lines = ["| scalar | final (step) | best (step) |", "| --- | --- | --- |"]
    for tag, entry in scalars.items():
        best = f"{_number(entry['best'])} ({entry['best_step']})" if "best" in entry else ""
        lines.append(f"| `{tag}` | {_number(entry['final'])} ({entry['final_step']}) | {best} |")
    return lines


def _link(root: Path, path: Path, text: str, image: bool = False) -> str:
    relative = Path(os.path.relpath(path, root)).as_posix()
    return f"{'!' if image else ''}[{text}]({relative})"


def _confusion(confusion: Any) -> List[str]:
    if isinstance(confusion, dict) and {"tp", "fp", "tn", "fn"} <= set(confusion):
        c = confusion
    elif isinstance(confusion, list) and len(confusion) == 2 and all(len(row) == 2 for row in confusion):
        (c_tn, c_fp), (c_fn, c_tp) = confusion  # sklearn's layout: rows true class 0/1, columns predicted 0/1
        c = {"tn": c_tn, "fp": c_fp, "fn": c_fn, "tp": c_tp}
    else:
        return [f"confusion matrix: `{json.dumps(confusion)}`"]
    return ["| | predicted success | predicted failure |", "| --- | --- | --- |",
            f"| true success | {c['tp']} (TP) | {c['fn']} (FN) |", f"| true failure | {c['fp']} (FP) | {c['tn']} (TN) |"]


def render_report(root: Path, summary: Dict[str, Any]) -> str:
    stages = summary["stages"]
    lines = [f"# Pipeline report: {root.name}", ""]
    total = sum(entry["seconds"] or 0 for entry in stages.values())
    lines += [f"{len(stages)} of 3 stages finished, {total:.0f} s of stage time. "
              f"Numbers: {_link(root, root / SUMMARY_NAME, SUMMARY_NAME)}.", ""]
    for number, (stage, entry) in enumerate(stages.items(), start=1):
        directory = Path(entry["dir"])
        lines += [f"## {number}. {STAGE_TITLES[stage]} ({_link(root, directory, directory.name)})", ""]
        if stage == "reward_model":
            lines += _reward_model_section(root, directory, entry)
        totals = entry.get("reward_model_vs_true_success")
        if totals:
            scores = ", ".join(f"{key.replace('_', ' ')} {_number(totals[key])}" for key in AGREEMENT_KEYS if key in totals)
            lines += [f"The reward model against the env's true success over the {totals.get('images', 0):.0f} "
                      f"frames it scored in this stage: {scores}. Falling precision while the learned reward rises "
                      "means the policy found frames the model mistakes for success (reward hacking).", ""]
        if "reward_model_share_of_stage_time" in entry:
            lines += [f"Reward-model inference took {entry['reward_model_seconds']:.0f} s, "
                      f"{100 * entry['reward_model_share_of_stage_time']:.1f}% of the stage's wall time.", ""]
        if entry["scalars"]:
            lines += _scalar_table(entry["scalars"]) + [""]
    for path in summary["figures"]:
        path = Path(path)
        lines += [_link(root, path, path.stem, image=True), ""] if path.suffix == ".png" else [f"Data: {_link(root, path, path.name)}", ""]
    return "\n".join(lines)


def _reward_model_section(root: Path, directory: Path, entry: Dict[str, Any]) -> List[str]:
    lines = []
    if entry.get("recommended_threshold") is not None:
        lines += [f"Best epoch {entry.get('best_epoch')}, recommended threshold {_number(entry['recommended_threshold'])} "
                  f"(model: {_link(root, Path(entry['model']), Path(entry['model']).name)}).", ""]
    evaluation = entry.get("evaluation")
    if evaluation is not None:
        shown = [key for key in LEAD_METRICS if key in evaluation]
        lines += ["Evaluation on the validation split (balanced accuracy, precision and recall first: "
                  "the classes are imbalanced):", "", "| " + " | ".join(shown) + " |", "|" + " --- |" * len(shown),
                  "| " + " | ".join(_number(evaluation[key]) for key in shown) + " |", ""]
        if "confusion" in evaluation:
            lines += _confusion(evaluation["confusion"]) + [""]
    for name, text in EVAL_FIGURES:
        if (directory / "evaluation" / name).is_file():
            lines += [f"{text}:", "", _link(root, directory / "evaluation" / name, text, image=True), ""]
    return lines
