"""Supervised training of a reward model on a collected data directory.

BCE-with-logits, AdamW, a per-step LR schedule, gradient clipping, and early stopping on the same
validation metric (``monitor``) that selects ``best_model``. Writes to ``output_dir``::

    best_model.safetensors / .json   best epoch by ``monitor`` (sidecar: config, data manifest,
                                     recommended_threshold, metrics)
    last_model.safetensors / .json   the final epoch
    metrics.json                     best/last metrics, threshold, epoch and data counts
    logs/                            TensorBoard: losses, metrics, PR curve, sample images
"""
from __future__ import annotations

import dataclasses
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, DistributedSampler, Subset, WeightedRandomSampler
from tqdm import tqdm

from embodireward import builder
from embodireward.config import ConfigError, apply_overrides, config_error, load_json, parse_dataclass
from embodireward.registry import REWARD_MODELS, RegistryError, load_plugin
from embodireward.rewards.base import BaseRewardModel, BaseVideoRewardModel
from embodireward.rewards.checkpoint import save_reward_model
from embodireward.rewards.data import AugmentConfig, RewardDataset, load_manifest, load_reward_data, split_by_trajectory
from embodireward.rewards.metrics import auroc, best_f1_threshold, binary_metrics
from embodireward.utils import distributed as dist_utils
from embodireward.utils.io import atomic_write_json
from embodireward.utils.seed import seed_everything

MONITOR_MODES = {"val/f1": "max", "val/auroc": "max", "val/accuracy": "max", "val/loss": "min"}
NUM_LOGGED_IMAGES = 16  # validation samples shown in TensorBoard with their probabilities


@dataclass
class ModelSection:
    name: str = "resnet_reward"
    # model Config keys; camera_keys and image_size default to the data manifest's
    cfg: Dict[str, Any] = field(default_factory=dict)


@dataclass
class RewardTrainConfig:
    data_path: str
    output_dir: str = "outputs/reward_model"
    model: ModelSection = field(default_factory=ModelSection)
    plugins: List[str] = field(default_factory=list)  # modules / .py files registering custom reward models
    epochs: int = 10
    batch_size: int = 64
    lr: float = 3e-4
    weight_decay: float = 1e-4
    val_split: float = 0.2  # fraction of trajectories (per class) held out
    early_stopping_patience: int = 5  # epochs without a better ``monitor``; 0 disables
    monitor: Literal["val/f1", "val/auroc", "val/loss", "val/accuracy"] = "val/f1"
    scheduler: Literal["cosine", "warmup_cosine", "constant"] = "cosine"
    warmup_epochs: int = 1  # warmup_cosine only
    grad_clip: float = 1.0  # max gradient norm; 0 disables
    balance: Literal["pos_weight", "sampler", "none"] = "pos_weight"  # class imbalance handling
    num_workers: int = 0
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:<i>
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    max_train_samples: Optional[int] = None  # random subset of the training frames
    num_threads: int = 0  # torch CPU threads; 0 keeps torch's default
    progress_bar: bool = True

    def validate(self, path: str) -> None:
        for key in ("epochs", "batch_size"):
            if getattr(self, key) < 1:
                raise config_error(path, key, f"must be >= 1, got {getattr(self, key)}")
        for key in ("weight_decay", "early_stopping_patience", "warmup_epochs", "grad_clip", "num_workers", "num_threads"):
            if getattr(self, key) < 0:
                raise config_error(path, key, f"must be >= 0, got {getattr(self, key)}")
        if self.lr <= 0:
            raise config_error(path, "lr", f"must be > 0, got {self.lr}")
        if not 0.0 < self.val_split < 1.0:
            raise config_error(path, "val_split", f"must be in (0, 1), got {self.val_split}")
        if self.max_train_samples is not None and self.max_train_samples < 1:
            raise config_error(path, "max_train_samples", f"must be >= 1 or null, got {self.max_train_samples}")
        if self.device != "auto":
            try:
                torch.device(self.device)
            except RuntimeError:
                raise config_error(path, "device", f"expected 'auto', 'cpu', 'cuda' or 'cuda:<index>', got {self.device!r}")


def load_reward_train_config(path: str | Path, overrides: Optional[List[str]] = None) -> RewardTrainConfig:
    return parse_dataclass(RewardTrainConfig, apply_overrides(load_json(path), overrides or []), "")


