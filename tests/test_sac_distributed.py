"""SAC under torch.distributed (gloo, 2 CPU processes): own replay buffer per rank, averaged gradients."""
from __future__ import annotations

import copy
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from embodireward.config import parse_train_config
from embodireward.trainer.trainer import Trainer
from embodireward.utils.distributed import average_gradients, broadcast_module
from tests.test_sac import sac_config

WORLD = 2


def rank_worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        torch.manual_seed(rank)
        layer = nn.Linear(2, 2)
        broadcast_module(layer)
        for p in layer.parameters():
            p.grad = torch.full_like(p, float(rank + 1))  # rank 0: 1, rank 1: 2
        average_gradients(layer.parameters())

        config = sac_config(Path(out_dir), learning_starts=32, batch_size=16, utd=0.25)
        config["runtime"].update(iterations=3, rollout_steps=8, log_freq=0)
        trainer = Trainer(parse_train_config(config))  # seeds seed + rank: different data on each rank
        initial = copy.deepcopy(trainer.policy.state_dict())
        trainer.train()
        algo = trainer.algo
        torch.save({"layer": layer.state_dict(), "grads": [p.grad for p in layer.parameters()], "initial": initial,
                    "policy": trainer.policy.state_dict(), "target": algo.critic_target.state_dict(),
                    "log_alpha": algo.log_alpha.detach(), "rewards": algo.buffer.rewards[: len(algo.buffer)].clone(),
                    "gradient_steps": algo.gradient_steps}, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_sac_ranks_keep_their_own_buffers_and_stay_identical(tmp_path):
    mp.spawn(rank_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)
    first, second = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD))
    # the helpers: rank 0's weights everywhere, and the mean (not the sum) of the gradients
    for key in first["layer"]:
        assert torch.equal(first["layer"][key], second["layer"][key])
    for grad in first["grads"] + second["grads"]:
        assert torch.equal(grad, torch.full_like(grad, 1.5))
    # different transitions on each rank (3 iterations x 32), one model
    assert len(first["rewards"]) == len(second["rewards"]) == 96 and not torch.equal(first["rewards"], second["rewards"])
    # learning_starts 32 over both ranks is 16 per rank: utd 0.25 x (96 - 16) transitions
    assert first["gradient_steps"] == second["gradient_steps"] == 20
    for state in ("initial", "policy", "target"):
        for key in first[state]:
            torch.testing.assert_close(first[state][key], second[state][key], rtol=0, atol=0, msg=f"{state} {key}")
    assert torch.equal(first["log_alpha"], second["log_alpha"])
    assert any(not torch.equal(first["policy"][key], first["initial"][key]) for key in first["policy"])  # it did learn
