"""The one-config, three-stage pipeline with tiny settings: chaining, skipping, --force, summary and report."""
import json
import re
from pathlib import Path

import pytest

from embodireward.config import ConfigError
from embodireward.pipeline import Pipeline, run_pipeline
from tests.conftest import REPO_ROOT, run_module, write_json


def tiny_pipeline(tmp_path) -> dict:
    pipeline = json.loads((REPO_ROOT / "configs/push_cube_2d/pipeline.json").read_text())
    pipeline["pipeline"].update(output_dir=str(tmp_path / "outputs"), exp_name="tiny")
    base = pipeline["base"]
    base["runtime"].update(rollout_steps=6, eval_freq=0, progress_bar=False, device="cpu", num_threads=1)
    # a goal disc so large that many episodes start in it: both classes appear without learning
    base["env"]["cfg"].update(num_envs=8, episode_length=6, image_size=32, goal_radius=0.45)
    for block in ("actor", "critic"):
        base["policy"][block]["hidden_sizes"] = [16]
    base["algorithm"]["cfg"].update(num_minibatches=2, num_epochs=1)
    pipeline["warmup"]["runtime"]["iterations"] = 3
    pipeline["warmup"]["callbacks"][0]["cfg"].update(target_success=None, target_failure=None, sample_rate_fail=1.0)
    pipeline["reward_model"].update(epochs=1, batch_size=8, progress_bar=False, device="cpu")
    pipeline["reward_model"]["model"]["cfg"].update(image_size=[32, 32], hidden_dim=16)
    pipeline["learned_reward"]["runtime"]["iterations"] = 1
    return pipeline


