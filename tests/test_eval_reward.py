"""eval-reward: metrics checked by hand, the report files, and agreement with train_reward's own validation."""
from __future__ import annotations

import json
import math

import imageio.v3 as iio
import pytest
import torch

from conftest import run_module
from embodireward.config import ConfigError
from embodireward.rewards.evaluation import confident_mistakes, reward_report
from embodireward.rewards.metrics import average_precision, binary_metrics, class_metrics, reliability
from embodireward.rewards.training import train_reward_model
from embodireward.tools.eval_reward import main
from test_reward_training import train_config, write_frames

torch.set_num_threads(1)
SUMMARY = ("accuracy", "balanced_accuracy", "precision", "recall", "f1", "auroc", "average_precision")


def test_binary_metrics_ap_and_ece_by_hand():
    probs = torch.tensor([0.9, 0.8, 0.8, 0.4, 0.3, 0.2])
    labels = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 0.0])
    m = binary_metrics(probs, labels, 0.5)  # TP 2, FP 1, FN 1, TN 2
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 2 / 3) / 2) and m["precision"] == pytest.approx(2 / 3)
    # thresholds 0.9 -> P 1, R 1/3; 0.8 (tied pair) -> P 2/3, R 2/3; 0.4 -> P 3/4, R 1
    assert average_precision(probs, labels) == pytest.approx(1 / 3 * 1 + 1 / 3 * 2 / 3 + 1 / 3 * 3 / 4)
    bins = reliability(probs, labels, bins=2)  # [0, .5): 0.4 0.3 0.2 -> 1 of 3; [.5, 1]: 0.9 0.8 0.8 -> 2 of 3
    expected = 0.5 * abs(1 / 3 - 0.3) + 0.5 * abs(2 / 3 - 2.5 / 3)
    assert bins["ece"] == pytest.approx(expected) and bins["count"] == [3, 3]
    all_negative = binary_metrics(torch.zeros(4), torch.tensor([0.0, 0.0, 0.0, 1.0]))
    assert all_negative["accuracy"] == 0.75 and all_negative["balanced_accuracy"] == 0.5 and all_negative["recall"] == 0.0


def test_class_metrics_and_report_by_hand():
    probs = torch.tensor([[0.85, 0.1, 0.05], [0.2, 0.75, 0.05], [0.08, 0.62, 0.3], [0.08, 0.2, 0.72], [0.55, 0.05, 0.4]])
    labels = torch.tensor([0, 1, 2, 2, 2])
    m = class_metrics(probs, labels, ["a", "b", "c"])
    assert m["confusion"] == [[1, 0, 0], [0, 1, 0], [1, 1, 1]]
    assert m["per_class"]["c"] == pytest.approx({"precision": 1.0, "recall": 1 / 3, "f1": 0.5, "auroc": 1.0,
                                                 "average_precision": 1.0, "support": 3})
    assert m["balanced_accuracy"] == pytest.approx((1 + 1 + 1 / 3) / 3) and m["accuracy"] == pytest.approx(3 / 5)
    assert m["precision"] == pytest.approx((0.5 + 0.5 + 1) / 3)
    report = reward_report(torch.log(probs), labels, ["a", "b", "c"], None)
    # top-class confidence 0.85 (right), 0.75 and 0.72 (right, one bin), 0.62 (wrong), 0.55 (wrong); 10 bins
    ece = (abs(1 - 0.85) + 2 * abs(1 - (0.75 + 0.72) / 2) + abs(0 - 0.62) + abs(0 - 0.55)) / 5
    assert report["ece"] == pytest.approx(ece) and report["threshold"] is None
    false_pos, false_neg = confident_mistakes(torch.log(probs), labels, 3, None)
    assert false_pos.tolist() == [] and false_neg.tolist() == [2, 4]  # missed successes, lowest P(success) first


