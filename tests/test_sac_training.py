"""SAC through the Trainer on push_cube_2d: it learns, and a resume with the saved replay buffer is exact."""
from __future__ import annotations

import pytest

from embodireward.config import parse_train_config
from embodireward.train import train_from_dict
from embodireward.trainer.checkpoint import load_checkpoint
from embodireward.trainer.evaluator import evaluate
from embodireward.trainer.trainer import Trainer
from tests.test_sac import sac_config
from tests.conftest import stop_after
from tests.test_training import scalars

TIME_BASED = ("charts/sps", "charts/rollout_time_share")


def test_sac_success_clearly_improves_over_a_short_run(tmp_path):
    config = sac_config(tmp_path, learning_starts=1000, batch_size=64, utd=1.0, gamma=0.8, tau=0.01, init_alpha=0.2,
                        actor_lr=1e-3, critic_lr=1e-3, alpha_lr=1e-3)
    config["runtime"].update(iterations=30, rollout_steps=25, eval_freq=30, eval_episodes=32, num_threads=1)
    # a closer goal, a larger goal disc and shorter episodes than the benchmark task, so 6k steps show learning
    config["env"]["cfg"].update(num_envs=8, episode_length=25, min_cube_goal_dist=0.3, max_cube_goal_dist=0.35, goal_radius=0.25)
    config["policy"]["actor"]["hidden_sizes"] = config["policy"]["critic"]["hidden_sizes"] = [64, 64]
    trainer = Trainer(parse_train_config(config))
    before, _ = evaluate(trainer.policy, trainer.eval_env, seed=123)
    after = trainer.train()
    # measured: success_once 0.0 before; 0.625 (seed 0) and 0.375 (seed 1) after, return about 15 -> 35-40
    assert before["eval/success_once"] <= 0.1, before
    assert after["eval/success_once"] >= 0.25, after
    assert after["eval/return"] >= before["eval/return"] + 10, (before, after)


def resume_config(tmp_path, run: str) -> dict:
    config = sac_config(tmp_path, learning_starts=32, batch_size=16, utd=0.25, save_replay_buffer=True)
    config["runtime"].update(iterations=4, rollout_steps=8, run_dir=str(tmp_path / run))
    config["env"]["cfg"].update(num_envs=4, episode_length=6)  # episodes run across iteration boundaries
    config["policy"]["cfg"]["normalize_obs"] = True
    return config


def test_resume_with_the_saved_replay_buffer_continues_exactly(tmp_path):
    assert train_from_dict(stop_after(resume_config(tmp_path, "straight"), 0)) == 0
    with pytest.raises(KeyboardInterrupt):
        train_from_dict(stop_after(resume_config(tmp_path, "resumed"), 2))
    saved = load_checkpoint(tmp_path / "resumed")["algorithm"]
    assert len(saved["replay_buffer"]["rewards"]) == 64 and saved["gradient_steps"] == 8  # learning had started
    config = stop_after(resume_config(tmp_path, "resumed"), 2)
    config["runtime"].update(resume=str(tmp_path / "resumed"), run_dir=None)
    assert train_from_dict(config) == 0

    straight, resumed = scalars(tmp_path / "straight"), scalars(tmp_path / "resumed")
    assert straight.keys() == resumed.keys() and "losses/qf_loss" in straight
    for tag in sorted(set(straight) - set(TIME_BASED)):
        assert sorted(resumed[tag]) == sorted(straight[tag]), tag
    final_straight, final_resumed = (load_checkpoint(tmp_path / run)["policy"] for run in ("straight", "resumed"))
    for key, value in final_straight.items():
        assert value.equal(final_resumed[key]), key
