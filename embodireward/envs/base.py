"""The batched, torch-native vector env contract every registered env implements.

Shapes are ``[num_envs, ...]`` tensors on ``env.device``. ``step`` returns the gymnasium 5-tuple
``(obs, reward, terminated, truncated, info)`` and auto-resets finished envs, so ``obs`` for a
finished env is already the first observation of its next episode. What the finished episode
ended in is still available:

``info["final_obs"]``
    same structure as ``obs``; for envs with ``terminated | truncated`` it holds the true terminal
    observation (before the reset), elsewhere it equals ``obs``. PPO bootstraps truncated episodes
    from its value.
``info["success"]``
    bool ``[N]``, success of the state the step ended in (the terminal state for finished envs);
    present when the task has a notion of success.
``info["rewards"]`` / ``info["metrics"]``
    dicts of float ``[N]`` tensors: reward components and extra metrics, logged by the trainer.
``info["frames"]``
    only when ``step(..., render=...)`` asked for frames, see :class:`Frames`.

Rendering is the expensive part, so an env renders only what each step asks for:
``render="never"`` (nothing), ``"episode_end"`` (only envs that finished this step, from their
terminal state) or ``"every_step"`` (every env, from the state the step ended in; the terminal
state for finished envs).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Dict, Literal, Optional, Tuple, Union

import gymnasium as gym
import torch

Obs = Union[torch.Tensor, Dict[str, torch.Tensor]]
RenderRequest = Literal["never", "episode_end", "every_step"]
RENDER_REQUESTS = ("never", "episode_end", "every_step")


@dataclass
class Frames:
    """RGB frames rendered during one step.

    ``env_ids``: long ``[K]``, which envs were rendered (all envs for ``every_step``).
    ``images``: ``{camera_key: uint8 [K, H, W, 3]}``, one entry per camera.
    ``robot_state``: float ``[K, env.robot_state_dim]``, the robot's proprioception (joint
    positions, then velocities) in the rendered state, for envs that have it; else None.
    """

    env_ids: torch.Tensor
    images: Dict[str, torch.Tensor]
    robot_state: Optional[torch.Tensor] = None

    def __len__(self) -> int:
        return int(self.env_ids.numel())

    def select(self, env_ids: torch.Tensor) -> "Frames":
        """Frames of the given envs (which must be among ``self.env_ids``), in that order."""
        position = torch.full((int(self.env_ids.max().item()) + 1 if len(self) else 1,), -1, dtype=torch.long, device=self.env_ids.device)
        position[self.env_ids] = torch.arange(len(self), device=self.env_ids.device)
        index = position[env_ids.to(self.env_ids.device)]
        if (index < 0).any():
            raise KeyError("requested frames of envs that were not rendered")
        robot_state = None if self.robot_state is None else self.robot_state[index]
        return Frames(env_ids=env_ids, images={k: v[index] for k, v in self.images.items()}, robot_state=robot_state)


def merge_render_requests(*requests: RenderRequest) -> RenderRequest:
    """The cheapest request that satisfies all consumers."""
    if "every_step" in requests:
        return "every_step"
    if "episode_end" in requests:
        return "episode_end"
    return "never"


class VecEnv(ABC):
    """Base class of registered vector envs.

    Subclasses set ``num_envs``, ``device``, ``single_observation_space``,
    ``single_action_space`` (a ``gym.spaces.Box``), ``max_episode_steps``, ``camera_keys``
    (empty when the env cannot render), ``has_success`` (whether ``info["success"]`` is
    reported) and ``robot_state_dim`` (the size of ``Frames.robot_state``; 0 when frames carry
    none), and implement ``reset``, ``step``.

    Envs that can snapshot their complete state (simulation, step counters, random generator)
    implement ``state_dict`` / ``load_state_dict``; checkpoints then hold it and a resumed run
    continues exactly. The default ``state_dict`` returns None: such envs resume statistically
    (re-seeded and reset).

    ``describe()`` returns what must match between collected data, a reward model and an RL run
    (env id, camera keys, image size, obs/control mode, goal marker, ...); the reward pipeline
    records and checks it.
    """

    num_envs: int
    device: torch.device
    single_observation_space: gym.Space
    single_action_space: gym.spaces.Box
    max_episode_steps: int
    camera_keys: Tuple[str, ...] = ()
    has_success: bool = True
    robot_state_dim: int = 0

    @abstractmethod
    def reset(self, seed: Optional[int] = None) -> Tuple[Obs, Dict[str, Any]]:
        """Reset all envs. Same seed -> same initial states."""

    @abstractmethod
    def step(self, actions: torch.Tensor, render: RenderRequest = "never") -> Tuple[Obs, torch.Tensor, torch.Tensor, torch.Tensor, Dict[str, Any]]:
        """Advance all envs one step; auto-reset finished ones (see module docstring)."""

    def state_dict(self) -> Optional[Dict[str, Any]]:
        """Everything needed to continue the current episodes exactly, or None if unsupported."""
        return None

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        raise NotImplementedError(f"{type(self).__name__} cannot restore a snapshot")

    def render_frames(self) -> Frames:
        """Frames of every env's current state (used for videos)."""
        raise NotImplementedError(f"{type(self).__name__} cannot render")

    def describe(self) -> Dict[str, Any]:
        return {"env_id": getattr(self, "registry_name", type(self).__name__)}

    def close(self) -> None:
        pass

    @property
    def action_dim(self) -> int:
        return int(self.single_action_space.shape[0])