def build_reward_model(section: ModelSection, manifest: Dict[str, Any], path: str = "model") -> BaseRewardModel:
    """A fresh model for ``section``; ``camera_keys`` / ``image_size`` not given come from the data manifest."""
    try:
        cls = REWARD_MODELS.get(section.name)
    except RegistryError as exc:
        raise ConfigError(f"{path}.name", str(exc)) from None
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    from_data = {"camera_keys": manifest.get("camera_keys"), "image_size": manifest.get("image_size")}
    cfg_data = {k: v for k, v in from_data.items() if k in fields and v} | section.cfg
    cfg = parse_dataclass(cls.Config, cfg_data, f"{path}.cfg")
    unknown = [k for k in getattr(cfg, "camera_keys", []) if k not in manifest.get("camera_keys", [])]
    if unknown:
        raise ConfigError(f"{path}.cfg.camera_keys", f"camera(s) {unknown} are not in the data (it has {manifest.get('camera_keys')})")
    return cls(cfg)


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


def make_loader(dataset: RewardDataset, cfg: RewardTrainConfig, train: bool) -> DataLoader:
    """Under torch.distributed each rank loads its share: a DistributedSampler shard (or its own
    weighted draws) of the training set, every ``world_size``-th validation sample."""
    rank, world = dist_utils.rank(), dist_utils.world_size()
    generator = torch.Generator().manual_seed(cfg.seed + rank)
    sampler = None
    if train and cfg.balance == "sampler":
        positive = dataset.labels() > 0.5
        n_pos = int(positive.sum())
        weights = torch.where(positive, 1.0 / n_pos, 1.0 / (len(dataset) - n_pos)) if 0 < n_pos < len(dataset) else torch.ones(len(dataset))
        sampler = WeightedRandomSampler(weights.double(), num_samples=math.ceil(len(dataset) / world), replacement=True, generator=generator)
    elif train and world > 1:
        sampler = DistributedSampler(dataset, seed=cfg.seed)  # set_epoch() reshuffles it
    elif world > 1:
        dataset = Subset(dataset, range(rank, len(dataset), world))  # predict_all() restores the order
    return DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        shuffle=train and sampler is None,
        sampler=sampler,
        num_workers=cfg.num_workers,
        generator=generator,
        persistent_workers=cfg.num_workers > 0,
    )


@torch.no_grad()
def predict(model: BaseRewardModel, loader: DataLoader) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and labels of every sample of ``loader`` (in order), with the model in eval mode."""
    model.eval()
    logits, labels = [], []
    for images, batch_labels in loader:
        logits.append(model.predict_logits(images).float().cpu())
        labels.append(batch_labels.float())
    return torch.cat(logits), torch.cat(labels)


def predict_all(model: BaseRewardModel, loader: DataLoader, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``predict`` over the whole validation set: each rank predicts its strided share, then every
    rank gathers all shares, so all ranks compute the same metrics and take the same decisions."""
    dist_utils.average_buffers(model)  # BatchNorm statistics drift apart per rank during training
    shares = dist_utils.all_gather_objects(predict(model, loader))
    logits, labels = torch.empty(size), torch.empty(size)
    for rank, (share_logits, share_labels) in enumerate(shares):
        logits[rank :: len(shares)] = share_logits
        labels[rank :: len(shares)] = share_labels
    return logits, labels


def evaluate(logits: torch.Tensor, labels: torch.Tensor, pos_weight: Optional[torch.Tensor]) -> Dict[str, float]:
    probs = torch.sigmoid(logits)
    metrics = {"loss": float(F.binary_cross_entropy_with_logits(logits, labels, pos_weight=pos_weight))}
    metrics |= binary_metrics(probs, labels)
    metrics["auroc"] = auroc(probs, labels)
    return metrics


def improved(value: float, best: Optional[float], mode: str) -> bool:
    return best is None or (value < best if mode == "min" else value > best)


