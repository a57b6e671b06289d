"""The one-config, three-stage pipeline with tiny settings: chaining, skipping, --force."""
import json

import pytest

from embodireward.config import ConfigError
from embodireward.pipeline import Pipeline
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

    again = run_module("embodireward.train", "--config", str(config_path), cwd=tmp_path)
    assert again.returncode == 0
    assert again.stdout.count("already finished") == 3

    forced = run_module("embodireward.train", "--config", str(config_path), "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr[-3000:]
    assert "already finished" not in forced.stdout
    assert len(list((tmp_path / "outputs" / "tiny").glob("1_warmup.replaced_*"))) == 1  # moved aside, not deleted


def test_pipeline_rejects_a_bad_stage_before_running_anything(tmp_path):
    pipeline = tiny_pipeline(tmp_path)
    pipeline["learned_reward"]["algorithm"]["cfg"]["gama"] = 0.9
    with pytest.raises(ConfigError, match=r"^learned_reward.algorithm.cfg.gama: unknown key \(did you mean gamma\?\)"):
        Pipeline(pipeline).validate()
    pipeline = tiny_pipeline(tmp_path)
    pipeline["warmup"]["callbacks"] = []
    with pytest.raises(ConfigError, match="reward_data_collection"):
        Pipeline(pipeline)
    assert not (tmp_path / "outputs").exists()
