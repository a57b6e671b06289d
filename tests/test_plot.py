"""``embodireward plot``: seeds grouped, mean and t-band against the raw TensorBoard scalars, pipeline panels."""
import csv
import json
import math
import shutil

import numpy as np
import pytest
from scipy import stats
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from embodireward.cli import CommandError
from embodireward.tools.plot import main as plot_main
from embodireward.tools.runs import experiment_label, group_runs, load_run
from embodireward.train import train_from_dict
from tests.conftest import run_module, tiny_train_config

TAG = "eval/return"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three seeds of one config and one run of the same name with another learning rate."""
    root = tmp_path_factory.mktemp("plot")
    for name, seed, learning_rate in (("tiny_0", 0, 3e-4), ("tiny_1", 1, 3e-4), ("tiny_2", 2, 3e-4), ("tiny_7", 7, 1e-3)):
        config = tiny_train_config(root, iterations=3, eval_freq=1, eval_episodes=16, seed=seed, run_dir=str(root / "runs" / name))
        config["algorithm"]["cfg"]["learning_rate"] = learning_rate
        assert train_from_dict(config) == 0
    return root


def tensorboard_values(run_dir, tag):
    accumulator = EventAccumulator(str(run_dir / "logs"))
    accumulator.Reload()
    return {event.step: event.value for event in accumulator.Scalars(tag)}


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_three_seeds_give_their_mean_and_t_band_in_png_and_csv(runs):
    out = runs / "figures" / "return.png"
    assert plot_main([str(runs / "runs" / "tiny_*"), "--tag", TAG, "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    rows = read_csv(out.with_suffix(".csv"))
    groups = {row["experiment"] for row in rows}
    assert groups == {"tiny (algorithm.cfg.learning_rate=0.0003)", "tiny (algorithm.cfg.learning_rate=0.001)"}
    seeds = [tensorboard_values(runs / "runs" / f"tiny_{seed}", TAG) for seed in (0, 1, 2)]
    grouped = [row for row in rows if row["experiment"].endswith("0.0003)")]
    assert [int(row["env_steps"]) for row in grouped] == sorted(seeds[0]) == [128, 256, 384]
    for row in grouped:
        values = np.array([run[int(row["env_steps"])] for run in seeds], dtype=np.float64)
        assert int(row["runs"]) == 3
        assert float(row["mean"]) == pytest.approx(values.mean(), rel=1e-12)
        half = stats.t.ppf(0.975, 2) * values.std(ddof=1) / math.sqrt(3)  # t_{0.975, n-1} s / sqrt(n)
        assert float(row["ci95_low"]) == pytest.approx(values.mean() - half, rel=1e-9)
        assert float(row["ci95_high"]) == pytest.approx(values.mean() + half, rel=1e-9)
    single = [row for row in rows if row["experiment"].endswith("0.001)")]
    assert all(row["runs"] == "1" and row["ci95_low"] == "" for row in single)


def test_wall_time_axis_starts_at_zero_and_grows(runs):
    out = runs / "figures" / "wall.png"
    assert plot_main([str(runs / "runs" / "tiny_0"), "--tag", TAG, "--x", "wall_time", "--out", str(out)]) == 0
    seconds = [float(row["wall_time"]) for row in read_csv(out.with_suffix(".csv"))]
    assert seconds[0] == 0.0 and seconds == sorted(seconds) and seconds[-1] > 0


def test_a_pipeline_directory_gives_one_panel_per_stage(runs):
    for seed in (0, 1):  # two seeds of a pipeline, stage runs copied from the training runs
        pipeline = runs / "pipelines" / f"pipe_seed{seed}"
        shutil.copytree(runs / "runs" / f"tiny_{seed}", pipeline / "1_warmup")
        shutil.copytree(runs / "runs" / f"tiny_{seed + 1}", pipeline / "3_learned_reward")
        (pipeline / "pipeline_summary.json").write_text("{}")
    out = runs / "figures" / "pipeline.png"
    assert plot_main([str(runs / "pipelines" / "*"), "--tag", TAG, "--out", str(out)]) == 0
    rows = read_csv(out.with_suffix(".csv"))
    assert {row["panel"] for row in rows} == {"warmup", "learned_reward"}
    warmup = [row for row in rows if row["panel"] == "warmup"]
    expected = np.mean([tensorboard_values(runs / "runs" / f"tiny_{seed}", TAG)[384] for seed in (0, 1)])
    assert {row["experiment"] for row in warmup} == {"pipe"} and warmup[-1]["runs"] == "2"
    assert float(warmup[-1]["mean"]) == pytest.approx(expected, rel=1e-12)


def test_grouping_rule(runs, tmp_path):
    assert experiment_label("push_cube_2d_ppo_20250101_120000") == "push_cube_2d_ppo"
    assert experiment_label("ppo_seed3_20250101_120000") == "ppo"
    assert [experiment_label(name) for name in ("ppo_3", "ppo-s2", "ppo_seed-4", "pickcube_v1")] == ["ppo", "ppo", "ppo", "pickcube_v1"]
    # same name, configs differing only in seed and paths: one experiment
    seed_runs = [load_run(runs / "runs" / f"tiny_{seed}", f"tiny_{seed}") for seed in (0, 1, 2)]
    assert [run.seed for run in seed_runs] == [0, 1, 2]
    assert list(group_runs(seed_runs)) == ["tiny"]
    other = tmp_path / "tiny_5"
    shutil.copytree(runs / "runs" / "tiny_0", other)
    config = json.loads((other / "config.json").read_text())
    config["env"]["cfg"]["episode_length"] = 7
    (other / "config.json").write_text(json.dumps(config))
    assert len(group_runs(seed_runs + [load_run(other, "tiny_5")])) == 2


def test_bad_input_is_one_line(runs, tmp_path):
    with pytest.raises(CommandError, match=r"--tag eval/retrun: no run logged it \(did you mean eval/return\?\)"):
        plot_main([str(runs / "runs" / "tiny_0"), "--tag", "eval/retrun", "--out", str(tmp_path / "x.png")])
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_module("embodireward", "plot", str(empty), str(tmp_path / "absent_*"))
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith("error: ") and "absent_*" in result.stderr
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "plots").exists()
