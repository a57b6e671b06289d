"""Data-parallel training over torch.distributed (gloo, 2 CPU processes).

Two spawned ranks each run a real Trainer on one half of a known batch; the update is designed to
be exact in maths against one process on the whole batch: one minibatch (all of a rank's data),
no per-minibatch advantage normalisation and no gradient clipping, so DDP's average of the two
half-batch gradients is the gradient of the mean loss over the concatenated batch. The same
ranks also check normaliser and episode-statistics pooling and data-parallel reward-model training;
the last test launches real ``torchrun`` training and resumes it.
"""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from conftest import REPO_ROOT, tiny_train_config, write_json
from embodireward.config import parse_train_config
from embodireward.policies.normalizer import RunningMeanStd
from embodireward.rewards import load_reward_model
from embodireward.rewards.data import load_reward_data
from embodireward.rewards.dataset import RewardDataset, split_by_trajectory
from embodireward.rewards.evaluation import predict, score
from embodireward.rewards.training import train_reward_model
from embodireward.train import train_from_dict
from embodireward.trainer.checkpoint import load_checkpoint
from embodireward.trainer.episode_stats import EpisodeStats
from embodireward.trainer.trainer import Trainer
from test_reward_training import train_config, write_trajectories
from test_training import scalars

WORLD = 2
STEPS, ENVS = 4, 8  # per rank; the single process holds both halves: [STEPS, 2 * ENVS]
NORMALISER_ROWS = (5, 11)  # unequal per-rank batch sizes


def update_config(tmp_path: Path, num_envs: int) -> dict:
    config = tiny_train_config(tmp_path, rollout_steps=STEPS)
    config["env"]["cfg"]["num_envs"] = num_envs
    config["policy"]["cfg"]["normalize_obs"] = True
    config["algorithm"]["cfg"].update(num_minibatches=1, num_epochs=2, normalize_advantages=False, max_grad_norm=1e6,
                                      target_kl=None, ent_coef=0.01)
    return config


def known_batch(obs_dim: int, action_dim: int) -> dict:
    """The concatenated batch ``[STEPS, WORLD * ENVS, ...]``; rank r owns env columns r*ENVS:(r+1)*ENVS."""
    g = torch.Generator().manual_seed(123)
    shape = (STEPS, WORLD * ENVS)
    return {"obs": torch.randn(*shape, obs_dim, generator=g) * 3 + 1, "actions": torch.randn(*shape, action_dim, generator=g),
            "advantages": torch.randn(*shape, generator=g), "returns": torch.randn(*shape, generator=g)}


def update_on(trainer: Trainer, batch: dict) -> dict:
    """Fill the trainer's rollout buffer with ``batch`` (log-probs/values of the current policy) and run one PPO update."""
    buffer = trainer.algo.buffer
    with torch.no_grad():
        log_probs, _, values = trainer.policy.evaluate_actions(batch["obs"].flatten(0, 1), batch["actions"].flatten(0, 1))
    buffer.obs.copy_(batch["obs"])
    buffer.actions.copy_(batch["actions"])
    buffer.advantages.copy_(batch["advantages"])
    buffer.returns.copy_(batch["returns"])
    buffer.log_probs.copy_(log_probs.view(STEPS, -1))
    buffer.values.copy_(values.view(STEPS, -1))
    metrics = trainer.algo.update(progress=0.0)
    return {"params": copy.deepcopy(trainer.policy.state_dict()),
            "grads": {name: p.grad.clone() for name, p in trainer.policy.named_parameters()}, "metrics": metrics}


def normaliser_data() -> torch.Tensor:
    return torch.randn(sum(NORMALISER_ROWS), 3, generator=torch.Generator().manual_seed(7)) * 2 + 5


def rank_worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        result = {}
        trainer = Trainer(parse_train_config(update_config(Path(out_dir), ENVS)))
        result["initial"] = copy.deepcopy(trainer.policy.state_dict())
        batch = known_batch(trainer.env.single_observation_space.shape[0], trainer.env.action_dim)
        half = {key: value[:, rank * ENVS : (rank + 1) * ENVS] for key, value in batch.items()}
        result.update(update_on(trainer, half))

        rows = normaliser_data().split(NORMALISER_ROWS)[rank]
        normaliser = RunningMeanStd(3)
        normaliser.update(rows[:2])
        normaliser.update(rows[2:])
        result["normaliser"] = {key: value.clone() for key, value in normaliser.state_dict().items()}

        stats = EpisodeStats(num_envs=2, device=torch.device("cpu"))
        done = torch.tensor([True, rank == 1])  # rank 0 ends one episode (return 1), rank 1 two (return 2 each)
        success = torch.tensor([rank == 1, False])
        stats.record(torch.full((2,), rank + 1.0), torch.zeros(2), done, torch.zeros(2, dtype=torch.bool), success, {})
        result["episode_stats"] = stats.summary()

        result["reward_training"] = train_reward_model(reward_config(Path(out_dir)))
        torch.save(result, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def reward_config(out_dir: Path):
    return train_config(out_dir, out_dir / "reward_data", epochs=2, batch_size=8, early_stopping_patience=0)


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("ranks")
    write_trajectories(out_dir / "reward_data", n_pos=6, n_neg=6, length=4)
    mp.spawn(rank_worker, args=(str(out_dir / "init"), str(out_dir)), nprocs=WORLD, join=True)
    return [torch.load(out_dir / f"rank{r}.pt", weights_only=False) for r in range(WORLD)], out_dir


def assert_close_dicts(a: dict, b: dict, **tolerance) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], msg=lambda m: f"{key}: {m}", **tolerance)


