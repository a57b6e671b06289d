"""End-to-end behaviour of the trainer: plugins, checkpoints and resume, logging."""
import json
import textwrap
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from embodireward.trainer.callbacks import Callback
from embodireward.trainer.checkpoint import load_checkpoint
from embodireward.train import train_from_dict
from tests.conftest import run_module, stop_after, write_json


def scalars(run_dir: Path) -> dict:
    accumulator = EventAccumulator(str(run_dir / "logs"))
    accumulator.Reload()
    return {tag: [(e.step, e.value) for e in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}


def test_run_writes_config_checkpoints_and_documented_scalars(tmp_path, tiny_config):
    tiny_config["runtime"].update(iterations=2, eval_freq=2, eval_episodes=4, save_freq=1, record_video=True)
    assert train_from_dict(tiny_config) == 0
    run_dir = tmp_path / "run"
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["algorithm"]["cfg"]["clip_coef"] == 0.2 and saved["env"]["cfg"]["episode_length"] == 6
    names = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert names == ["best.pt", "iter_000001.pt", "iter_000002.pt", "latest.pt"]
    assert list((run_dir / "videos").glob("eval_*.gif"))
    logged = scalars(run_dir)
    for tag in ("charts/sps", "losses/policy_loss", "losses/value_loss", "losses/entropy", "losses/approx_kl",
                "losses/clip_fraction", "losses/explained_variance", "losses/log_std", "episode/return", "episode/length",
                "episode/success_once", "episode/success_at_end", "rewards/reach", "rewards/push", "rewards/success",
                "metrics/cube_goal_dist", "eval/success_rate", "eval/return"):
        assert tag in logged, tag
    assert logged["charts/sps"][-1][0] == 2 * 16 * 8  # logged at the global env step


TIME_TAGS = ("charts/sps", "charts/rollout_time_share")  # wall-clock figures differ between any two runs


def test_resume_continues_exactly_where_it_stopped(tmp_path, tiny_config):
    tiny_config["runtime"].update(iterations=4, eval_freq=1, eval_episodes=4)
    tiny_config["algorithm"]["cfg"].update(lr_schedule="linear")
    tiny_config = stop_after(tiny_config, 0)  # never stops: the same callbacks as the interrupted run
    assert train_from_dict(tiny_config) == 0
    uninterrupted = scalars(tmp_path / "run")

    stopped = json.loads(json.dumps(tiny_config))
    stopped["runtime"]["run_dir"] = str(tmp_path / "stopped")
    stopped["callbacks"][0]["cfg"]["iteration"] = 2
    with pytest.raises(KeyboardInterrupt):
        train_from_dict(stopped)
    run_dir = tmp_path / "stopped"
    interrupted = load_checkpoint(run_dir)
    assert interrupted["iteration"] == 2 and interrupted["global_step"] == 2 * 16 * 8
    assert interrupted["env"] is not None and interrupted["last_obs"].shape == (16, 12)

    resumed_config = dict(stopped, runtime={**stopped["runtime"], "resume": str(run_dir), "run_dir": None})
    assert train_from_dict(resumed_config) == 0
    final = load_checkpoint(run_dir)
    assert final["iteration"] == 4 and final["global_step"] == 4 * 16 * 8
    # the linear schedule continued from iteration 2, not from the start
    assert final["algorithm"]["optimizer"]["param_groups"][0]["lr"] == pytest.approx(3e-4 * (1 - 3 / 4))
    resumed = scalars(run_dir)
    # each step logged once, none lost or repeated, and every scalar bit-identical to the uninterrupted run
    assert sorted(step for step, _ in resumed["charts/sps"]) == [128, 256, 384, 512]
    assert set(resumed) == set(uninterrupted)
    for tag in set(uninterrupted) - set(TIME_TAGS):
        assert sorted(resumed[tag]) == sorted(uninterrupted[tag]), tag


def test_init_from_warm_starts_policy_and_rejects_mismatched_shapes(tmp_path, tiny_config):
    assert train_from_dict(tiny_config) == 0
    source = tmp_path / "run" / "checkpoints" / "latest.pt"
    weights = load_checkpoint(source)["policy"]

    warm = dict(tiny_config, runtime={**tiny_config["runtime"], "iterations": 1, "init_from": str(source), "run_dir": str(tmp_path / "warm")})
    from embodireward.trainer.trainer import Trainer
    from embodireward.config import parse_train_config
    trainer = Trainer(parse_train_config(warm))
    assert trainer.global_step == 0
    for key, value in trainer.policy.state_dict().items():
        assert torch.equal(value, weights[key])

    bad = json.loads(json.dumps(warm))
    bad["policy"]["actor"]["hidden_sizes"] = [64, 64]
    result = run_module("embodireward.train", "--config", str(write_json(tmp_path / "bad.json", bad)))
    assert result.returncode == 2
    assert "policy parameter 'actor_encoder.net.0.weight' has shape (32, 12) in the checkpoint but (64, 12)" in result.stderr


def test_corrupt_checkpoint_is_a_one_line_error(tmp_path, tiny_config):
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    tiny_config["runtime"]["init_from"] = str(broken)
    result = run_module("embodireward.train", "--config", str(write_json(tmp_path / "c.json", tiny_config)))
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {broken}: not a readable embodireward checkpoint")
    assert len(result.stderr.strip().splitlines()) == 1


def test_user_plugin_registers_env_and_policy_from_outside_the_package(tmp_path, tiny_config):
    plugin = tmp_path / "my_plugin.py"
    plugin.write_text(textwrap.dedent('''
        from dataclasses import dataclass
        import torch
        from embodireward import register_env, register_policy
        from embodireward.envs.push_cube_2d import PushCube2D
        from embodireward.policies.actor_critic import ActorCritic

        @register_env("my_push")
        class MyPush(PushCube2D):
            """PushCube2D with half the speed."""
            def __init__(self, cfg, device, seed):
                super().__init__(cfg, device, seed)
                self.built_by_plugin = True

        @register_policy("my_policy")
        class MyPolicy(ActorCritic):
            """An actor-critic from a user module."""
    '''))
    tiny_config["plugins"] = [str(plugin)]
    tiny_config["env"]["id"] = "my_push"
    tiny_config["policy"]["name"] = "my_policy"
    result = run_module("embodireward.train", "--config", str(write_json(tmp_path / "c.json", tiny_config)), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["env"]["id"] == "my_push" and saved["policy"]["name"] == "my_policy"
    assert (tmp_path / "run" / "checkpoints" / "latest.pt").is_file()


def test_wandb_offline_run_directory_is_created(tmp_path, tiny_config, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    tiny_config["runtime"].update(use_wandb=True, iterations=1)
    assert train_from_dict(tiny_config) == 0
    offline_runs = list((tmp_path / "wandb").glob("offline-run-*")) + list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert offline_runs, list(tmp_path.rglob("*wandb*"))
    assert any(p.suffix == ".wandb" for run in offline_runs for p in run.iterdir())


def test_evaluation_counts_whole_episodes_across_eval_envs():
    from embodireward.config import NetworkConfig, PolicySection
    from embodireward.envs.push_cube_2d import PushCube2D, PushCube2DConfig
    from embodireward.policies.actor_critic import ActorCritic
    from embodireward.trainer.evaluator import evaluate

    env = PushCube2D(PushCube2DConfig(num_envs=4, episode_length=5), torch.device("cpu"), seed=0)
    policy = ActorCritic(PolicySection(actor=NetworkConfig(hidden_sizes=[8]), critic=NetworkConfig(hidden_sizes=[8])),
                         env.single_observation_space, env.single_action_space)
    metrics, frames = evaluate(policy, env, seed=1, episodes=10, video_envs=2)
    assert metrics["eval/episodes"] == 12  # ceil(10 / 4) = 3 episodes from each of the 4 envs
    assert metrics["eval/length"] == 5
    assert 0.0 <= metrics["eval/success_rate"] <= metrics["eval/success_once"] <= 1.0
    assert frames.shape == (5, 64, 128, 3)  # the first episode of 2 envs side by side
    again, _ = evaluate(policy, env, seed=1, episodes=10)
    assert again == metrics  # same seed, same deterministic episodes


class ThreadProbe(Callback):
    """Records torch's intra-op thread count during env steps and at the end of each update."""

    def __init__(self):
        self.during_steps, self.after_updates = set(), set()

    def on_step(self, trainer, data):
        self.during_steps.add(torch.get_num_threads())

    def on_update_end(self, trainer, metrics):
        self.after_updates.add(torch.get_num_threads())


def test_rollout_threads_apply_to_collection_only(tiny_config, monkeypatch):
    from embodireward.trainer import trainer as trainer_module

    probe = ThreadProbe()
    monkeypatch.setattr(trainer_module.builder, "build_callbacks", lambda config, trainer: [probe])
    tiny_config["runtime"].update(iterations=2, num_threads=2, rollout_threads=1)
    previous = torch.get_num_threads()
    try:
        assert train_from_dict(tiny_config) == 0
    finally:
        torch.set_num_threads(previous)
    assert probe.during_steps == {1}  # collection ran with rollout_threads
    assert probe.after_updates == {2}  # the update got num_threads back
