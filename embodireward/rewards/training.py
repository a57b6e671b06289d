"""Supervised training of a reward model on a collected data directory.

Binary models (``num_classes`` 1) learn P(success) with BCE-with-logits; ``K``-class models learn
the data's classes with cross-entropy. AdamW, a per-step LR schedule, gradient clipping, optional
mixed precision (``precision``), and early stopping on the same validation metric (``monitor``)
that selects ``best_model``. Everything is checked (config, model, data, output location) before
the first file is written. Writes to ``output_dir``::

    best_model.safetensors / .json   best epoch by ``monitor`` (sidecar: config, data manifest,
                                     recommended_threshold, metrics, the validation split)
    last_model.safetensors / .json   the final epoch
    metrics.json                     best/last metrics, threshold, epoch and data counts
    evaluation/                      best_model judged on the validation split (rewards.evaluation)
    logs/                            TensorBoard: losses, metrics, PR curve, sample images
"""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any, Dict, Optional

import torch
from torch.utils.data import DataLoader, DistributedSampler, Subset, WeightedRandomSampler
from tqdm import tqdm

from embodireward import builder
from embodireward.config import ConfigError, parse_dataclass
from embodireward.registry import load_plugin
from embodireward.rewards.base import BaseRewardModel, BaseVideoRewardModel, success_probability
from embodireward.rewards.checkpoint import load_reward_model, save_reward_model
from embodireward.rewards.data import load_reward_data
from embodireward.rewards.dataset import RewardDataset, split_by_trajectory
from embodireward.rewards.evaluation import (SUMMARY_KEYS, classification_loss, evaluate_reward_model, loss_weight, predict, score,
                                             success_targets, summary_line)
from embodireward.rewards.manifest import load_manifest
from embodireward.rewards.metrics import best_f1_threshold
from embodireward.rewards.tensorboard import log_samples, pick_logged_samples
# re-exported: the pipeline and the CLI import the config from here
from embodireward.rewards.train_config import MONITOR_MODES, ModelSection, RewardTrainConfig, build_reward_model, load_reward_train_config  # noqa: F401
from embodireward.utils import distributed as dist_utils
from embodireward.utils.io import atomic_write_json, is_writable_location, make_dirs, writing
from embodireward.utils.precision import Precision
from embodireward.utils.seed import seed_everything


def lr_lambda(cfg: RewardTrainConfig, steps_per_epoch: int):
    """Per-optimizer-step LR factor for ``cfg.scheduler``."""
    total = cfg.epochs * steps_per_epoch
    warmup = min(cfg.warmup_epochs * steps_per_epoch, total - 1) if cfg.scheduler == "warmup_cosine" else 0

    def factor(step: int) -> float:
        if cfg.scheduler == "constant":
            return 1.0
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    return factor


def target_classes(labels: torch.Tensor, num_data_classes: int, model: BaseRewardModel) -> torch.Tensor:
    """The classes the model tells apart: success vs the rest for a binary model, else the labels."""
    return success_targets(labels, num_data_classes).long() if model.num_classes == 1 else labels


def make_loader(dataset: RewardDataset, cfg: RewardTrainConfig, train: bool, classes: Optional[torch.Tensor] = None) -> DataLoader:
    """Under torch.distributed each rank loads its share: a DistributedSampler shard (or its own
    weighted draws) of the training set, every ``world_size``-th validation sample. ``classes``
    (the target class of each sample) drive ``balance="sampler"``: each class drawn equally often."""
    rank, world = dist_utils.rank(), dist_utils.world_size()
    generator = torch.Generator().manual_seed(cfg.seed + rank)
    sampler = None
    if train and cfg.balance == "sampler":
        counts = torch.bincount(classes)
        weights = (1.0 / counts[classes]) if bool((counts > 0).sum() > 1) else torch.ones(len(dataset))
        sampler = WeightedRandomSampler(weights.double(), num_samples=math.ceil(len(dataset) / world), replacement=True, generator=generator)
    elif train and world > 1:
        sampler = DistributedSampler(dataset, seed=cfg.seed)  # set_epoch() reshuffles it
    elif world > 1:
        dataset = Subset(dataset, range(rank, len(dataset), world))  # predict_all() restores the order
    return DataLoader(dataset, batch_size=cfg.batch_size, shuffle=train and sampler is None, sampler=sampler,
                      num_workers=cfg.num_workers, generator=generator, persistent_workers=cfg.num_workers > 0)


