"""Fine-tune a reward model on the original data grown by the refresh labels.

The split stays by trajectory and never moves a frame from one side to the other:

- the original data keeps the split it was trained with (the checkpoint sidecar's ``data_split``:
  the same data, fraction and seed give the same validation trajectories);
- a refresh trajectory is in validation when a hash of its id falls below ``val_split``, so it
  keeps its side however much data arrives later.

Each of ``steps`` gradient steps draws ``new_fraction`` of its batch from the refresh labels and
the rest from the original training frames: the new labels move the model where the policy went,
the replayed originals keep what it knew. The threshold is then re-chosen for the best F1 on the
combined validation frames, as the first training chose it.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

import torch
from torch.utils.data import DataLoader

from embodireward.config import RefreshSection
from embodireward.rewards.base import BaseRewardModel, success_probability
from embodireward.rewards.data import RewardData
from embodireward.rewards.dataset import AugmentConfig, RewardDataset, split_by_trajectory
from embodireward.rewards.evaluation import classification_loss, loss_weight, predict, score, success_targets
from embodireward.rewards.metrics import best_f1_threshold
from embodireward.utils.precision import Precision

HASH_MULTIPLIER = 2654435761  # Knuth's multiplicative hash: spreads consecutive ids over [0, 2^32)


@dataclass
class GrownData:
    data: RewardData  # the original frames, then the refresh frames
    train_original: torch.Tensor
    train_new: torch.Tensor
    val: torch.Tensor


def hashed_val(trajectory: torch.Tensor, val_split: float) -> torch.Tensor:
    return (trajectory * HASH_MULTIPLIER) % 2**32 < int(val_split * 2**32)


def grow(original: RewardData, split: Dict[str, Any], new: Optional[RewardData], val_split: float) -> GrownData:
    """``original`` + ``new`` (None: no labels yet) with their train / validation indices."""
    train_o, val_o = split_by_trajectory(original, float(split["val_split"]), int(split["seed"]))
    if new is None:
        return GrownData(original, train_o, torch.zeros(0, dtype=torch.long), val_o)
    camera = next(iter(original.images))
    if new.images[camera].shape[1:] != original.images[camera].shape[1:]:
        raise ValueError(f"refresh frames of shape {tuple(new.images[camera].shape[1:])} differ from the original data's "
                         f"{tuple(original.images[camera].shape[1:])}")
    if (original.robot_state is None) != (new.robot_state is None):
        raise ValueError("the refresh frames and the original data disagree on carrying the robot state")
    offset = int(original.trajectory.max()) + 1 - int(new.trajectory.min())  # no id shared with the original data
    robot_state = None if original.robot_state is None else torch.cat([original.robot_state, new.robot_state])
    data = RewardData(images={camera: torch.cat([original.images[camera], new.images[camera]])},
                      labels=torch.cat([original.labels, new.labels]), class_names=original.class_names,
                      trajectory=torch.cat([original.trajectory, new.trajectory + offset]),
                      step=torch.cat([original.step, new.step]), manifest=original.manifest, data_dir=original.data_dir,
                      robot_state=robot_state)
    is_val = hashed_val(new.trajectory, val_split)
    n = len(original)
    new_index = torch.arange(n, n + len(new))
    return GrownData(data, train_o, new_index[~is_val], torch.cat([val_o, new_index[is_val]]))


def finetune(model: BaseRewardModel, grown: GrownData, cfg: RefreshSection, precision: Precision, seed: int,
             fixed_threshold: Optional[float]) -> Tuple[BaseRewardModel, float, Dict[str, float]]:
    """A fine-tuned copy of ``model`` (``model`` itself is untouched), its threshold and validation metrics.

    Its randomness (batches, augmentations, dropout) comes from ``seed`` alone, in a forked RNG:
    a resumed run fine-tunes exactly as an uninterrupted one, and the RL loop's RNG is not drawn from.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _finetune(model, grown, cfg, precision, seed, fixed_threshold)


def _finetune(model: BaseRewardModel, grown: GrownData, cfg: RefreshSection, precision: Precision, seed: int,
              fixed_threshold: Optional[float]) -> Tuple[BaseRewardModel, float, Dict[str, float]]:
    model = copy.deepcopy(model).train()
    generator = torch.Generator().manual_seed(seed)
    data = grown.data
    # a model reading the robot state keeps the standardisation it was trained with
    robot_state = bool(model.robot_state_dim)
    train_set = RewardDataset(data, torch.arange(len(data)), augment=AugmentConfig(), robot_state=robot_state)  # indexed by frame below
    train_labels = torch.cat([data.labels[grown.train_original], data.labels[grown.train_new]])
    weight = loss_weight(torch.bincount(success_targets(train_labels, data.num_classes).long(), minlength=2).clamp_min(1).tolist(), True)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=1e-4)
    n_new = round(cfg.batch_size * cfg.new_fraction) if len(grown.train_new) else 0
    for _ in range(cfg.steps):
        index = torch.cat([draw(grown.train_new, n_new, generator), draw(grown.train_original, cfg.batch_size - n_new, generator)])
        samples = [train_set[int(i)] for i in index]
        images = {key: torch.stack([s[0][key] for s in samples]) for key in samples[0][0]}
        labels = torch.stack([s[1] for s in samples]).to(model.device)
        with precision.autocast():
            logits = model(model.preprocess(images))
        loss = classification_loss(logits, labels, data.num_classes, weight)
        optimizer.zero_grad(set_to_none=True)
        precision.backward(loss)
        precision.step(optimizer, model.parameters(), 1.0)
    model.eval()
    logits, labels = predict(model, DataLoader(RewardDataset(data, grown.val, robot_state=robot_state), batch_size=256))
    probs = success_probability(logits)
    threshold = fixed_threshold if fixed_threshold is not None else best_f1_threshold(probs, success_targets(labels, data.num_classes))[0]
    metrics = {f"val/{k}": v for k, v in score(logits, labels, data.class_names, weight, threshold).items()}
    return model, threshold, metrics


def draw(pool: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    if count <= 0 or len(pool) == 0:
        return torch.zeros(0, dtype=torch.long)
    return pool[torch.randint(len(pool), (count,), generator=generator)]
