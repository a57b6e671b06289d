"""Named reward models behind one batched inference call."""
from __future__ import annotations

from typing import Dict, List, Optional, Union

import torch

from embodireward.registry import REWARD_MODELS
from embodireward.rewards.base import BaseRewardModel, Images
from embodireward.utils.obs import map_in_chunks, obs_batch_size


class RewardManager:
    """Holds loaded reward models by name and runs them in no-grad chunks of ``batch_size``."""

    def __init__(self, batch_size: int = 256, device: Union[str, torch.device] = "cpu"):
        if batch_size < 1:
            raise ValueError(f"reward batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.models: Dict[str, BaseRewardModel] = {}

    def register_model(self, name: str, model: BaseRewardModel) -> None:
        self.models[name] = model.to(self.device).eval()

    def get_available_models(self) -> List[str]:
        """Registered model types plus the names of loaded instances."""
        return sorted(set(REWARD_MODELS.names()) | set(self.models))

    def get_model(self, name: Optional[str] = None) -> BaseRewardModel:
        if name is None and len(self.models) == 1:
            return next(iter(self.models.values()))
        if name not in self.models:
            loaded = ", ".join(sorted(self.models)) or "none"
            raise KeyError(f"no reward model {name!r} loaded (loaded: {loaded})" if name else f"name a reward model (loaded: {loaded})")
        return self.models[name]

    @torch.no_grad()
    def compute_rewards(self, images: Images, name: Optional[str] = None) -> torch.Tensor:
        """P(success) float ``[B]`` on the manager's device; ``images`` as the model's ``compute_reward`` takes them."""
        model = self.get_model(name)
        return self._chunked(lambda chunk: model.compute_reward(chunk).reshape(-1), images, ())

    @torch.no_grad()
    def compute_class_probabilities(self, images: Images, name: Optional[str] = None) -> torch.Tensor:
        """Class probabilities float ``[B, K]`` (``K = 2`` for a binary model), see ``compute_class_probabilities``."""
        model = self.get_model(name)
        return self._chunked(model.compute_class_probabilities, images, (max(2, model.num_classes),))

    def _chunked(self, fn, images: Images, row_shape: tuple) -> torch.Tensor:
        if obs_batch_size(images) == 0:
            return torch.zeros((0, *row_shape), device=self.device)
        return map_in_chunks(fn, images, self.batch_size)

    def to_device(self, device: Union[str, torch.device]) -> "RewardManager":
        self.device = torch.device(device)
        for model in self.models.values():
            model.to(self.device)
        return self
