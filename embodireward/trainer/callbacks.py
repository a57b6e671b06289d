"""Trainer callbacks: observers called at documented points of the training loop.

Order of calls in one run::

    on_train_start
    repeat for each iteration:
        (frame_request -> env.step -> on_step) x rollout_steps
        on_rollout_end
        on_update_end
        on_eval_end          (when an evaluation ran)
        on_checkpoint        (after each checkpoint write)
    on_train_end

A callback that needs camera frames says so in ``frame_request`` before each step; the trainer
merges all requests so the env renders at most once per step and only what someone needs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, List, Optional

import torch

from embodireward.envs.base import Frames, Obs, RenderRequest, merge_render_requests

if TYPE_CHECKING:  # pragma: no cover
    from embodireward.trainer.trainer import Trainer


@dataclass
class StepData:
    """Everything known about one vectorised env step, as callbacks see it.

    ``reward`` is what the algorithm trains on (after the reward-model hook); ``env_reward`` is
    the env's own reward. ``done = terminated | truncated``. ``success`` is the env's true
    success of the state the step ended in (None if the env has no success notion).
    """

    global_step: int
    obs: Obs
    actions: torch.Tensor
    next_obs: Obs
    reward: torch.Tensor
    env_reward: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    info: Dict[str, Any]
    frames: Optional[Frames]
    success: Optional[torch.Tensor]

    @property
    def done(self) -> torch.Tensor:
        return self.terminated | self.truncated


class Callback:
    """Base class of registered callbacks. Override only what you need.

    Registered callbacks are built as ``cls(cfg, trainer)``, ``cfg`` being their ``Config``
    dataclass parsed from the JSON block ``{"name": ..., "cfg": {...}}`` (the plain dict when the
    class has no ``Config``). Construction happens before the run directory exists: check the
    configuration there (raise ``ConfigError``), and write files from ``on_train_start`` on.
    ``state_dict`` / ``load_state_dict`` carry the callback's state through checkpoints, so a
    resumed run continues where it stopped.
    """

    def __init__(self, cfg: Any = None, trainer: Optional["Trainer"] = None):
        self.cfg = cfg

    def state_dict(self) -> Dict[str, Any]:
        """State to save in every checkpoint (tensors, numbers, strings, lists and dicts of them)."""
        return {}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned; called after construction, before ``on_train_start``."""

    def frame_request(self) -> RenderRequest:
        """Which frames the next step must render for this callback."""
        return "never"

    def on_train_start(self, trainer: "Trainer") -> None: ...

    def on_step(self, trainer: "Trainer", step: StepData) -> None: ...

    def on_rollout_end(self, trainer: "Trainer") -> None: ...

    def on_update_end(self, trainer: "Trainer", metrics: Dict[str, float]) -> None: ...

    def on_eval_end(self, trainer: "Trainer", metrics: Dict[str, float]) -> None: ...

    def on_checkpoint(self, trainer: "Trainer", path: str) -> None: ...

    def on_train_end(self, trainer: "Trainer") -> None: ...

    def progress(self) -> Dict[str, Any]:
        """Short key/values shown on the progress bar."""
        return {}


class CallbackList:
    """Fans each call out to every callback, in configuration order."""

    def __init__(self, callbacks: List[Callback]):
        self.callbacks = list(callbacks)

    def frame_request(self) -> RenderRequest:
        return merge_render_requests(*(cb.frame_request() for cb in self.callbacks))

    def __getattr__(self, name: str):
        if not name.startswith("on_"):
            raise AttributeError(name)

        def fan_out(*args, **kwargs):
            for cb in self.callbacks:
                getattr(cb, name)(*args, **kwargs)

        return fan_out

    def state_dict(self) -> List[Dict[str, Any]]:
        return [{"type": type(cb).__qualname__, "state": cb.state_dict()} for cb in self.callbacks]

    def load_state_dict(self, states: List[Dict[str, Any]]) -> None:
        if len(states) != len(self.callbacks):
            raise ValueError(f"checkpoint holds the state of {len(states)} callbacks, the config has {len(self.callbacks)}")
        for cb, saved in zip(self.callbacks, states):
            if saved["type"] != type(cb).__qualname__:
                raise ValueError(f"checkpoint holds the state of callback {saved['type']}, the config has {type(cb).__qualname__} there")
            cb.load_state_dict(saved["state"])

    def progress(self) -> Dict[str, Any]:
        merged: Dict[str, Any] = {}
        for cb in self.callbacks:
            merged.update(cb.progress())
        return merged
