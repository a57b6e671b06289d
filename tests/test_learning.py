"""PPO actually learns push_cube_2d (a short run; the full 0.9 bar is a benchmark, not a test)."""
from embodireward.config import parse_train_config
from embodireward.trainer.evaluator import evaluate
from embodireward.trainer.trainer import Trainer
from tests.conftest import tiny_train_config


def test_ppo_success_clearly_improves_over_a_short_run(tmp_path):
    config = tiny_train_config(tmp_path, iterations=30, rollout_steps=16, eval_freq=30, eval_episodes=64, num_threads=1)
    config["env"]["cfg"].update(num_envs=256, episode_length=50)
    config["policy"]["actor"]["hidden_sizes"] = [256, 256]
    config["policy"]["critic"]["hidden_sizes"] = [256, 256]
    trainer = Trainer(parse_train_config(config))
    before, _ = evaluate(trainer.policy, trainer.eval_env, seed=123)
    after = trainer.train()
    assert after["eval/success_once"] >= 0.3, after
    assert after["eval/success_once"] >= before["eval/success_once"] + 0.25, (before, after)
    assert after["eval/return"] > before["eval/return"]
