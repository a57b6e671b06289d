"""``embodireward plot``: one TensorBoard scalar of several runs as a PNG and a CSV.

Seeds of one experiment (see ``embodireward.tools.runs`` for the grouping rule) become one line,
their mean, with a shaded 95% confidence band (Student's t over seeds). A pipeline directory gives
one panel per stage that logged the tag.
"""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from embodireward.cli import CommandError, make_parser, run_cli
from embodireward.registry import closest_name
from embodireward.tools.runs import collect, group_runs
from embodireward.tools.scalars import X_LABELS, Curve, XAxis, curves_for, read_event_scalars
from embodireward.utils.io import atomic_write_bytes, atomic_write_text

DESCRIPTION = """Plot one TensorBoard scalar of runs (directories or globs) into a PNG and a CSV.

Runs that are seeds of one experiment are drawn as their mean with a 95% confidence band
(Student's t over the seeds). Seeds of one experiment: the run names agree once a trailing
timestamp (_20250101_120000) and seed suffix (_3, _seed3, -s3) are removed, and their
config.json agree apart from seeds, exp_name, paths (keys ending in _dir/_path, resume,
init_from) and machine settings (device, threads, progress_bar, wandb). A pipeline directory gives one
panel per stage. The CSV holds, per panel, experiment and x: the number of runs, mean, std
and the 95% band."""

EXAMPLES = """
  embodireward plot 'outputs/push_cube_2d_ppo_*' --tag eval/success_rate
  embodireward plot outputs/ppo_seed0 outputs/ppo_seed1 outputs/ppo_seed2 --tag episode/return --x wall_time
  embodireward plot outputs/push_cube_2d_pipeline --tag episode/success_once --out figures/pipeline.png
"""


def build_parser():
    parser = make_parser("python -m embodireward.tools.plot", DESCRIPTION, EXAMPLES)
    parser.add_argument("runs", nargs="+", help="run or pipeline directories, or globs of them (quote globs)")
    parser.add_argument("--tag", default="eval/success_rate", help="scalar tag (default eval/success_rate)")
    parser.add_argument("--x", choices=("env_steps", "wall_time"), default="env_steps",
                        help="x axis: the logged env step (default) or seconds since each run's first event")
    parser.add_argument("--out", default=None, help="PNG path; the CSV goes beside it (default plots/<tag>.png)")
    parser.add_argument("--title", default=None, help="figure title (default: the tag)")
    return parser


def plot_runs(patterns: List[str], tag: str, x: XAxis = "env_steps", out: Optional[Path] = None,
              title: Optional[str] = None) -> Tuple[Path, Path, Dict[str, List[Curve]]]:
    """Read, aggregate, draw; returns the PNG and CSV paths and the curves per panel."""
    panels = {}
    for panel, runs in collect(patterns).items():
        curves = curves_for(group_runs(runs), tag, x)
        if curves:
            panels[panel] = curves
    if not panels:
        raise CommandError(f"--tag {tag}: no run logged it{_tag_hint(patterns, tag)}")
    out = Path(out) if out is not None else Path("plots") / f"{tag.replace('/', '_')}.png"
    if out.suffix.lower() != ".png":
        raise CommandError(f"--out {out}: expected a .png path")
    csv_path = out.with_suffix(".csv")
    atomic_write_bytes(out, draw(panels, tag, x, title))
    atomic_write_text(csv_path, to_csv(panels, x))
    return out, csv_path, panels


def _tag_hint(patterns: List[str], tag: str) -> str:
    runs = [run for panel in collect(patterns).values() for run in panel]
    tags = sorted(read_event_scalars(runs[0].log_dir)) if runs else []
    hint = closest_name(tag, tags)
    return f" (did you mean {hint}?)" if hint else (f"; {runs[0].name} has: {', '.join(tags[:12])}" if tags else "")


def draw(panels: Dict[str, List[Curve]], tag: str, x: XAxis, title: Optional[str]) -> bytes:
    """PNG bytes: one panel per stage (or one for plain runs), a mean line and band per experiment."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.8), squeeze=False)
    for ax, (panel, curves) in zip(axes[0], panels.items()):
        for curve in curves:
            seeds = f"mean of {len(curve.runs)} seeds, 95% CI" if len(curve.runs) > 1 else "1 run"
            marker = "o" if len(curve.x) <= 40 else None  # sparse evaluations: show where the points are
            (line,) = ax.plot(curve.x, curve.mean, label=f"{curve.label} ({seeds})", linewidth=1.8, marker=marker, markersize=3)
            if len(curve.runs) > 1:
                ax.fill_between(curve.x, curve.low, curve.high, color=line.get_color(), alpha=0.2, linewidth=0)
        ax.set_xlabel(X_LABELS[x])
        ax.set_ylabel(tag)
        ax.set_title(panel.replace("_", " ") if panel else (title or tag))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title and any(panels):
        figure.suptitle(title)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    return buffer.getvalue()


def to_csv(panels: Dict[str, List[Curve]], x: XAxis) -> str:
    """Rows ``panel, experiment, <x>, runs, mean, std, ci95_low, ci95_high`` (std and band empty for one run)."""
    cell = lambda value: "" if math.isnan(value) else repr(float(value))  # noqa: E731  (full precision)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["panel", "experiment", x, "runs", "mean", "std", "ci95_low", "ci95_high"])
    for panel, curves in panels.items():
        for curve in curves:
            std = curve.values.std(axis=0, ddof=1) if len(curve.runs) > 1 else np.full(len(curve.x), np.nan)
            for i, x_value in enumerate(curve.x):
                x_cell = int(x_value) if x == "env_steps" else round(float(x_value), 3)
                writer.writerow([panel, curve.label, x_cell, len(curve.runs),
                                 *(cell(column[i]) for column in (curve.mean, std, curve.low, curve.high))])
    return buffer.getvalue()


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    png, csv_path, panels = plot_runs(args.runs, args.tag, args.x, Path(args.out) if args.out else None, args.title)
    for panel, curves in panels.items():
        for curve in curves:
            print(f"{panel + ': ' if panel else ''}{curve.label}: {len(curve.runs)} run(s) "
                  f"(seeds {', '.join(str(run.seed) for run in curve.runs)}), final mean {curve.mean[-1]:.4g}")
    print(f"wrote {png} and {csv_path}")
    return 0


def cli() -> None:
    run_cli(main)


if __name__ == "__main__":
    cli()
