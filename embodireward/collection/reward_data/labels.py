"""Per-env class labels of collected frames, and of the episodes they belong to."""
from __future__ import annotations

from typing import Any, Dict, Optional

import torch


class EpisodeLabels:
    """The class of each env's frame this step, and the highest class its episode has reached.

    A frame's class is its state's: ``1`` if the env reports success else ``0`` (labels
    ``success``), or ``info["stage"]`` (labels ``stage``). Within ``steps_after_success`` steps
    after an episode's first success, frames are labelled success (the last class) as well.
    An episode's class is the highest class of any of its steps, so an episode that succeeded
    at any step is a success episode.
    """

    def __init__(self, num_envs: int, num_classes: int, steps_after_success: int):
        self.success_class = num_classes - 1
        self.steps_after_success = steps_after_success
        self.since_success = torch.full((num_envs,), -1, dtype=torch.long)  # steps since the first success, -1: none yet
        self.episode_class = torch.zeros(num_envs, dtype=torch.long)

    def update(self, success: torch.Tensor, stage: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Long ``[N]`` class of this step's frames; advances the bookkeeping by one step."""
        succeeded = self.since_success >= 0
        self.since_success[succeeded] += 1
        self.since_success[success & ~succeeded] = 0
        after = (self.since_success >= 0) & (self.since_success <= self.steps_after_success)
        base = success.long() if stage is None else stage.long()
        labels = torch.where(after, torch.full_like(base, self.success_class), base)
        self.episode_class = torch.maximum(self.episode_class, labels)
        return labels

    def finish(self, env_id: int) -> None:
        """The episode of ``env_id`` ended: its next one starts unlabelled."""
        self.since_success[env_id] = -1
        self.episode_class[env_id] = 0

    def state_dict(self) -> Dict[str, Any]:
        return {"since_success": self.since_success.clone(), "episode_class": self.episode_class.clone()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        for key in ("since_success", "episode_class"):
            value = state[key]
            if value.shape != getattr(self, key).shape:
                raise ValueError(f"reward_data_collection state holds {key} of {tuple(value.shape)} envs, this run has {tuple(getattr(self, key).shape)}")
            setattr(self, key, value.clone().long())
