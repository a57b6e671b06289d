"""TensorBoard scalars of runs, aligned across seeds and aggregated into a mean with a 95% band."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Literal, Optional, Tuple

import numpy as np

from embodireward.cli import CommandError
from embodireward.tools.runs import Run
from embodireward.tools.stats import t_interval

XAxis = Literal["env_steps", "wall_time"]
X_LABELS = {"env_steps": "env steps", "wall_time": "wall time (s)"}


def read_event_scalars(log_dir: Path) -> Dict[str, np.ndarray]:
    """Every scalar tag of the event files in ``log_dir``: ``tag -> float [N, 3]`` rows (step, wall time, value).

    TensorBoard's own reader applies purges (events a resumed run overwrote); a step logged twice keeps
    its last value.
    """
    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

    accumulator = EventAccumulator(str(log_dir), size_guidance={SCALARS: 0})  # 0: keep every event
    accumulator.Reload()
    table = {}
    for tag in accumulator.Tags()[SCALARS]:
        rows = np.array([(e.step, e.wall_time, e.value) for e in accumulator.Scalars(tag)], dtype=np.float64)
        rows = rows[np.argsort(rows[:, 1], kind="stable")]  # in the order written
        _, last = np.unique(rows[::-1, 0], return_index=True)  # the last write of each step
        table[tag] = rows[::-1][last]  # sorted by step
    return table


def read_scalar(log_dir: Path, tag: str, x: XAxis = "env_steps") -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """``(x, values)`` of ``tag``, x being the env step or seconds since the run's first event; None if absent."""
    rows = read_event_scalars(log_dir).get(tag)
    if rows is None:
        return None
    xs = rows[:, 0] if x == "env_steps" else rows[:, 1] - rows[:, 1].min()
    order = np.argsort(xs, kind="stable")
    return xs[order], rows[order, 2]


@dataclass
class Curve:
    """One experiment's aggregate: ``mean``, ``low`` / ``high`` (95% t-interval, NaN for one run) and
    ``values`` ``[runs, points]`` on the common grid ``x``."""

    label: str
    runs: List[Run]
    x: np.ndarray
    values: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray


def aggregate(label: str, runs: List[Run], series: List[Tuple[np.ndarray, np.ndarray]]) -> Curve:
    """Mean and 95% band of the runs' curves over the x range all of them cover.

    The grid is every x any run logged inside that range; each run is linearly interpolated onto it,
    which changes nothing where runs logged at the same steps (seeds of one config do).
    """
    start, stop = max(xs[0] for xs, _ in series), min(xs[-1] for xs, _ in series)
    if start > stop:
        names = ", ".join(run.name for run in runs)
        raise CommandError(f"runs {names} share no x range to average over ({label})")
    grid = np.unique(np.concatenate([xs[(xs >= start) & (xs <= stop)] for xs, _ in series]))
    values = np.stack([np.interp(grid, xs, ys) for xs, ys in series])
    mean, low, high = t_interval(values)
    return Curve(label, runs, grid, values, mean, low, high)


def curves_for(groups: Dict[str, List[Run]], tag: str, x: XAxis) -> List[Curve]:
    """One :class:`Curve` per group that logged ``tag`` (runs without it are left out)."""
    curves = []
    for label, runs in groups.items():
        found = [(run, read_scalar(run.log_dir, tag, x)) for run in runs]
        found = [(run, s) for run, s in found if s is not None]
        if found:
            curves.append(aggregate(label, [run for run, _ in found], [s for _, s in found]))
    return curves
