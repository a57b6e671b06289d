"""Online refresh of the learned reward (``reward.refresh``): pool, labellers, fine-tune and swap, resume."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from embodireward import builder
from embodireward.config import ConfigError, parse_train_config
from embodireward.pipeline import run_pipeline
from embodireward.rewards.checkpoint import load_reward_model
from embodireward.rewards.data import load_reward_data
from embodireward.rewards.refresh import QueueLabeller, RewardRefresh
from embodireward.rewards.refresh.labellers import LabellerContext, QueueConfig
from embodireward.rewards.refresh.pool import CandidatePool
from embodireward.train import train_from_dict
from embodireward.trainer.checkpoint import load_checkpoint
from embodireward.trainer.trainer import Trainer
from tests.conftest import stop_after
from tests.test_pipeline import tiny_pipeline


@pytest.fixture(scope="module")
def learned_config(tmp_path_factory) -> dict:
    """The resolved learned-reward stage config of a tiny push_cube_2d pipeline (model + data on disk)."""
    tmp = tmp_path_factory.mktemp("refresh")
    run_pipeline(tiny_pipeline(tmp))
    config = json.loads((tmp / "outputs" / "tiny" / "3_learned_reward" / "config.json").read_text())
    config["runtime"].update(init_from=None, resume=None, save_freq=0)
    return config


def refresh_config(base: dict, run_dir: Path, iterations: int = 2, **refresh) -> dict:
    config = copy.deepcopy(base)
    config["runtime"].update(run_dir=str(run_dir), iterations=iterations, rollout_steps=12)  # 16 episode ends per iteration
    config["reward"]["refresh"] = {"every": 1, "frames_per_refresh": 12, "pool_size": 64, "steps": 4, "batch_size": 8, **refresh}
    return config


def build(config: dict) -> Trainer:
    parsed = parse_train_config(config)
    return Trainer(parsed, builder.validate_config(parsed))


def refresher_of(trainer: Trainer) -> RewardRefresh:
    (refresh,) = [cb for cb in trainer.callbacks.callbacks if isinstance(cb, RewardRefresh)]
    return refresh


def weights(model) -> dict:
    return {k: v.clone() for k, v in model.state_dict().items()}


def same_weights(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------------------------------ pool


def pool_batch(pool: CandidatePool, probs, success=None, done=None):
    n = len(probs)
    images = torch.tensor([round(p * 255) for p in probs], dtype=torch.uint8).view(-1, 1, 1, 1).expand(-1, 4, 4, 3).contiguous()
    probs = torch.tensor(probs)
    pool.add(torch.arange(n), {"cam": images}, probs, probs >= 0.5,
             None if success is None else torch.tensor(success), torch.tensor(done if done is not None else [True] * n))


def test_pool_keeps_the_most_confident_and_a_bounded_random_sample():
    pool = CandidatePool(num_envs=4, camera_key="cam", confident_size=3, random_size=5, seed=0)
    for k in range(5):
        pool_batch(pool, [0.1 * k, 0.95 - 0.01 * k, 0.2, 0.3], success=[False, True, False, False])
    assert sorted(pool.parts["confident"]["probs"].tolist(), reverse=True) == pytest.approx([0.95, 0.94, 0.93])
    assert len(pool.parts["random"]["frame_id"]) == 5 and pool.scored == 20
    first = pool.select(4, 0.5, exclude=set())
    assert first["probs"][:2].tolist() == pytest.approx([0.95, 0.94]) and len(set(first["frame_id"].tolist())) == 4
    second = pool.select(4, 0.5, exclude=set(first["frame_id"].tolist()))
    assert not set(second["frame_id"].tolist()) & set(first["frame_id"].tolist())  # a frame is offered once
    # episode ids: every env ended every step, so 20 distinct trajectories
    assert len(set(pool.parts["random"]["trajectory"].tolist())) == 5
    assert pool.drift() == 0.0  # 5 predicted, 5 true successes
    pool_batch(pool, [0.9] * 4, success=[False] * 4)
    assert pool.drift() == pytest.approx(4 / 24)
    pool.clear()
    assert pool.drift() is None and pool.select(4, 0.5, set()) == {}


def test_uniform_confident_selection_samples_the_frames_the_model_pays_not_the_highest():
    # the blind spot: many frames at P 0.7 (predicted successes, all false), a few real successes at P 0.99
    probs = [0.99] * 4 + [0.7] * 36 + [0.1] * 20
    success = [True] * 4 + [False] * 56
    highest = CandidatePool(num_envs=60, camera_key="cam", confident_size=4, random_size=8, seed=0)
    uniform = CandidatePool(num_envs=60, camera_key="cam", confident_size=4, random_size=8, seed=0, confident_selection="uniform")
    for pool in (highest, uniform):
        pool_batch(pool, probs, success=success)
    assert highest.select(4, 1.0, exclude=set())["success"].tolist() == [True] * 4  # labels spent on real successes
    # a uniform sample of the 40 paid frames (1 in 10 a real success): never an unpaid one, mostly the blind spot
    paid = uniform.parts["confident"]["probs"]
    assert len(paid) == 4 and bool((paid >= 0.5).all())
    picked = uniform.select(4, 1.0, exclude=set())
    assert len(picked["frame_id"]) == 4 and int(picked["success"].sum()) <= 1
    # unpaid batches leave the uniform part as it is
    pool_batch(uniform, [0.2] * 60)
    assert torch.equal(uniform.parts["confident"]["probs"], paid)


def test_pool_trajectory_ids_follow_episodes():
    pool = CandidatePool(num_envs=2, camera_key="cam", confident_size=8, random_size=8)
    pool_batch(pool, [0.1, 0.2], done=[False, True])
    pool_batch(pool, [0.3, 0.4], done=[True, False])
    rows = pool.parts["random"]
    by_frame = dict(zip(rows["frame_id"].tolist(), rows["trajectory"].tolist()))
    assert by_frame[0] == by_frame[2] and by_frame[1] != by_frame[3] and len({by_frame[1], by_frame[3], by_frame[0]}) == 3


# ------------------------------------------------------------------------------------------ labellers


def queue_frames(n: int) -> dict:
    images = torch.stack([torch.full((4, 4, 3), 40 * i, dtype=torch.uint8) for i in range(n)])
    return {"images": images, "frame_id": torch.arange(10, 10 + n), "trajectory": torch.arange(100, 100 + n),
            "success": torch.zeros(n, dtype=torch.bool), "probs": torch.ones(n)}


def test_queue_labeller_picks_up_answers_written_to_disk(tmp_path):
    lines = []
    queue = QueueLabeller(QueueConfig(), LabellerContext(tmp_path, True, lines.append))
    queue.on_train_start()
    queue.submit(queue_frames(3))
    pending = sorted(p.name for p in (tmp_path / "label_queue" / "pending").iterdir())
    assert pending == ["00000010.json", "00000010.png", "00000011.json", "00000011.png", "00000012.json", "00000012.png"]
    assert queue.ready() == []  # nobody answered yet: training goes on
    answers = tmp_path / "label_queue" / "answers"
    (answers / "00000010.json").write_text(json.dumps({"label": "success"}))
    (answers / "00000012.json").write_text(json.dumps({"label": 0}))
    (answers / "00000011.json").write_text("{half writ")
    ready = queue.ready()
    assert [(f, t, label, state) for f, t, _, label, state in ready] == [(10, 100, 1, None), (12, 102, 0, None)]
    assert torch.equal(ready[1][2], torch.full((4, 4, 3), 80, dtype=torch.uint8))
    assert sum("00000011.json skipped" in line for line in lines) == 1
    assert queue.ready() == [] and sum("skipped" in line for line in lines) == 1  # reported once
    (answers / "00000011.json").write_text(json.dumps({"label": "failure"}))  # the tool finished writing
    assert [(f, label) for f, _, _, label, _ in queue.ready()] == [(11, 0)]
    assert not list((tmp_path / "label_queue" / "pending").iterdir()) and not list(answers.iterdir())


def test_the_queue_keeps_each_frames_robot_state(tmp_path):
    queue = QueueLabeller(QueueConfig(), LabellerContext(tmp_path, True, print))
    queue.on_train_start()
    frames = queue_frames(2) | {"robot_state": torch.tensor([[0.5, -1.25, 3.0], [2.0, 0.0, -0.125]])}
    queue.submit(frames)
    for stem in ("00000010", "00000011"):
        (tmp_path / "label_queue" / "answers" / f"{stem}.json").write_text(json.dumps({"label": 1}))
    ready = queue.ready()
    assert [f for f, *_ in ready] == [10, 11]
    assert torch.equal(torch.stack([state for *_, state in ready]), frames["robot_state"])
    assert torch.equal(ready[1][2], torch.full((4, 4, 3), 40, dtype=torch.uint8))


# ------------------------------------------------------------------------------------------ in a run


def test_refresh_fine_tunes_saves_and_swaps_the_model(tmp_path, learned_config):
    trainer = build(refresh_config(learned_config, tmp_path / "run", label_budget=20))
    hook = trainer.reward_hook
    original_model, original_inference = hook.model, hook.manager.models[hook.section.name]
    before = weights(original_model)
    trainer.train()
    refresh = refresher_of(trainer)
    records = json.loads((tmp_path / "run" / "reward_models" / "refreshes.json").read_text())
    assert [r["refresh"] for r in records] == [1, 2] and records[0]["labels_used"] == 12 and records[1]["labels_used"] == 20
    assert records[1]["requested"] == 8  # the budget capped the second request
    # the refresh changed the model, into new objects: the old ones were never modified in place
    assert hook.model is not original_model and hook.manager.models[hook.section.name] is not original_inference
    assert same_weights(weights(original_model), before)
    assert not same_weights(weights(hook.model), before)
    saved = load_reward_model(tmp_path / "run" / "reward_models" / "refresh_002.safetensors")
    assert same_weights(weights(saved), weights(hook.model)) and saved.sidecar["refresh"]["labels_used"] == 20
    assert saved.sidecar["recommended_threshold"] == pytest.approx(hook.threshold)
    assert {"predicted_rate_before", "predicted_rate_after", "recall_before", "recall_after"} <= set(records[1])
    # every labelled frame is in the data set once
    data = load_reward_data(tmp_path / "run" / "refresh_data", require_every_class=False)
    assert len(data) == 20 == len(refresh.labelled_ids)
    manifest = json.loads((tmp_path / "run" / "refresh_data" / "manifest.json").read_text())
    assert sum(manifest["counts"].values()) == 20
    frame = (10**6, 7, data.images[refresh.camera_key][0].permute(1, 2, 0).contiguous(), 1, None)
    assert refresh._add_to_data([frame, frame]) == {"total": 1, "success": 1}
    assert refresh._add_to_data([frame]) == {"total": 0, "success": 0}
    assert len(load_reward_data(tmp_path / "run" / "refresh_data", require_every_class=False)) == 21


def test_a_refresh_that_cannot_save_keeps_the_current_model(tmp_path, learned_config, monkeypatch):
    trainer = build(refresh_config(learned_config, tmp_path / "run", iterations=1))
    hook = trainer.reward_hook
    inference = hook.manager.models[hook.section.name]

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("embodireward.rewards.refresh.refresher.save_reward_model", full_disk)
    trainer.train()
    assert hook.manager.models[hook.section.name] is inference
    (record,) = json.loads((tmp_path / "run" / "reward_models" / "refreshes.json").read_text())
    assert record["error"].startswith("OSError") and "model" not in record


def test_vice_labels_policy_frames_as_failures_without_budget(tmp_path, learned_config):
    trainer = build(refresh_config(learned_config, tmp_path / "run", iterations=1, labeller={"name": "vice"}, label_budget=0))
    trainer.train()
    (record,) = json.loads((tmp_path / "run" / "reward_models" / "refreshes.json").read_text())
    assert record["labels_used"] == 0 and record["labels_added"] == 12 and record["labels_added_success"] == 0
    data = load_reward_data(tmp_path / "run" / "refresh_data", require_every_class=False)
    assert data.labels.tolist() == [0] * 12


def test_queue_refresh_waits_for_answers_then_fine_tunes(tmp_path, learned_config):
    trainer = build(refresh_config(learned_config, tmp_path / "run", iterations=1, labeller={"name": "queue"}))
    original = trainer.reward_hook.model
    trainer.train()
    (record,) = json.loads((tmp_path / "run" / "reward_models" / "refreshes.json").read_text())
    assert record["requested"] == 12 and record["labels_added"] == 0 and "model" not in record
    assert trainer.reward_hook.model is original  # nothing answered: nothing to learn from
    for i, meta in enumerate(sorted((tmp_path / "run" / "label_queue" / "pending").glob("*.json"))):
        (tmp_path / "run" / "label_queue" / "answers" / meta.name).write_text(json.dumps({"label": i % 2}))
    resumed = refresh_config(learned_config, tmp_path / "run", iterations=2, labeller={"name": "queue"})
    resumed["runtime"]["resume"] = str(tmp_path / "run")
    assert train_from_dict(resumed) == 0
    records = json.loads((tmp_path / "run" / "reward_models" / "refreshes.json").read_text())
    assert records[1]["labels_added"] == 12 and records[1]["labels_added_success"] == 6 and records[1]["model"] == "refresh_001"


def test_resumed_refresh_run_equals_an_uninterrupted_one(tmp_path, learned_config):
    whole = refresh_config(learned_config, tmp_path / "whole", iterations=3)
    assert train_from_dict(whole) == 0
    cut = stop_after(refresh_config(learned_config, tmp_path / "cut", iterations=3), 2)
    with pytest.raises(KeyboardInterrupt):
        train_from_dict(cut)
    resumed = copy.deepcopy(cut)  # the same config: the stop callback has passed its iteration
    resumed["runtime"]["resume"] = str(tmp_path / "cut")
    assert train_from_dict(resumed) == 0
    drop = ("seconds",)
    records = [[{k: v for k, v in r.items() if k not in drop} for r in json.loads((tmp_path / name / "reward_models" / "refreshes.json").read_text())]
               for name in ("whole", "cut")]
    assert records[0] == records[1]
    a, b = (load_checkpoint(tmp_path / name / "checkpoints" / "latest.pt")["policy"] for name in ("whole", "cut"))
    assert same_weights(a, b)


@pytest.mark.parametrize("refresh,path", [
    ({"every": 0}, "reward.refresh.every"),
    ({"labeller": {"name": "envsuccess"}}, "reward.refresh.labeller.name"),
    ({"labeller": {"name": "queue", "cfg": {"queue": "x"}}}, "reward.refresh.labeller.cfg.queue"),
    ({"confident_fraction": 1.5}, "reward.refresh.confident_fraction"),
    ({"confident_selection": "top"}, "reward.refresh.confident_selection"),
    ({"label_budget": -1}, "reward.refresh.label_budget"),
])
def test_bad_refresh_settings_are_one_line_errors_before_any_file(tmp_path, learned_config, refresh, path):
    config = refresh_config(learned_config, tmp_path / "run", **refresh)
    with pytest.raises(ConfigError) as err:
        build(config)
    assert str(err.value).startswith(f"{path}: ") and "\n" not in str(err.value)
    assert not (tmp_path / "run").exists()


def test_refresh_needs_a_reward_model(tmp_path, tiny_config):
    tiny_config["reward"] = {"refresh": {"every": 1}}
    with pytest.raises(ConfigError, match=r"^reward.refresh: needs use_reward_model: true"):
        parse_train_config(tiny_config)


def test_the_run_scores_rewards_at_the_runtime_precision(tmp_path, learned_config):
    config = copy.deepcopy(learned_config)
    config["runtime"].update(run_dir=str(tmp_path / "run"), precision="bf16")
    assert build(config).reward_hook.precision.name == "bf16"


def test_refresh_images_are_written_as_the_env_renders_them(tmp_path, learned_config):
    trainer = build(refresh_config(learned_config, tmp_path / "run", iterations=1, labeller={"name": "vice"}))
    trainer.train()
    (first,) = sorted((tmp_path / "run" / "refresh_data" / "failure").glob("*.png"))[:1]
    image = iio.imread(first)
    assert image.dtype == np.uint8 and image.shape == (32, 32, 3)


def test_readme_labeller_example_labels_a_refresh(tmp_path, learned_config):
    from tests.test_readme_examples import readme_example

    plugin = tmp_path / "every_other.py"
    plugin.write_text(readme_example("### Writing a labeller"))
    config = refresh_config(learned_config, tmp_path / "run", iterations=1, labeller={"name": "every_other"})
    config["plugins"] = [str(plugin)]
    train_from_dict(config)
    (record,) = json.loads((tmp_path / "run" / "reward_models" / "refreshes.json").read_text())
    assert record["labels_added"] == 12 and record["labels_added_success"] == 6 and record["labels_used"] == 12


def test_pipeline_summary_reports_the_refreshes(tmp_path):
    data = tiny_pipeline(tmp_path)
    data["base"]["runtime"]["rollout_steps"] = 12
    data["learned_reward"]["reward"]["refresh"] = {"every": 1, "frames_per_refresh": 10, "steps": 2, "batch_size": 8}
    summary = run_pipeline(data)["stages"]["learned_reward"]
    assert summary["refresh"]["refreshes"] == 1 and summary["refresh"]["labels_used"] == 10
    assert summary["refresh"]["latest_model"].endswith("refresh_001.safetensors") and Path(summary["refresh"]["latest_model"]).is_file()
    assert summary["scalars"]["refresh/labels_used"]["final"] == 10


def test_refresh_of_a_model_that_reads_the_robot_state_keeps_the_state_with_its_labels(tmp_path):
    pipeline = tiny_pipeline(tmp_path)
    pipeline["warmup"]["callbacks"][0]["cfg"]["robot_state"] = True
    pipeline["reward_model"]["model"]["cfg"]["robot_state_dim"] = 4
    run_pipeline(pipeline)
    config = json.loads((tmp_path / "outputs" / "tiny" / "3_learned_reward" / "config.json").read_text())
    config["runtime"].update(init_from=None, resume=None, save_freq=0)
    trainer = build(refresh_config(config, tmp_path / "run", label_budget=20))
    before = weights(trainer.reward_hook.model)
    trainer.train()
    data = load_reward_data(tmp_path / "run" / "refresh_data", require_every_class=False)
    assert data.robot_state.shape == (20, 4) and data.skipped == 0
    assert data.robot_state[:, :2].abs().max() < 1.0  # the pusher's position: the frames' own robot state
    refreshed = trainer.reward_hook.model
    assert not same_weights(weights(refreshed), before)
    # the fine-tune keeps the standardisation the model was trained with
    assert torch.equal(refreshed.robot_state_encoder.mean, before["robot_state_encoder.mean"])
    records = json.loads((tmp_path / "run" / "reward_models" / "refreshes.json").read_text())
    assert "predicted_rate_after" in records[-1]