def predict_all(model: BaseRewardModel, loader: DataLoader, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``predict`` over the whole validation set: each rank predicts its strided share, then every
    rank gathers all shares, so all ranks compute the same metrics and take the same decisions."""
    dist_utils.average_buffers(model)  # BatchNorm statistics drift apart per rank during training
    shares = dist_utils.all_gather_objects(predict(model, loader))
    logits = torch.empty((size, *shares[0][0].shape[1:]))
    labels = torch.empty(size, dtype=torch.long)
    for rank, (share_logits, share_labels) in enumerate(shares):
        logits[rank :: len(shares)] = share_logits
        labels[rank :: len(shares)] = share_labels
    return logits, labels


def improved(value: float, best: Optional[float], mode: str) -> bool:
    return best is None or (value < best if mode == "min" else value > best)


def check_class_frames(counts: Dict[str, Dict[str, Any]], model: BaseRewardModel, data_path: str, min_frames: int) -> None:
    """Every class the model learns needs frames in training and in validation, and ``min_frames`` in all."""
    kinds = ("positive", "negative") if model.num_classes == 1 else tuple(counts["train"]["classes"])
    per_side = {side: {kind: counts[side][kind] if model.num_classes == 1 else counts[side]["classes"][kind] for kind in kinds}
                for side in ("train", "val")}
    if min(n for side in per_side.values() for n in side.values()) == 0:
        what = "with and >= 2 without success" if model.num_classes == 1 else "of every class"
        raise ConfigError("data_path", f"'{data_path}' needs >= 2 trajectories {what} so each class is in training and "
                                       f"validation (train {per_side['train']}, val {per_side['val']})")
    totals = {kind: per_side["train"][kind] + per_side["val"][kind] for kind in kinds}
    few = {kind: n for kind, n in totals.items() if n < min_frames}
    if few:
        raise ConfigError("min_class_frames", f"'{data_path}' holds {', '.join(f'{n} {kind}' for kind, n in few.items())} frame(s), "
                                              f"fewer than min_class_frames={min_frames}: collect more (e.g. a longer warm-up) "
                                              f"or lower min_class_frames")


def train_reward_model(cfg: RewardTrainConfig | Dict[str, Any]) -> Dict[str, Any]:
    """Train, save ``best_model`` / ``last_model`` / ``metrics.json`` / ``evaluation/``; return the metrics with the paths.

    ``cfg`` may also be the JSON dict of a :class:`RewardTrainConfig` (pipelines call this in-process).
    """
    from torch.utils.tensorboard import SummaryWriter

    import embodireward.rewards  # noqa: F401  (registers the built-in reward models)

    cfg = parse_dataclass(RewardTrainConfig, cfg, "")
    for plugin in cfg.plugins:
        load_plugin(plugin)
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    is_main = dist_utils.rank() == 0
    log = print if is_main else lambda *args: None  # rank 0 alone reports, logs and writes files
    seed_everything(cfg.seed + dist_utils.rank())  # per-rank augmentation; DDP syncs the initial weights
    device = builder.resolve_device(cfg.device, "device")
    precision = Precision(cfg.precision, device)
    started = time.time()

    # -- validate everything before the first file is written -------------------------------------
    model = build_reward_model(cfg.model, load_manifest(Path(cfg.data_path))).to(device)
    video = isinstance(model, BaseVideoRewardModel)
    data = load_reward_data(cfg.data_path, model.cfg.camera_keys)
    if video and data.manifest["format"] != "trajectory":
        raise ConfigError("model.name", f"'{cfg.model.name}' trains on frame windows and needs trajectory-format data; '{cfg.data_path}' holds single frames")
    train_index, val_index = split_by_trajectory(data, cfg.val_split, cfg.seed)
    if cfg.max_train_samples is not None and len(train_index) > cfg.max_train_samples:
        keep = torch.randperm(len(train_index), generator=torch.Generator().manual_seed(cfg.seed))[: cfg.max_train_samples]
        train_index = train_index[keep.sort().values]
    window = model.cfg.num_frames if video else None
    robot_state = bool(model.robot_state_dim)
    train_set = RewardDataset(data, train_index, window, cfg.augment, robot_state)
    val_set = RewardDataset(data, val_index, window, robot_state=robot_state)
    if robot_state:
        model.robot_state_encoder.fit_normalization(data.robot_state[train_index])
    data_counts = {"train": data.counts(train_index), "val": data.counts(val_index), "skipped_files": data.skipped, "data_path": str(cfg.data_path)}
    check_class_frames(data_counts, model, cfg.data_path, cfg.min_class_frames)
    output_dir = Path(cfg.output_dir)
    problem = is_writable_location(output_dir)
    if problem:
        raise ConfigError("output_dir", f"cannot write the reward model to '{output_dir}': {problem}")
    if model.num_classes == 1 and data.num_classes > 2:
        log(f"binary model on {data.num_classes}-class data: positive = '{data.class_names[-1]}', negative = the other classes")
    log(f"reward data: train {data_counts['train']}, val {data_counts['val']}")

    classes = target_classes(train_set.labels(), data.num_classes, model)
    train_loader = make_loader(train_set, cfg, train=True, classes=classes)
    val_loader = make_loader(val_set, cfg, train=False)
    weight = loss_weight(torch.bincount(classes, minlength=max(2, model.num_classes)).tolist(), model.num_classes == 1) if cfg.balance == "pos_weight" else None
    train_module = dist_utils.data_parallel(model, device)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg, len(train_loader)))

    log_dir = output_dir / "logs"
    writer = None
    if is_main:
        make_dirs(log_dir)
        with writing(log_dir):
            writer = SummaryWriter(log_dir=str(log_dir))
    manifest = {k: v for k, v in data.manifest.items() if k not in ("frame_trajectories", "trajectory_files")}  # the sidecar needs the env, not the file list
    split = {"data_path": str(Path(cfg.data_path).resolve()), "val_split": cfg.val_split, "seed": cfg.seed}
    mode = MONITOR_MODES[cfg.monitor]
    logged = pick_logged_samples(val_set.labels(), data.num_classes, cfg.seed)
    best: Optional[Dict[str, Any]] = None
    epochs_since_best = 0
    epoch = 0
    try:
        for epoch in range(1, cfg.epochs + 1):
            model.train()
            if isinstance(train_loader.sampler, DistributedSampler):
                train_loader.sampler.set_epoch(epoch)
            loss_sum, seen = 0.0, 0
            progress = tqdm(train_loader, desc=f"epoch {epoch}/{cfg.epochs}", leave=False, disable=not (cfg.progress_bar and is_main and sys.stdout.isatty()))  # logs get the per-epoch line only
            for images, labels in progress:
                labels = labels.to(device)
                with precision.autocast():
                    logits = train_module(model.preprocess(images))  # through DDP's forward, so gradients are averaged
                loss = classification_loss(logits, labels, data.num_classes, weight)
                optimizer.zero_grad(set_to_none=True)
                precision.backward(loss)
                precision.step(optimizer, model.parameters() if cfg.grad_clip > 0 else None, cfg.grad_clip)
                scheduler.step()
                loss_sum += loss.item() * len(labels)
                seen += len(labels)
                progress.set_postfix(loss=f"{loss.item():.4f}")

            logits, labels = predict_all(model, val_loader, len(val_set))  # fp32: comparable across precisions and with eval-reward
            val = {f"val/{k}": v for k, v in score(logits, labels, data.class_names, weight).items()}
            probs = success_probability(logits)
            threshold = best_f1_threshold(probs, success_targets(labels, data.num_classes))[0] if model.num_classes == 1 else None
            loss_sum, seen = dist_utils.all_reduce_sum(torch.tensor([loss_sum, seen], dtype=torch.float64)).tolist()
            metrics = {"epoch": epoch, "train/loss": loss_sum / seen, **val, "val/best_f1_threshold": threshold}
            if is_main:
                for key, value in metrics.items():
                    if key != "epoch" and value is not None:
                        writer.add_scalar(key, value, epoch)
                writer.add_scalar("train/lr", scheduler.get_last_lr()[0], epoch)
                writer.add_pr_curve("val/pr_curve", success_targets(labels, data.num_classes), probs, epoch)
                log_samples(writer, val_set, logged, probs, epoch)

            sidecar = {"manifest": manifest, "recommended_threshold": threshold, "metrics": metrics, "data_split": split}
            is_best = improved(metrics[cfg.monitor], None if best is None else best[cfg.monitor], mode)
            if is_best:
                best, epochs_since_best = metrics, 0
                if is_main:
                    save_reward_model(model, output_dir, "best_model", sidecar)
            else:
                epochs_since_best += 1
            if is_main:
                save_reward_model(model, output_dir, "last_model", sidecar)
            log(f"epoch {epoch}/{cfg.epochs}  {summary_line(val, 'val/')}  train/loss {metrics['train/loss']:.4f}  "
                f"val/loss {val['val/loss']:.4f}" + ("  (best)" if is_best else ""))
            if cfg.early_stopping_patience and epochs_since_best >= cfg.early_stopping_patience:
                log(f"early stopping: {cfg.monitor} did not improve for {epochs_since_best} epochs")
                break
    finally:
        if writer is not None:
            writer.close()

    result = {
        "monitor": cfg.monitor,
        "best_epoch": best["epoch"],
        "epochs_run": epoch,
        "stopped_early": epoch < cfg.epochs,
        "recommended_threshold": best["val/best_f1_threshold"],
        "best": best,
        "last": metrics,
        "data": data_counts,
        "train_seconds": round(time.time() - started, 1),
        "paths": {
            "best_model": str(output_dir / "best_model.safetensors"),
            "last_model": str(output_dir / "last_model.safetensors"),
            "metrics": str(output_dir / "metrics.json"),
            "evaluation": str(output_dir / "evaluation" / "reward_eval.json"),
            "log_dir": str(log_dir),
        },
    }
    if is_main:
        best_model = load_reward_model(output_dir, device=device)
        info = {"model": str(output_dir), "data": str(cfg.data_path), "split": "val"}
        report = evaluate_reward_model(best_model, val_set, output_dir, batch_size=cfg.batch_size, info=info)
        result["evaluation"] = {key: report[key] for key in (*SUMMARY_KEYS, "ece", "threshold")}
        log(f"best_model on the validation split: {summary_line(report)} (threshold {report['threshold']}) -> {output_dir / 'evaluation'}")
        atomic_write_json(output_dir / "metrics.json", result)
    dist_utils.barrier()  # on every rank, returning means rank 0's files are on disk
    return result
