"""early_stopping: a run ends once an eval metric has held a bar for `patience` evaluations."""
from __future__ import annotations

import copy

import pytest

from embodireward.config import ConfigError
from embodireward.train import train_from_dict
from embodireward.trainer.checkpoint import load_checkpoint
from tests.conftest import tiny_train_config


def with_early_stopping(tmp_path, iterations=10, eval_freq=2, **cfg):
    config = tiny_train_config(tmp_path, iterations=iterations, eval_freq=eval_freq, eval_episodes=4)
    config["callbacks"] = [{"name": "early_stopping", "cfg": cfg}]
    return config


def test_stops_after_patience_evaluations_at_the_bar(tmp_path, capsys):
    # every episode lasts episode_length = 6 steps: eval/length >= 6 holds at every evaluation
    config = with_early_stopping(tmp_path, metric="eval/length", threshold=6, patience=2)
    assert train_from_dict(config) == 0
    state = load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")
    assert state["iteration"] == 4  # evaluations at iterations 2 and 4, then stop
    assert "stopping after iteration 4: eval/length=6.000 >= 6.0 for 2 evaluation(s) in a row" in capsys.readouterr().out


def test_never_at_the_bar_runs_every_iteration(tmp_path):
    config = with_early_stopping(tmp_path, iterations=4, metric="eval/length", threshold=7)
    assert train_from_dict(config) == 0
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")["iteration"] == 4


@pytest.mark.parametrize("cfg, eval_freq, message", [
    ({"patience": 0}, 2, r"^callbacks\[0\]\.cfg\.patience: must be >= 1, got 0"),
    ({"metric": "eval/succes_rate"}, 2, r"^callbacks\[0\]\.cfg\.metric: expected one of eval/success_rate"),
    ({}, 0, r"^early_stopping\.metric: runtime\.eval_freq is 0"),
])
def test_bad_settings_are_one_line_errors_before_the_run_starts(tmp_path, cfg, eval_freq, message):
    config = with_early_stopping(tmp_path, eval_freq=eval_freq, **copy.deepcopy(cfg))
    with pytest.raises(ConfigError, match=message):
        train_from_dict(config)
    assert not (tmp_path / "run").exists()