def pick_logged_samples(labels: torch.Tensor, seed: int) -> torch.Tensor:
    """Up to NUM_LOGGED_IMAGES validation positions, half positives, half negatives."""
    generator = torch.Generator().manual_seed(seed)
    picks = []
    for members in (torch.nonzero(labels > 0.5).squeeze(1), torch.nonzero(labels <= 0.5).squeeze(1)):
        picks.append(members[torch.randperm(len(members), generator=generator)[: NUM_LOGGED_IMAGES // 2]])
    return torch.cat(picks)


def log_samples(writer, dataset: RewardDataset, picks: torch.Tensor, probs: torch.Tensor, epoch: int) -> None:
    """Sample validation images (first camera, last frame of a clip) + a text table of their probabilities."""
    images = torch.stack([next(iter(dataset[int(i)][0].values())) for i in picks])
    if images.dim() == 5:
        images = images[:, -1]
    writer.add_images("val/samples", images, epoch, dataformats="NCHW")
    rows = [f"| {n} | {int(dataset.labels()[i] > 0.5)} | {float(probs[i]):.3f} |" for n, i in enumerate(picks.tolist())]
    writer.add_text("val/sample_probs", "| image | label | P(success) |\n|---|---|---|\n" + "\n".join(rows), epoch)


def train_reward_model(cfg: RewardTrainConfig | Dict[str, Any]) -> Dict[str, Any]:
    """Train, save ``best_model`` / ``last_model`` / ``metrics.json``; return the metrics with the paths.

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
    started = time.time()

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
    train_set = RewardDataset(data, train_index, window, cfg.augment)
    val_set = RewardDataset(data, val_index, window)
    data_counts = {"train": data.counts(train_index), "val": data.counts(val_index), "skipped_files": data.skipped, "data_path": str(cfg.data_path)}
    if min(data_counts[side][kind] for side in ("train", "val") for kind in ("positive", "negative")) == 0:
        raise ConfigError("data_path", f"'{cfg.data_path}' needs >= 2 trajectories with and >= 2 without success so both "
                          f"classes are in training and validation (train {data_counts['train']}, val {data_counts['val']})")
    log(f"reward data: train {data_counts['train']}, val {data_counts['val']}")

    train_loader = make_loader(train_set, cfg, train=True)
    val_loader = make_loader(val_set, cfg, train=False)
    counts = data_counts["train"]
    pos_weight = torch.tensor(counts["negative"] / counts["positive"]) if cfg.balance == "pos_weight" else None
    train_module = dist_utils.data_parallel(model, device)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg, len(train_loader)))

    output_dir = Path(cfg.output_dir)
    log_dir = output_dir / "logs"
    writer = SummaryWriter(log_dir=str(log_dir)) if is_main else None
    manifest = {k: v for k, v in data.manifest.items() if k != "frame_trajectories"}  # the sidecar needs the env, not the file list
    mode = MONITOR_MODES[cfg.monitor]
    logged = pick_logged_samples(val_set.labels(), cfg.seed)
    best: Optional[Dict[str, Any]] = None
    epochs_since_best = 0
    epoch = 0
    try:
        for epoch in range(1, cfg.epochs + 1):
            model.train()
            if isinstance(train_loader.sampler, DistributedSampler):
                train_loader.sampler.set_epoch(epoch)
            loss_sum, correct, seen = 0.0, 0, 0
            progress = tqdm(train_loader, desc=f"epoch {epoch}/{cfg.epochs}", leave=False, disable=not (cfg.progress_bar and is_main and sys.stdout.isatty()))  # logs get the per-epoch line only
            for images, labels in progress:
                labels = labels.float().to(device)
                logits = train_module(model.preprocess(images))  # through DDP's forward, so gradients are averaged
                loss = F.binary_cross_entropy_with_logits(logits, labels, pos_weight=None if pos_weight is None else pos_weight.to(device))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optimizer.step()
                scheduler.step()
                loss_sum += loss.item() * len(labels)
                correct += int(((logits > 0) == (labels > 0.5)).sum())
                seen += len(labels)
                progress.set_postfix(loss=f"{loss.item():.4f}")

            logits, labels = predict_all(model, val_loader, len(val_set))
            val = {f"val/{k}": v for k, v in evaluate(logits, labels, pos_weight).items()}
            probs = torch.sigmoid(logits)
            threshold, _ = best_f1_threshold(probs, labels)
            loss_sum, correct, seen = dist_utils.all_reduce_sum(torch.tensor([loss_sum, correct, seen], dtype=torch.float64)).tolist()
            metrics = {"epoch": epoch, "train/loss": loss_sum / seen, "train/accuracy": correct / seen, **val, "val/best_f1_threshold": threshold}
            if is_main:
                for key, value in metrics.items():
                    if key != "epoch":
                        writer.add_scalar(key, value, epoch)
                writer.add_scalar("train/lr", scheduler.get_last_lr()[0], epoch)
                writer.add_pr_curve("val/pr_curve", labels, probs, epoch)
                log_samples(writer, val_set, logged, probs, epoch)

            sidecar = {"manifest": manifest, "recommended_threshold": threshold, "metrics": metrics}
            is_best = improved(metrics[cfg.monitor], None if best is None else best[cfg.monitor], mode)
            if is_best:
                best, epochs_since_best = metrics, 0
                if is_main:
                    save_reward_model(model, output_dir, "best_model", sidecar)
            else:
                epochs_since_best += 1
            if is_main:
                save_reward_model(model, output_dir, "last_model", sidecar)
            log(
                f"epoch {epoch}/{cfg.epochs}  train/loss {metrics['train/loss']:.4f}  val/loss {val['val/loss']:.4f}  "
                f"val/accuracy {val['val/accuracy']:.4f}  val/f1 {val['val/f1']:.4f}  val/auroc {val['val/auroc']:.4f}"
                + ("  (best)" if is_best else "")
            )
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
            "log_dir": str(log_dir),
        },
    }
    if is_main:
        atomic_write_json(output_dir / "metrics.json", result)
    dist_utils.barrier()  # on every rank, returning means rank 0's files are on disk
    return result
