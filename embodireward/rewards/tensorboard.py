"""Validation samples shown in TensorBoard during reward-model training, with their P(success)."""
from __future__ import annotations

import torch

from embodireward.rewards.dataset import RewardDataset

NUM_LOGGED_IMAGES = 16


def pick_logged_samples(labels: torch.Tensor, num_classes: int, seed: int) -> torch.Tensor:
    """Up to NUM_LOGGED_IMAGES validation positions, the same number from each class."""
    generator = torch.Generator().manual_seed(seed)
    picks = []
    for k in range(num_classes):
        members = torch.nonzero(labels == k).squeeze(1)
        picks.append(members[torch.randperm(len(members), generator=generator)[: NUM_LOGGED_IMAGES // num_classes]])
    return torch.cat(picks)


def log_samples(writer, dataset: RewardDataset, picks: torch.Tensor, probs: torch.Tensor, epoch: int) -> None:
    """Sample validation images (first camera, last frame of a clip) + a text table of their probabilities."""
    images = torch.stack([next(iter(dataset[int(i)][0].values())) for i in picks])
    if images.dim() == 5:
        images = images[:, -1]
    writer.add_images("val/samples", images, epoch, dataformats="NCHW")
    names = dataset.data.class_names
    rows = [f"| {n} | {names[int(dataset.labels()[i])]} | {float(probs[i]):.3f} |" for n, i in enumerate(picks.tolist())]
    writer.add_text("val/sample_probs", "| image | class | P(success) |\n|---|---|---|\n" + "\n".join(rows), epoch)
