"""The frames a refresh chooses from: what the reward model scored since the last refresh.

Two selections are kept as frames arrive, each bounded, so memory does not grow with the run:

- the ``confident`` frames: by default (``highest``) the highest P(success) seen, where a blind
  spot shows first (a frame the model is sure is a success but is not is what the policy learns
  to produce); with ``uniform``, a uniform sample of the frames the model predicts successes, so
  labels go where the learned reward pays most often (once the policy exploits a blind spot, most
  paid frames are in it, while the highest-P frames may still be the real successes);
- a uniform ``random`` sample of every scored frame (each frame gets a random key, the smallest
  keys are kept: sampling without replacement, mergeable batch by batch). Its recorded
  predictions against the env's true success are an unbiased estimate of the model's precision
  and recall under the current policy: the "before" figures of a refresh.

Every frame has a run-unique ``frame_id`` and the ``trajectory`` (episode) it belongs to, so
labelled frames are never added twice and the data split stays by trajectory. For a model that
reads the robot state, each frame's ``robot_state`` is kept with it.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np
import torch

from embodireward.rewards.base import ROBOT_STATE_KEY



class CandidatePool:
    """Bounded ``confident`` and ``random`` selections of scored frames (uint8 ``[H, W, 3]``)."""

    def __init__(self, num_envs: int, camera_key: str, confident_size: int, random_size: int, seed: int = 0,
                 confident_selection: str = "highest"):
        self.camera_key = camera_key
        self.sizes = {"confident": confident_size, "random": random_size}
        # how each part ranks its rows: by P(success), or by random key (a uniform sample); and
        # which rows may enter it: every scored frame, or only those the model predicts successes
        self.by_probability = {"confident": confident_selection == "highest", "random": False}
        self.paid_only = {"confident": confident_selection == "uniform", "random": False}
        self._rng = np.random.default_rng(seed)
        self.next_frame_id = 0
        self.episode = torch.arange(num_envs, dtype=torch.long)  # each env's current episode id
        self.next_episode = num_envs
        self.clear()

    def clear(self) -> None:
        """Forget the frames (after a refresh); ids keep counting."""
        self.parts: Dict[str, Optional[Dict[str, torch.Tensor]]] = {"confident": None, "random": None}
        self.scored = self.predicted = self.true = 0  # counts since the last clear, for drift

    def add(self, env_ids: torch.Tensor, images: Dict[str, torch.Tensor], probs: torch.Tensor, predicted: torch.Tensor,
            success: Optional[torch.Tensor], done: torch.Tensor) -> None:
        """One scored batch (a :class:`~embodireward.rewards.hook.RewardHook` observer)."""
        n = int(env_ids.numel())
        env_ids = env_ids.cpu()
        batch = {
            "images": images[self.camera_key].cpu(),
            "probs": probs.float().cpu(),
            "predicted": predicted.bool().cpu(),
            "success": (success.bool().cpu() if success is not None else torch.zeros(n, dtype=torch.bool)),
            "frame_id": torch.arange(self.next_frame_id, self.next_frame_id + n, dtype=torch.long),
            "trajectory": self.episode[env_ids].clone(),
            "key": torch.from_numpy(self._rng.random(n)).float(),
        }
        if ROBOT_STATE_KEY in images:
            batch["robot_state"] = images[ROBOT_STATE_KEY].float().cpu()
        self.next_frame_id += n
        ended = env_ids[done.cpu().bool()]
        self.episode[ended] = torch.arange(self.next_episode, self.next_episode + len(ended), dtype=torch.long)
        self.next_episode += len(ended)
        self.scored += n
        self.predicted += int(batch["predicted"].sum())
        self.true += int(batch["success"].sum()) if success is not None else 0
        for name in ("confident", "random"):
            self.parts[name] = self._keep(self.parts[name], batch, name)

    def _rank(self, rows: Dict[str, torch.Tensor], name: str) -> torch.Tensor:
        return rows["probs"] if self.by_probability[name] else -rows["key"]

    def _keep(self, part: Optional[Dict[str, torch.Tensor]], batch: Dict[str, torch.Tensor], name: str) -> Dict[str, torch.Tensor]:
        """The ``sizes[name]`` rows of ``part`` + the eligible rows of ``batch`` ranking highest (see ``_rank``)."""
        enters = batch["predicted"] if self.paid_only[name] else None
        if part is not None and len(part["probs"]) >= self.sizes[name]:
            # full: only rows that beat the part's lowest go in
            beats = self._rank(batch, name) > self._rank(part, name).min()
            enters = beats if enters is None else enters & beats
        if enters is not None:
            # images are copied only for rows that go in
            if not bool(enters.any()):
                return part
            batch = {k: v[enters] for k, v in batch.items()}
        rows = batch if part is None else {k: torch.cat([part[k], batch[k]]) for k in part}
        rank = self._rank(rows, name)
        if len(rank) > self.sizes[name]:
            keep = rank.topk(self.sizes[name]).indices
            rows = {k: v[keep] for k, v in rows.items()}
        return rows

    def drift(self) -> Optional[float]:
        """``|predicted - true|`` success rate since the last clear; None before any frame."""
        return abs(self.predicted - self.true) / self.scored if self.scored else None

    def select(self, count: int, confident_fraction: float, exclude: set) -> Dict[str, torch.Tensor]:
        """``count`` distinct frames for labelling: the confident ones first (highest P first), then random ones."""
        chosen: Dict[str, list] = {}
        taken = set(exclude)
        quota = {"confident": round(count * confident_fraction), "random": count}
        for name in ("confident", "random"):
            part = self.parts[name]
            if part is None:
                continue
            order = part["probs"].argsort(descending=True) if self.by_probability[name] else torch.arange(len(part["probs"]))
            picked = 0
            for i in order.tolist():
                if len(chosen.get("frame_id", ())) >= count or picked >= quota[name]:
                    break
                frame_id = int(part["frame_id"][i])
                if frame_id in taken:
                    continue
                taken.add(frame_id)
                picked += 1
                for k, values in part.items():
                    chosen.setdefault(k, []).append(values[i])
        if not chosen:
            return {}
        return {k: torch.stack(v) for k, v in chosen.items()}

    def random_sample(self) -> Optional[Dict[str, torch.Tensor]]:
        return self.parts["random"]

    def state_dict(self) -> Dict[str, Any]:
        return {"rng": self._rng.bit_generator.state, "next_frame_id": self.next_frame_id, "episode": self.episode.clone(),
                "next_episode": self.next_episode, "parts": dict(self.parts), "counts": [self.scored, self.predicted, self.true]}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self._rng.bit_generator.state = state["rng"]
        self.next_frame_id = int(state["next_frame_id"])
        self.episode = state["episode"].clone()
        self.next_episode = int(state["next_episode"])
        self.parts = dict(state["parts"])
        self.scored, self.predicted, self.true = (int(x) for x in state["counts"])
