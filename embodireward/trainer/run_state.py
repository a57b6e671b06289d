"""The run state a checkpoint holds (see ``trainer/checkpoint.py``): capture it, put it back.

A resumed run is exact when the env can snapshot itself (``VecEnv.state_dict``): the env, the
observation the next rollout starts from, every generator, the open episode statistics and the
callbacks' state continue from the checkpoint, so the run logs the same scalars as one that was
never stopped (time-based ones such as ``charts/sps`` aside). An env that cannot snapshot is
re-seeded and reset: the run continues statistically, and says so.
"""
from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Dict, Iterator, Optional

from embodireward.trainer.checkpoint import CheckpointError, load_policy_weights, restore_rng_state, rng_state
from embodireward.utils.seed import seed_everything

if TYPE_CHECKING:  # pragma: no cover
    from embodireward.trainer.trainer import Trainer

STATISTICAL_RESUME_NOTE = (" (statistical resume: env '{env}' cannot snapshot its state, so it was re-seeded and reset; "
                           "episodes in progress restart and the run does not repeat an uninterrupted one exactly)")


def capture(trainer: "Trainer", for_resume: bool = True) -> Dict[str, Any]:
    """The state to save; without ``for_resume`` the algorithm's bulky resume-only parts are left out."""
    algorithm = trainer.algo.state_dict()
    if not for_resume:
        algorithm = {key: value for key, value in algorithm.items() if key not in trainer.algo.resume_only_state}
    return {
        "policy": trainer.policy.state_dict(),
        "algorithm": algorithm,
        "env": trainer.env.state_dict(),
        "last_obs": trainer._last_obs,
        "episode_stats": trainer.episode_stats.state_dict(),
        "callbacks": trainer.callbacks.state_dict(),
        "reward_hook": trainer.reward_hook.state_dict() if trainer.reward_hook is not None else None,
        "global_step": trainer.global_step,
        "iteration": trainer.iteration,
        "best_eval": list(trainer.best_eval) if trainer.best_eval else None,
        "rng": rng_state(),
        "config": trainer.resolved_config,
        "obs_space": repr(trainer.env.single_observation_space),
        "action_dim": trainer.env.action_dim,
    }


def check_action_dim(trainer: "Trainer", state: Dict[str, Any], source: str) -> None:
    if state.get("action_dim") not in (None, trainer.env.action_dim):
        raise CheckpointError(f"{source}: checkpoint was trained with action_dim {state['action_dim']}, "
                              f"but env '{trainer.config.env.id}' has action_dim {trainer.env.action_dim}")


@contextlib.contextmanager
def _restoring(source: str, what: str) -> Iterator[None]:
    """Errors while putting a part of the state back name the checkpoint and the part."""
    try:
        yield
    except CheckpointError:
        raise
    except (KeyError, ValueError, RuntimeError, TypeError, IndexError) as exc:
        detail = " ".join(str(exc).split())[:300]
        raise CheckpointError(f"{source}: its {what} does not fit the configured run ({type(exc).__name__}: {detail})") from None


def restore(trainer: "Trainer", state: Dict[str, Any], source: str) -> Optional[Any]:
    """Put a checkpoint's state into the freshly built trainer; returns the observation to start
    from, or None when the run resumes statistically (reset the env instead)."""
    check_action_dim(trainer, state, source)
    load_policy_weights(trainer.policy, state["policy"], source)
    with _restoring(source, "algorithm state"):
        trainer.algo.load_state_dict(state["algorithm"])
    trainer.global_step = int(state["global_step"])
    trainer.iteration = int(state["iteration"])
    trainer.best_eval = tuple(state["best_eval"]) if state.get("best_eval") else None
    if trainer.reward_hook is not None and state.get("reward_hook"):
        with _restoring(source, "reward-hook state"):
            trainer.reward_hook.load_state_dict(state["reward_hook"])
    exact = trainer.is_main and state.get("env") is not None and trainer.env.state_dict() is not None
    obs = None
    if exact:
        with _restoring(source, "env state"):
            trainer.env.load_state_dict(state["env"])
            trainer.episode_stats.load_state_dict(state["episode_stats"])
        obs = state["last_obs"]
        obs = {k: v.to(trainer.device) for k, v in obs.items()} if isinstance(obs, dict) else obs.to(trainer.device)
    return obs


def finish_restore(trainer: "Trainer", state: Dict[str, Any], source: str) -> None:
    """Callback state, then the generators: last, so that nothing built after them draws from them."""
    if "callbacks" in state and trainer.is_main:
        with _restoring(source, "callback state"):
            trainer.callbacks.load_state_dict(state["callbacks"])
    if trainer.is_main:
        restore_rng_state(state["rng"])
    else:  # only rank 0's state is saved: other ranks start fresh streams, not their first ones again
        seed_everything(trainer.config.runtime.seed + trainer.rank + 1_000_003 * trainer.iteration)


def init_policy(trainer: "Trainer", state: Dict[str, Any], source: str) -> None:
    """``init_from``: the policy's weights only; everything else starts fresh."""
    check_action_dim(trainer, state, source)
    load_policy_weights(trainer.policy, state["policy"], source)
    trainer.log_info(f"initialised policy weights from {source} (trained for {state['global_step']} steps)")
