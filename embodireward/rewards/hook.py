"""Learned reward in the RL loop: rendered frames -> reward-model P(success) -> training reward.

``terminal`` mode (RLinf's recommendation) scores only the terminal frame of episodes that ended
this step, so intermediate states cannot be reward-hacked and steps where no episode ended cost
no inference; ``per_step`` scores every env's frame every step.

A binary model's P(success) ``p`` becomes ``success_reward`` / ``fail_reward`` at the threshold
(or ``fail + p (success - fail)`` with ``use_soft_reward``). A ``K``-class model (e.g. stages
failed / partial / success) maps its class probabilities ``p_k`` through ``class_rewards``
``r_k``: the expected reward ``sum_k p_k r_k`` with ``use_soft_reward``, else the reward of the
most probable class. Its "predicted success", compared with the env's true success for
precision / recall, is "the most probable class is the last one" (success is the last class).

Inference runs ``model.for_inference()`` (a ResNet's BatchNorms folded into its convolutions)
under ``precision`` (``utils.precision``): bf16 autocast speeds up the convolutions;
probabilities are computed from float32 logits.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import imageio.v3 as iio
import torch

from embodireward.config import ConfigError, RewardSection
from embodireward.envs.base import Frames, RenderRequest, VecEnv
from embodireward.rewards.base import ROBOT_STATE_KEY, BaseRewardModel, BaseVideoRewardModel, robot_state_mismatch
from embodireward.rewards.checkpoint import load_reward_model
from embodireward.rewards.manager import RewardManager
from embodireward.utils.distributed import all_reduce_sum, world_size
from embodireward.utils.precision import PRECISIONS, Precision

TOTAL_KEYS = ("images", "predicted", "tp", "fp", "tn", "fn", "seconds")


def build_reward_hook(section: RewardSection, env: VecEnv, device: Union[str, torch.device],
                      precision: str = "fp32") -> Optional["RewardHook"]:
    """The hook for ``section``, or None when ``use_reward_model`` is false. ``precision``: ``runtime.precision``."""
    if not section.use_reward_model:
        return None
    env_desc = env.describe()
    model = load_reward_model(section.checkpoint_path, device=device, expected_env=env_desc)
    return RewardHook(section, model, env_desc, device, precision)


class RewardHook:
    """Turns reward-model probabilities on rendered frames into the reward the algorithm trains on."""

    def __init__(self, section: RewardSection, model: BaseRewardModel, env_desc: Dict[str, Any], device: Union[str, torch.device] = "cpu",
                 precision: str = "fp32"):
        sidecar = model.sidecar
        name = sidecar.get("name", getattr(model, "registry_name", section.name))
        if name != section.name:
            raise ConfigError("reward.name", f"checkpoint '{section.checkpoint_path}' holds a '{name}' model, config says '{section.name}'")
        if isinstance(model, BaseVideoRewardModel):
            raise ConfigError("reward.name", f"'{name}' scores clips; the reward hook scores single frames (use an image reward model)")
        cameras = list(env_desc.get("camera_keys", []))
        missing = [key for key in model.cfg.camera_keys if key not in cameras]
        if missing:
            raise ConfigError("reward.checkpoint_path", f"the model reads camera(s) {missing} that env '{env_desc.get('env_id')}' lacks (cameras: {cameras})")
        problem = robot_state_mismatch(model.robot_state_dim, env_desc.get("robot_state_dim", 0), f"env '{env_desc.get('env_id')}' gives")
        if problem:
            raise ConfigError("reward.checkpoint_path", f"{problem} with its frames")
        data_render = sidecar.get("manifest", {}).get("render")
        if section.reward_mode == "per_step" and data_render == "episode_end":
            raise ConfigError("reward.reward_mode", "'per_step' scores every frame but the model was trained on terminal frames only (data render 'episode_end'); use 'terminal' or collect with render 'every_step'")
        check_class_rewards(section, model)
        if precision not in PRECISIONS:
            raise ConfigError("runtime.precision", f"expected one of {', '.join(PRECISIONS)}, got {precision!r}")

        self.section = section
        self.model = model
        recommended = sidecar.get("recommended_threshold")
        self.threshold = section.threshold if section.threshold is not None else (recommended if recommended is not None else 0.5)
        self.precision = Precision(precision, torch.device(device))
        self.manager = RewardManager(section.batch_size, device)
        self.manager.register_model(section.name, model.for_inference())
        self.debug_dir = Path(section.debug_save_dir) if section.debug_save_dir else None
        self._debug_saved = 0
        self._totals = {key: 0.0 for key in TOTAL_KEYS}
        # called with every scored batch: (env_ids, images, probs, predicted, success, done); the
        # online refresh gathers its candidate frames this way, without a second forward pass
        self.observers: List[Callable[..., None]] = []
        self._reset_metrics()

    def swap_model(self, model: BaseRewardModel, threshold: float) -> None:
        """Score with ``model`` from the next step on. The inference copy is built first and put in
        place by one assignment, so no step ever sees a half-replaced model."""
        inference = model.for_inference()
        self.manager.register_model(self.section.name, inference)
        self.model, self.threshold = model, threshold

    def frame_request(self) -> RenderRequest:
        return "episode_end" if self.section.reward_mode == "terminal" else "every_step"

    def compute(self, env_reward: torch.Tensor, terminated: torch.Tensor, truncated: torch.Tensor,
                frames: Optional[Frames], success: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Training reward ``[N]`` for one step (see the module docstring for which envs are scored)."""
        s = self.section
        if s.reward_mode == "terminal":
            env_ids = (terminated | truncated).nonzero().flatten()
        else:
            env_ids = torch.arange(env_reward.shape[0], device=env_reward.device)
        model_reward = torch.zeros(env_reward.shape, dtype=torch.float32, device=env_reward.device)
        if env_ids.numel():
            if frames is None:
                raise RuntimeError(f"the reward hook needs '{self.frame_request()}' frames but the step has none; pass hook.frame_request() to env.step")
            images = self._model_inputs(frames.select(env_ids))
            start = time.perf_counter()
            probs, predicted, reward = (value.to(env_reward.device) for value in self._score(images))
            self._seconds += time.perf_counter() - start
            model_reward[env_ids] = reward
            scored_success = None if success is None else success[env_ids].to(probs.device).bool()
            self._record(probs, predicted, scored_success)
            for observer in self.observers:
                observer(env_ids, images, probs, predicted, scored_success, (terminated | truncated)[env_ids])
            if self.debug_dir is not None and self._debug_saved < s.debug_save_max:
                self._debug_save(images[self.model.cfg.camera_keys[0]], probs, predicted)
        return self._combine(env_reward.float(), model_reward)

    def _model_inputs(self, frames: Frames) -> Dict[str, torch.Tensor]:
        """The camera images, and the robot state for a model that reads it."""
        if not self.model.robot_state_dim:
            return frames.images
        if frames.robot_state is None:
            raise RuntimeError("the reward model reads the robot state but the step's frames carry none")
        return {**frames.images, ROBOT_STATE_KEY: frames.robot_state}

    def _score(self, images: Dict[str, torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """P(success), predicted success and the model's reward, each ``[K]``, for ``K`` frames."""
        s = self.section
        with self.precision.autocast():
            if self.model.num_classes == 1:
                probs = self.manager.compute_rewards(images)
                return probs, probs >= self.threshold, self.model.scale_reward(probs, self.threshold, s.use_soft_reward, s.success_reward, s.fail_reward)
            class_probs = self.manager.compute_class_probabilities(images)
        predicted = class_probs.argmax(dim=-1) == self.model.num_classes - 1
        return class_probs[:, -1], predicted, self.model.class_reward(class_probs, s.class_rewards, s.use_soft_reward)

    def _combine(self, env_reward: torch.Tensor, model_reward: torch.Tensor) -> torch.Tensor:
        s = self.section
        if s.combine_mode == "replace":
            return model_reward
        if s.combine_mode == "add":
            return env_reward + s.reward_weight * model_reward
        return s.reward_weight * model_reward + s.env_reward_weight * env_reward

    def _debug_save(self, images: torch.Tensor, probs: torch.Tensor, predicted: torch.Tensor) -> None:
        for image, prob, is_success in zip(images.cpu(), probs.tolist(), predicted.tolist()):
            if self._debug_saved >= self.section.debug_save_max:
                return
            path = self.debug_dir / ("success" if is_success else "fail") / f"{self._debug_saved:06d}_prob{prob:.4f}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            iio.imwrite(path, image.numpy())
            self._debug_saved += 1

    # ------------------------------------------------------------------ agreement with true success

    def _record(self, probs: torch.Tensor, predicted: torch.Tensor, success: Optional[torch.Tensor]) -> None:
        self._calls += 1
        self._images += int(probs.numel())
        self._prob_sum += float(probs.sum())
        self._predicted += int(predicted.sum())
        if success is not None:
            tp, fp, tn, fn = confusion_counts(predicted, success)
            self._tp, self._fp, self._tn, self._fn = self._tp + tp, self._fp + fp, self._tn + tn, self._fn + fn

    def _reset_metrics(self) -> None:
        self._calls = self._images = self._predicted = 0
        self._tp = self._fp = self._tn = self._fn = 0
        self._prob_sum = self._seconds = 0.0

    def metrics(self) -> Dict[str, float]:
        """Scores since the last call (then reset), compared with the env's true success.

        Ratios whose denominator is zero (e.g. no predicted successes for precision) are left out.
        Under torch.distributed the counts are pooled over ranks (seconds: the mean per rank). The
        pooled counts also accumulate into the run's totals (:meth:`total_metrics`).
        """
        counts = [self._calls, self._images, self._seconds, self._prob_sum, self._predicted, self._tp, self._fp, self._tn, self._fn]
        calls, images, seconds, prob_sum, predicted, tp, fp, tn, fn = all_reduce_sum(torch.tensor(counts, dtype=torch.float64)).tolist()
        for key, value in zip(TOTAL_KEYS, (images, predicted, tp, fp, tn, fn, seconds / world_size())):
            self._totals[key] += value
        m: Dict[str, float] = {"reward_model/calls": calls, "reward_model/images": images, "reward_model/seconds": seconds / world_size()}
        if images:
            m["reward_model/mean_prob"] = prob_sum / images
            m["reward_model/predicted_success_rate"] = predicted / images
        m.update(agreement_metrics("reward_model", tp, fp, tn, fn))
        self._reset_metrics()
        return m

    def total_metrics(self) -> Dict[str, float]:
        """The same comparison over every frame scored so far in this run (resumes included)."""
        t = self._totals
        m = {"reward_model_total/images": t["images"], "reward_model_total/seconds": t["seconds"]}
        if t["images"]:
            m["reward_model_total/predicted_success_rate"] = t["predicted"] / t["images"]
        scored = t["tp"] + t["fp"] + t["tn"] + t["fn"]
        if scored:
            m["reward_model_total/true_success_rate"] = (t["tp"] + t["fn"]) / scored
        m.update(agreement_metrics("reward_model_total", t["tp"], t["fp"], t["tn"], t["fn"]))
        return m

    def state_dict(self) -> Dict[str, Any]:
        return {"totals": dict(self._totals), "debug_saved": self._debug_saved}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self._totals.update(state["totals"])
        self._debug_saved = int(state["debug_saved"])


def confusion_counts(predicted: torch.Tensor, success: torch.Tensor) -> Tuple[int, int, int, int]:
    """``(tp, fp, tn, fn)`` of boolean predicted success against boolean true success."""
    return (int((predicted & success).sum()), int((predicted & ~success).sum()),
            int((~predicted & ~success).sum()), int((~predicted & success).sum()))


def agreement_metrics(prefix: str, tp: float, fp: float, tn: float, fn: float) -> Dict[str, float]:
    """Precision, recall, agreement and false-positive rate of predicted vs true success (defined ones only)."""
    m = {}
    for key, num, den in (("precision", tp, tp + fp), ("recall", tp, tp + fn), ("agreement", tp + tn, tp + fp + tn + fn), ("false_positive_rate", fp, fp + tn)):
        if den:
            m[f"{prefix}/{key}"] = num / den
    return m


def check_class_rewards(section: RewardSection, model: BaseRewardModel) -> None:
    """``class_rewards`` must give one reward per class of a K-class model, and only of one."""
    k = model.num_classes
    if k == 1 and section.class_rewards is not None:
        raise ConfigError("reward.class_rewards", f"the checkpoint '{section.checkpoint_path}' is a binary success classifier; "
                                                  "map it with success_reward / fail_reward instead")
    if k >= 2 and (section.class_rewards is None or len(section.class_rewards) != k):
        got = "none" if section.class_rewards is None else f"{len(section.class_rewards)}"
        raise ConfigError("reward.class_rewards", f"the checkpoint '{section.checkpoint_path}' has {k} classes "
                                                  f"({', '.join(model.class_names)}): give one reward per class, got {got}")