def test_ppo_update_is_identical_on_ranks_and_equals_one_process_on_the_whole_batch(ranks, tmp_path):
    results, _ = ranks
    # the ranks were seeded differently (seed + rank), DDP started both from rank 0's weights
    assert_close_dicts(results[0]["initial"], results[1]["initial"], rtol=0, atol=0)
    assert_close_dicts(results[0]["params"], results[1]["params"], rtol=0, atol=0)
    assert_close_dicts(results[0]["grads"], results[1]["grads"], rtol=0, atol=0)

    reference = Trainer(parse_train_config(update_config(tmp_path, WORLD * ENVS)))
    reference.policy.load_state_dict(results[0]["initial"])
    whole = update_on(reference, known_batch(reference.env.single_observation_space.shape[0], reference.env.action_dim))
    # averaged (not summed) gradients of the last minibatch, and the weights after two Adam steps
    assert_close_dicts(results[0]["grads"], whole["grads"], rtol=1e-4, atol=1e-6)
    assert_close_dicts(results[0]["params"], whole["params"], rtol=1e-4, atol=1e-6)
    assert not torch.equal(results[0]["params"]["log_std"], results[0]["initial"]["log_std"])  # the update did move
    # the observation normaliser holds the statistics of the concatenated batch on every rank
    obs = known_batch(reference.env.single_observation_space.shape[0], reference.env.action_dim)["obs"].flatten(0, 1)
    torch.testing.assert_close(results[1]["params"]["normalizer.mean"], obs.mean(0), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(results[1]["params"]["normalizer.var"], obs.var(0, unbiased=False), rtol=1e-5, atol=1e-5)
    # logged losses are the rank average: the value loss is linear in the halves
    for key in ("value_loss", "policy_loss", "entropy"):
        assert results[0]["metrics"][key] == pytest.approx(whole["metrics"][key], rel=1e-4, abs=1e-6), key


def test_normaliser_pools_unequal_rank_batches(ranks):
    results, _ = ranks
    data = normaliser_data().double()
    for result in results:
        stats = result["normaliser"]
        assert stats["count"].item() == pytest.approx(sum(NORMALISER_ROWS))
        torch.testing.assert_close(stats["mean"], data.mean(0).float(), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(stats["var"], data.var(0, unbiased=False).float(), rtol=1e-5, atol=1e-5)


def test_episode_statistics_are_pooled_over_ranks(ranks):
    results, _ = ranks
    assert results[0]["episode_stats"] == results[1]["episode_stats"]
    summary = results[0]["episode_stats"]
    assert summary["episode/return"] == pytest.approx((1 + 2 + 2) / 3)  # 3 episodes, not rank 0's one
    assert summary["episode/success_once"] == pytest.approx(1 / 3)


def test_reward_training_is_data_parallel_and_validates_on_the_whole_set(ranks):
    results, out_dir = ranks
    first, second = (result["reward_training"] for result in results)
    assert first["best"] == second["best"] and first["last"] == second["last"]  # same metrics, same early-stop decisions
    cfg = reward_config(out_dir)
    written = json.loads(Path(first["paths"]["metrics"]).read_text())
    assert written["last"] == first["last"] and written["epochs_run"] == 2
    # the gathered validation metrics are those of the saved model on the whole validation set
    model = load_reward_model(first["paths"]["last_model"])
    data = load_reward_data(cfg.data_path, model.cfg.camera_keys)
    val_set = RewardDataset(data, split_by_trajectory(data, cfg.val_split, cfg.seed)[1])
    logits, labels = predict(model, torch.utils.data.DataLoader(val_set, batch_size=64))
    counts = first["data"]["train"]
    single = score(logits, labels, data.class_names, torch.tensor(counts["negative"] / counts["positive"]))
    for key in ("loss", "accuracy", "f1", "auroc"):
        assert first["last"][f"val/{key}"] == pytest.approx(single[key], abs=1e-5), key


def torchrun(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(WORLD), *args]
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


def test_torchrun_training_writes_one_run_with_double_steps_and_resumes(tmp_path):
    config = tiny_train_config(tmp_path, iterations=2, save_freq=1, run_dir=None, output_dir=str(tmp_path / "out"))
    config["policy"]["cfg"]["normalize_obs"] = True
    single = tiny_train_config(tmp_path / "single", iterations=2)
    train_from_dict(single)
    single_steps = [step for step, _ in scalars(tmp_path / "single" / "run")["charts/sps"]]

    first = torchrun("-m", "embodireward.train", "--config", str(write_json(tmp_path / "cfg.json", config)))
    (run_dir,) = (tmp_path / "out").iterdir()  # both ranks agreed on one timestamped directory
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["iter_000001.pt", "iter_000002.pt", "latest.pt"]
    assert [step for step, _ in scalars(run_dir)["charts/sps"]] == [2 * step for step in single_steps]
    assert first.stdout.count("finished 2 iterations (512 env steps)") == 1  # rank 0 alone reports

    second = torchrun("-m", "embodireward.train", "--config", str(tmp_path / "cfg.json"),
                      "--set", f"runtime.resume={run_dir}", "--set", "runtime.iterations=3")
    assert second.stdout.count("resumed from") == 1 and "finished 3 iterations (768 env steps)" in second.stdout
    assert [p.name for p in (tmp_path / "out").iterdir()] == [run_dir.name]
    state = load_checkpoint(run_dir / "checkpoints" / "latest.pt")
    assert (state["iteration"], state["global_step"]) == (3, 768)
    assert sorted(step for step, _ in scalars(run_dir)["charts/sps"]) == [256, 512, 768]  # event files load in any order
    assert json.loads((run_dir / "config.json").read_text())["policy"]["cfg"]["normalize_obs"] is True
