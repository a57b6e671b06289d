"""Shared fixtures: small, fast configs and a CLI runner."""
from __future__ import annotations

import copy
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from embodireward import register_callback
from embodireward.trainer.callbacks import Callback

REPO_ROOT = Path(__file__).resolve().parent.parent

torch.set_num_threads(1)  # CI has 2 cores; tests stay small


@register_callback("test_stop_after", override=True)
class StopAfter(Callback):
    """Interrupts the run right after iteration ``cfg["iteration"]`` was checkpointed, like a kill there."""

    def on_checkpoint(self, trainer, path):
        if trainer.iteration == self.cfg["iteration"] and path.endswith("latest.pt"):
            raise KeyboardInterrupt


def stop_after(config: dict, iteration: int) -> dict:
    """``config`` with the ``test_stop_after`` callback appended (iteration 0: it never stops)."""
    config = copy.deepcopy(config)
    config["callbacks"] = [*config.get("callbacks", []), {"name": "test_stop_after", "cfg": {"iteration": iteration}}]
    return config


def tiny_train_config(tmp_path: Path, **runtime) -> dict:
    """A push_cube_2d PPO config that runs in about a second."""
    config = json.loads((REPO_ROOT / "configs/push_cube_2d/ppo.json").read_text())
    config = copy.deepcopy(config)
    config["runtime"].update({"iterations": 2, "rollout_steps": 8, "eval_freq": 0, "save_freq": 0,
                              "progress_bar": False, "run_dir": str(tmp_path / "run"), "device": "cpu",
                              # exact comparisons (ranks vs one process, hand-computed values): fp32;
                              # tests/test_precision.py covers bf16 / fp16 against it
                              "precision": "fp32"})
    config["runtime"].update(runtime)
    config["env"]["cfg"].update({"num_envs": 16, "episode_length": 6})
    config["policy"]["actor"]["hidden_sizes"] = [32, 32]
    config["policy"]["critic"]["hidden_sizes"] = [32, 32]
    return config


@pytest.fixture
def tiny_config(tmp_path):
    return tiny_train_config(tmp_path)


def write_json(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data))
    return path


def run_module(module: str, *args: str, cwd: Path = REPO_ROOT, env_extra: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1", **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def within_angles(u: torch.Tensor, v: torch.Tensor, angles: tuple) -> torch.Tensor:
    """Per row, whether the angle between vectors ``u`` and ``v`` (``[N, 2]``) lies in ``angles`` (min, max degrees)."""
    cos = (u * v).sum(-1) / (u.norm(dim=-1) * v.norm(dim=-1))
    return (cos <= math.cos(math.radians(angles[0])) + 1e-4) & (cos >= math.cos(math.radians(angles[1])) - 1e-4)