def test_eval_reward_equals_train_rewards_own_validation(tmp_path, capsys):
    data = write_frames(tmp_path / "data", n_pos=12, n_neg=18, per_trajectory=3)
    result = train_reward_model(train_config(tmp_path, data, epochs=2, lr=2e-4))  # short: imperfect metrics, a stricter comparison
    out = tmp_path / "out"
    from_training = json.loads((out / "evaluation" / "reward_eval.json").read_text())
    assert from_training["split"] == "val" and from_training["counts"] == result["data"]["val"]

    capsys.readouterr()
    assert main([str(out), "--data", str(data)]) == 0  # auto: the training data -> its validation split
    evaluated = json.loads((out / "evaluation" / "reward_eval.json").read_text())
    assert evaluated["threshold"] == result["recommended_threshold"] and evaluated["split"] == "val"
    for key in (*SUMMARY, "ece"):
        assert evaluated[key] == pytest.approx(from_training[key], abs=1e-6), key
    assert evaluated["confusion"] == from_training["confusion"] and evaluated["counts"] == from_training["counts"]
    printed = capsys.readouterr().out
    assert printed.startswith(f"balanced_accuracy {evaluated['balanced_accuracy']:.4f}  precision ")

    # at threshold 0.5 it reproduces the best epoch's validation metrics, which train_reward computed in memory
    assert main([str(out), "--data", str(data), "--threshold", "0.5"]) == 0
    at_half = json.loads((out / "evaluation" / "reward_eval.json").read_text())
    for key in SUMMARY:
        assert at_half[key] == pytest.approx(result["best"][f"val/{key}"], abs=1e-6), key
    confusion = at_half["confusion"]
    assert sum(map(sum, confusion)) == result["data"]["val"]["samples"] and confusion[1][1] + confusion[1][0] == result["data"]["val"]["positive"]

    for name in ("reliability", "false_positives", "false_negatives"):
        image = iio.imread(out / "evaluation" / f"{name}.png")
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def test_eval_reward_scores_every_frame_of_other_data(tmp_path):
    train_reward_model(train_config(tmp_path, write_frames(tmp_path / "data", n_pos=9, n_neg=9, per_trajectory=3), epochs=1))
    other = write_frames(tmp_path / "other", n_pos=5, n_neg=7, per_trajectory=None, seed=3)
    assert main([str(tmp_path / "out" / "best_model.safetensors"), "--data", str(other)]) == 0
    report = json.loads((tmp_path / "out" / "evaluation" / "reward_eval.json").read_text())
    assert report["split"] == "all" and report["counts"]["samples"] == 12 and report["counts"]["positive"] == 5
    assert not math.isnan(report["auroc"]) and 0.0 <= report["ece"] <= 1.0 and report["inference_precision"] == "fp32"
    assert main([str(tmp_path / "out"), "--data", str(other), "--precision", "bf16"]) == 0
    in_bf16 = json.loads((tmp_path / "out" / "evaluation" / "reward_eval.json").read_text())
    assert in_bf16["inference_precision"] == "bf16" and in_bf16["ece"] != report["ece"]  # really ran in bf16 ...
    assert in_bf16["auroc"] == pytest.approx(report["auroc"], abs=0.05)  # ... and scores about the same


def test_eval_reward_errors_are_one_line_and_write_nothing(tmp_path):
    train_reward_model(train_config(tmp_path, write_frames(tmp_path / "data", n_pos=6, n_neg=6), epochs=1))
    evaluation = tmp_path / "out" / "evaluation"
    before = sorted(p.name for p in evaluation.iterdir())
    proc = run_module("embodireward.tools.eval_reward", str(tmp_path / "out"), "--data", str(tmp_path / "data"), "--threshold", "1.5", timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip() == "error: --threshold: must be in [0, 1], got 1.5"
    proc = run_module("embodireward.tools.eval_reward", str(tmp_path / "out"), "--data", str(tmp_path / "missing"), timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "missing' not found" in proc.stderr
    (evaluation / "reward_eval.json").unlink()
    with pytest.raises(ConfigError, match=r"^reward model checkpoint '.*nowhere' not found|nowhere"):
        main([str(tmp_path / "nowhere"), "--data", str(tmp_path / "data")])
    assert sorted(p.name for p in evaluation.iterdir()) == [name for name in before if name != "reward_eval.json"]
