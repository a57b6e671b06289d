"""Who labels the frames a refresh picks: registered labellers (``@register_labeller``).

A labeller is given frames with :meth:`Labeller.submit` and hands back the labels it has with
:meth:`Labeller.ready`, now or at a later refresh (a person answering a queue). Labels are class
indices of the reward data: 0 failure, 1 success.

``env_success``  the simulator's success signal: a stand-in for a person, within the label budget.
``vice``         every policy frame is a failure, the original positives stay (VICE, Fu et al.
                 2018): no labels needed, so no budget. It can only make the model stricter.
``queue``        writes each frame to ``<queue_dir>/pending/<id>.png`` and picks up answers written
                 to ``<queue_dir>/answers/<id>.json`` (``{"label": "success"}`` or ``"failure"``,
                 or 1 / 0) by a person or a tool; training goes on with the current model meanwhile.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch

from embodireward.config import ConfigError
from embodireward.registry import register_labeller
from embodireward.rewards.frame_png import encode_frame, read_frame
from embodireward.utils.io import atomic_path, atomic_write_json, is_writable_location, make_dirs

Frames = Dict[str, torch.Tensor]  # a pool selection: images [K, H, W, 3], frame_id, trajectory, success, (robot_state) ...
# (frame_id, trajectory, image [H, W, 3], label, robot state [D] or None)
Labelled = Tuple[int, int, torch.Tensor, int, Optional[torch.Tensor]]
LABEL_NAMES = {"failure": 0, "success": 1}


@dataclass
class LabellerContext:
    run_dir: Path
    has_success: bool  # the env reports true success
    log: Callable[[str], None]


class Labeller:
    """Base class. ``uses_budget``: its labels count against ``reward.refresh.label_budget``."""

    uses_budget = True
    needs_env_success = False

    def __init__(self, cfg: Any, context: LabellerContext):
        self.cfg = cfg
        self.context = context
        if self.needs_env_success and not context.has_success:
            raise ConfigError("reward.refresh.labeller.name", f"'{self.registry_name}' labels by the env's success signal, which this env does not report")
        self._ready: List[Labelled] = []

    def submit(self, frames: Frames) -> None:
        """Ask for labels of ``frames``."""
        raise NotImplementedError

    def ready(self) -> List[Labelled]:
        """The labels that have arrived since the last call."""
        ready, self._ready = self._ready, []
        return ready

    def on_train_start(self) -> None:
        """Create what the labeller writes to (called once the run directory exists)."""

    def state_dict(self) -> Dict[str, Any]:
        return {}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        pass


def robot_states(frames: Frames) -> Sequence[Optional[torch.Tensor]]:
    """Each frame's robot state (None for every frame when the model reads images only)."""
    return frames.get("robot_state", [None] * len(frames["frame_id"]))


def labelled_rows(frames: Frames, labels: torch.Tensor) -> List[Labelled]:
    """What a labeller hands back for ``frames`` (a pool selection) and their class ``labels`` ``[K]``."""
    return [(int(f), int(t), image, int(label), state)
            for f, t, image, label, state in zip(frames["frame_id"], frames["trajectory"], frames["images"], labels, robot_states(frames))]


@register_labeller("env_success")
class EnvSuccessLabeller(Labeller):
    """The env's true success of each frame (a simulated person with a label budget)."""

    needs_env_success = True

    def submit(self, frames: Frames) -> None:
        self._ready += labelled_rows(frames, frames["success"].long())


@register_labeller("vice")
class ViceLabeller(Labeller):
    """Every policy frame labelled failure (VICE); the labelled positives are the original data's."""

    uses_budget = False

    def submit(self, frames: Frames) -> None:
        self._ready += labelled_rows(frames, torch.zeros(len(frames["frame_id"]), dtype=torch.long))


@dataclass
class QueueConfig:
    queue_dir: str = "{run_dir}/label_queue"  # {run_dir} is replaced


@register_labeller("queue")
class QueueLabeller(Labeller):
    """Frames to label on disk; answers picked up from disk at each refresh."""

    Config = QueueConfig

    def __init__(self, cfg: QueueConfig, context: LabellerContext):
        super().__init__(cfg, context)
        self.dir = Path(cfg.queue_dir.replace("{run_dir}", str(context.run_dir)))
        problem = is_writable_location(self.dir)
        if problem:
            raise ConfigError("reward.refresh.labeller.cfg.queue_dir", f"cannot write the label queue to '{self.dir}': {problem}")
        self.pending, self.answers, self.done = self.dir / "pending", self.dir / "answers", self.dir / "done"
        self._rejected: set = set()

    def on_train_start(self) -> None:
        for folder in (self.pending, self.answers, self.done):
            make_dirs(folder)

    def submit(self, frames: Frames) -> None:
        for frame_id, trajectory, image, state in zip(frames["frame_id"].tolist(), frames["trajectory"].tolist(), frames["images"], robot_states(frames)):
            stem = f"{frame_id:08d}"
            with atomic_path(self.pending / f"{stem}.png") as tmp:  # the robot state, if any, rides in the PNG
                tmp.write_bytes(encode_frame(image.numpy(), None if state is None else state.numpy()))
            atomic_write_json(self.pending / f"{stem}.json", {"frame_id": frame_id, "trajectory": trajectory})

    def ready(self) -> List[Labelled]:
        ready = []
        for answer in sorted(self.answers.glob("*.json")):
            stem = answer.stem
            image_path, meta_path = self.pending / f"{stem}.png", self.pending / f"{stem}.json"
            label = self._read_label(answer, image_path)
            if label is None:
                continue
            meta = json.loads(meta_path.read_text())
            image, state = read_frame(image_path, robot_state_dim=None)
            ready.append((int(meta["frame_id"]), int(meta["trajectory"]), image[0].permute(1, 2, 0).contiguous(), label,
                          None if state is None else state[0]))
            for path, name in ((image_path, image_path.name), (meta_path, meta_path.name), (answer, f"{stem}.answer.json")):
                path.replace(self.done / name)  # answered: out of the queue
        return ready

    def _read_label(self, answer: Path, image_path: Path):
        """The answer's label (0 / 1), or None (reported once) when it cannot be used yet."""
        problem = None
        try:
            label = json.loads(answer.read_text()).get("label")
            label = LABEL_NAMES.get(label, label)
            if label not in (0, 1) or isinstance(label, bool):
                problem = f"expected label 'success', 'failure', 1 or 0, got {label!r}"
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, OSError) as exc:
            problem = f"not a JSON object with a label ({type(exc).__name__})"
        if problem is None and not image_path.is_file():
            problem = f"no pending frame {image_path.name} to go with it"
        if problem is not None:
            if answer.name not in self._rejected:
                self._rejected.add(answer.name)
                self.context.log(f"reward refresh: label queue answer {answer} skipped: {problem}")
            return None
        return int(label)