def test_pipeline_chains_stages_and_skips_finished_ones(tmp_path):
    config_path = write_json(tmp_path / "pipeline.json", tiny_pipeline(tmp_path))
    first = run_module("embodireward.train", "--config", str(config_path), cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    root = tmp_path / "outputs" / "tiny"
    assert json.loads((root / "reward_data" / "manifest.json").read_text())["format"] == "frames"
    assert (root / "2_reward_model" / "best_model.safetensors").is_file()
    learned = json.loads((root / "3_learned_reward" / "config.json").read_text())
    assert learned["runtime"]["init_from"] == str(root / "1_warmup" / "checkpoints" / "latest.pt")
    assert learned["reward"]["checkpoint_path"] == str(root / "2_reward_model" / "best_model.safetensors")
    assert learned["reward"]["use_reward_model"] is True
    assert "initialised policy weights from" in first.stdout
    summary = json.loads((root / "pipeline_summary.json").read_text())
    assert set(summary["stages"]) == {"warmup", "reward_model", "learned_reward"}
    check_summary_against_logs(root, summary)
    check_report_links(root)
    watched = run_module("embodireward", "eval", str(root / "3_learned_reward"), "--episodes", "8", "--video", cwd=tmp_path)
    assert watched.returncode == 0, watched.stderr[-3000:]
    scored = json.loads((root / "3_learned_reward" / "eval" / "latest.json").read_text())["reward_model"]
    assert scored["path"] == str(root / "2_reward_model" / "best_model.safetensors")  # the run's own model

    again = run_module("embodireward.train", "--config", str(config_path), cwd=tmp_path)
    assert again.returncode == 0
    assert again.stdout.count("already finished") == 3
    assert json.loads((root / "pipeline_summary.json").read_text())["stages"] == summary["stages"]  # rebuilt alike

    stale = {**summary, "stages": {**summary["stages"], "old_stage": {"dir": "gone"}}}
    (root / "pipeline_summary.json").write_text(json.dumps(stale))
    forced = run_module("embodireward.train", "--config", str(config_path), "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr[-3000:]
    assert "already finished" not in forced.stdout
    assert len(list((tmp_path / "outputs" / "tiny").glob("1_warmup.replaced_*"))) == 1  # moved aside, not deleted
    assert set(json.loads((root / "pipeline_summary.json").read_text())["stages"]) == {"warmup", "reward_model", "learned_reward"}
    (old_summary,) = root.glob("pipeline_summary.json.replaced_*")
    assert "old_stage" in json.loads(old_summary.read_text())["stages"]
    assert len(list(root.glob("report.md.replaced_*"))) == 1
    check_report_links(root)


def check_summary_against_logs(root: Path, summary: dict) -> None:
    """Final and best values are those of the stage's TensorBoard scalars, not a last-iteration snapshot."""
    from embodireward.tools.scalars import read_event_scalars

    for stage, folder in (("warmup", "1_warmup"), ("learned_reward", "3_learned_reward")):
        logged = read_event_scalars(root / folder / "logs")["episode/success_once"]
        entry = summary["stages"][stage]["scalars"]["episode/success_once"]
        assert entry["final"] == pytest.approx(logged[-1, 2]) and entry["best"] == pytest.approx(logged[:, 2].max())
        assert entry["best_step"] == int(logged[logged[:, 2].argmax(), 0])
    loss = read_event_scalars(root / "2_reward_model" / "logs")["val/loss"]
    assert summary["stages"]["reward_model"]["scalars"]["val/loss"]["best"] == pytest.approx(loss[:, 2].min())
    totals = summary["stages"]["learned_reward"]["reward_model_vs_true_success"]
    # the stage is one iteration of 6 steps x 8 envs with episode_length 6: 8 terminal frames scored,
    # and the run totals equal that iteration's logged agreement
    assert totals["images"] == 8
    stage = summary["stages"]["learned_reward"]
    seconds = sum(read_event_scalars(root / "3_learned_reward" / "logs")["reward_model/seconds"][:, 2])
    assert stage["reward_model_seconds"] == pytest.approx(seconds, abs=0.05)
    assert 0 < stage["reward_model_share_of_stage_time"] < 1
    per_iteration = read_event_scalars(root / "3_learned_reward" / "logs")
    for key in ("agreement", "precision", "recall"):
        if f"reward_model/{key}" in per_iteration:
            assert totals[key] == pytest.approx(per_iteration[f"reward_model/{key}"][-1, 2])
    assert summary["stages"]["warmup"]["checkpoint"] == str(root / "1_warmup" / "checkpoints" / "latest.pt")


def check_report_links(root: Path) -> None:
    report = (root / "report.md").read_text()
    links = re.findall(r"\]\(([^)]+)\)", report)
    assert any(link.endswith(".png") for link in links) and "pipeline_summary.json" in links
    missing = [link for link in links if not (root / link).exists()]
    assert not missing, missing


def test_pipeline_rejects_a_bad_stage_before_running_anything(tmp_path):
    pipeline = tiny_pipeline(tmp_path)
    pipeline["learned_reward"]["algorithm"]["cfg"]["gama"] = 0.9
    with pytest.raises(ConfigError, match=r"^learned_reward.algorithm.cfg.gama: unknown key \(did you mean gamma\?\)"):
        Pipeline(pipeline).validate()
    pipeline = tiny_pipeline(tmp_path)
    pipeline["warmup"]["callbacks"] = []
    with pytest.raises(ConfigError, match="reward_data_collection"):
        Pipeline(pipeline)
    pipeline = tiny_pipeline(tmp_path)  # the reward model is checked before the warm-up collects its data
    pipeline["reward_model"]["model"] = {"name": "resnet_reward", "cfg": {"arch": "resnet99"}}
    with pytest.raises(ConfigError, match=r"^reward_model.model.cfg.arch: expected one of 'resnet10'"):
        run_pipeline(pipeline)
    pipeline["reward_model"]["model"] = {"name": "no_such_model"}
    with pytest.raises(ConfigError, match=r"^reward_model.model.name: unknown reward model 'no_such_model'"):
        run_pipeline(pipeline)
    pipeline = tiny_pipeline(tmp_path)  # a per-step reward needs mid-episode frames in the data
    pipeline["learned_reward"]["reward"]["reward_mode"] = "per_step"
    with pytest.raises(ConfigError, match=r"^warmup.callbacks.0.cfg.render: is 'episode_end' \(terminal frames only\), but learned_reward"):
        run_pipeline(pipeline)
    pipeline["warmup"]["callbacks"][0]["cfg"]["render"] = 0.5
    Pipeline(pipeline).validate()
    assert not (tmp_path / "outputs").exists()


def test_warm_start_false_starts_the_learned_reward_stage_from_scratch(tmp_path):
    data = tiny_pipeline(tmp_path)
    assert Pipeline(data).learned_reward["runtime"]["init_from"].endswith("1_warmup/checkpoints/latest.pt")
    data["pipeline"]["warm_start"] = False
    stage = Pipeline(data).learned_reward
    assert "init_from" not in stage["runtime"] and stage["reward"]["checkpoint_path"].endswith("best_model.safetensors")
