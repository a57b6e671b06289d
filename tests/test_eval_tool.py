"""``embodireward eval``: re-evaluating a checkpoint reproduces the trainer's evaluation, writes a
decodable MP4 and JSON, overlays a reward model, and trains or writes nothing else."""
import hashlib
import json

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from embodireward.tools.eval_policy import main as eval_main
from embodireward.tools.scalars import read_event_scalars
from embodireward.train import train_from_dict
from tests.conftest import run_module, tiny_train_config

EPISODE_LENGTH = 12
TRAINER_EVAL_EPISODES = 2048


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A short push_cube_2d run whose final evaluation plays 2048 episodes (a precise success rate)."""
    tmp_path = tmp_path_factory.mktemp("eval_tool")
    config = tiny_train_config(tmp_path, iterations=4, eval_freq=4, eval_episodes=TRAINER_EVAL_EPISODES, num_threads=1)
    # a goal so large that about half the episodes succeed: the success rate is informative
    config["env"]["cfg"].update(episode_length=EPISODE_LENGTH, goal_radius=0.45, image_size=32)
    assert train_from_dict(config) == 0
    run = tmp_path / "run"
    scalars = read_event_scalars(run / "logs")
    logged = {tag: float(scalars[tag][-1, 2]) for tag in ("eval/success_rate", "eval/return", "eval/success_once")}
    return run, logged


def files_of(directory):
    return {p.relative_to(directory): hashlib.sha256(p.read_bytes()).hexdigest() for p in directory.rglob("*") if p.is_file()}


def test_default_seeds_replay_the_trainers_own_evaluation(trained_run, capsys):
    run, logged = trained_run
    assert 0.1 < logged["eval/success_rate"] < 0.9, logged  # neither trivial end
    before = files_of(run)
    assert eval_main([str(run)]) == 0
    report = json.loads((run / "eval" / "latest.json").read_text())
    assert report["episodes"] == TRAINER_EVAL_EPISODES
    assert report["success_rate"]["mean"] == logged["eval/success_rate"]
    assert report["success_once"]["mean"] == logged["eval/success_once"]
    assert report["return"]["mean"] == pytest.approx(logged["eval/return"], rel=1e-5)
    rows = report["per_episode"]
    assert len(rows) == TRAINER_EVAL_EPISODES and all(row["length"] == EPISODE_LENGTH for row in rows)
    assert report["success_rate"]["successes"] == sum(row["success"] for row in rows)
    returns = np.array([row["return"] for row in rows])
    assert report["return"]["std"] == pytest.approx(returns.std(ddof=1), rel=1e-6)
    after = files_of(run)
    assert {path for path in after if path not in before or after[path] != before[path]} == {
        (run / "eval" / "latest.json").relative_to(run)}  # nothing trained, nothing else written
    assert "95% Wilson interval" in capsys.readouterr().out


def test_other_episodes_agree_within_the_wilson_interval_and_the_video_decodes(trained_run):
    run, logged = trained_run
    assert eval_main([str(run), "--episodes", "256", "--set", "runtime.seed=5", "--video", "--video-episodes", "4"]) == 0
    report = json.loads((run / "eval" / "latest.json").read_text())
    assert report["episodes"] == 256 and report["reset_seed"] == 5 + 20_000
    low, high = report["success_rate"]["ci95"]
    assert low <= logged["eval/success_rate"] <= high, (report["success_rate"], logged)
    assert report["success_rate"]["mean"] != logged["eval/success_rate"]  # other episodes indeed

    assert report["video"] == str(run / "eval" / "latest.mp4")
    frames = iio.imread(report["video"], plugin="FFMPEG")
    assert frames.shape[0] == EPISODE_LENGTH  # one frame per step of the (equally long) episodes
    # 2 x 2 tiles, each a 32 px image enlarged to 256 px plus its caption band
    assert frames.shape[2] >= 2 * 256 and frames.shape[1] >= 2 * 256 + 40
    assert frames.shape[1] % 16 == 0 and frames.shape[2] % 16 == 0
    table_grey = np.array([200, 200, 200])
    assert np.abs(frames[0, 100:120, 100:120].astype(int) - table_grey).max() < 25  # inside the first tile


def test_stochastic_actions_change_the_episodes(trained_run):
    run, _ = trained_run
    assert eval_main([str(run), "--episodes", "64", "--stochastic", "--set", "env.eval_env.num_envs=32"]) == 0
    stochastic = json.loads((run / "eval" / "latest_stochastic.json").read_text())
    assert stochastic["deterministic"] is False and stochastic["num_envs"] == 32 and stochastic["episodes"] == 64
    assert eval_main([str(run), "--episodes", "64", "--set", "env.eval_env.num_envs=32", "--name", "det"]) == 0
    deterministic = json.loads((run / "eval" / "det.json").read_text())
    assert stochastic["return"]["mean"] != pytest.approx(deterministic["return"]["mean"], rel=1e-3)


def constant_reward_model(directory, logit: float, recommended_threshold: float):
    """A resnet_reward model whose output is ``sigmoid(logit)`` on every image."""
    from embodireward.envs.push_cube_2d import PushCube2D, PushCube2DConfig
    from embodireward.registry import REWARD_MODELS
    from embodireward.rewards import save_reward_model
    from embodireward.rewards.resnet import ResNetRewardConfig

    env = PushCube2D(PushCube2DConfig(num_envs=1, episode_length=EPISODE_LENGTH, goal_radius=0.45, image_size=32), torch.device("cpu"))
    model = REWARD_MODELS.get("resnet_reward")(ResNetRewardConfig(image_size=[32, 32], hidden_dim=8))
    with torch.no_grad():
        output_layer = [layer for layer in model.head if isinstance(layer, torch.nn.Linear)][-1]
        output_layer.weight.zero_()
        output_layer.bias.fill_(logit)
    save_reward_model(model, directory, extra_sidecar={"manifest": {"env": env.describe()}, "recommended_threshold": recommended_threshold})
    return directory


def test_reward_model_probabilities_are_scored_on_every_frame(trained_run, tmp_path):
    run, _ = trained_run
    model_dir = constant_reward_model(tmp_path / "rm", logit=2.0, recommended_threshold=0.7)
    assert eval_main([str(run), "--episodes", "16", "--video", "--video-episodes", "3", "--reward-model", str(model_dir), "--name", "rm"]) == 0
    scored = json.loads((run / "eval" / "rm.json").read_text())["reward_model"]
    probs, truth = np.array(scored["frame_probs"]), np.array(scored["frame_success"])
    assert probs.shape == truth.shape == (EPISODE_LENGTH, 3)
    assert np.allclose(probs, 1 / (1 + np.exp(-2.0)), atol=1e-4)
    assert scored["threshold"] == 0.7  # the sidecar's recommendation
    assert scored["frames"] == 3 * EPISODE_LENGTH and scored["predicted_success_rate"] == 1.0
    assert scored["precision"] == pytest.approx(truth.mean()) and scored["true_success_rate"] == pytest.approx(truth.mean())
    assert (run / "eval" / "rm.mp4").is_file()

    assert eval_main([str(run), "--episodes", "16", "--video", "--reward-model", str(model_dir), "--threshold", "0.95", "--name", "rm"]) == 0
    strict = json.loads((run / "eval" / "rm.json").read_text())["reward_model"]
    assert strict["threshold"] == 0.95 and strict["predicted_success_rate"] == 0.0
    assert "precision" not in strict  # nothing predicted: precision is undefined, not 0
    if strict["true_success_rate"] > 0:
        assert strict["recall"] == 0.0


def test_bad_input_is_one_line_and_writes_nothing(trained_run, tmp_path):
    run, _ = trained_run
    missing = run_module("embodireward", "eval", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and missing.stderr.strip().count("\n") == 0
    assert missing.stderr.startswith("error: ") and "not found" in missing.stderr

    bare = tmp_path / "bare_run"
    (bare / "checkpoints").mkdir(parents=True)
    (bare / "checkpoints" / "latest.pt").write_bytes((run / "checkpoints" / "latest.pt").read_bytes())
    bad_override = run_module("embodireward", "eval", str(bare), "--set", "env.cfg.episode_lenght=5")
    assert bad_override.returncode == 2, bad_override.stderr
    assert bad_override.stderr.strip() == "error: env.cfg.episode_lenght: unknown key (did you mean episode_length?)"
    model_without_video = run_module("embodireward", "eval", str(bare), "--reward-model", str(tmp_path))
    assert model_without_video.returncode == 2 and "add --video" in model_without_video.stderr
    assert not (bare / "eval").exists()


def test_video_tiles_upscale_and_fall_back_to_gif_without_ffmpeg(tmp_path, monkeypatch):
    from embodireward.tools import video
    from embodireward.trainer.evaluator import EpisodeVideo

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 3, 16, 16, 3), dtype=np.uint8)  # T=5 steps, K=3 episodes
    clip = EpisodeVideo({"cam": images}, success=np.zeros((5, 3), dtype=bool), lengths=np.array([5, 5, 3]))
    frames = video.compose(clip, "cam")
    tile = 256  # 16 px enlarged 16 times
    assert np.array_equal(frames[2, :tile, :tile], images[2, 0].repeat(16, axis=0).repeat(16, axis=1))
    second_row = (frames.shape[1] - 4) // 2 + 4  # two rows of (tile + caption) with a 4 px gap
    assert np.array_equal(frames[4, second_row:second_row + tile, :tile], images[4, 2].repeat(16, 0).repeat(16, 1))
    assert (frames[0, second_row:, tile + 4:] == 255).all()  # 3 episodes in a 2 x 2 grid: one empty cell

    monkeypatch.setattr(video, "ffmpeg_available", lambda: False)
    written = video.write_video(tmp_path / "clip", frames, fps=5)
    assert written == tmp_path / "clip.gif" and not (tmp_path / "clip.mp4").exists()
    assert iio.imread(written).shape[0] == 5
