"""Trade-off curves between throughput, energy cost and CO2, from the KPI tables of finished runs.

    python -m experiments.pareto out=results/factory multirun/train/<sweep>/* outputs/evaluate/<run>

Each folder is a train run (its `final/episodes.csv`), an evaluate run or a tune run (their
`episodes.csv`), with Hydra's `.hydra/config.yaml` beside it. Every policy of every folder becomes
a point per mode (one episode, a continuing run): good parts (more is better), energy cost and kg
CO2 (less is better), each a mean with its 95% interval over the seeds. A learned point is
labelled by the reward weights its run set (`task.kwargs.weights`) and any `agent.` override of its
command line, a heuristic point by the parameters its run gave it (`heuristics`), or by its
combination in a tune run's grid (run the grid on the held-out seeds, `tune.seed=20000`, to put a
heuristic's whole sweep on the plot). Points of different runs that share a label get their run's
name. The runs must share the task, line, episode length and control period: points of others are
not comparable, and are refused.
Writes the plots (`pareto_<mode>.png`), the points (`points.csv`) and a Markdown report
(`pareto.md`): the points, the front of the learned points, and for every learned and heuristic
point the paired differences on their shared seeds, with a verdict on dominance.
"""

from __future__ import annotations

import csv
import math
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window

import matplotlib.pyplot as plt

from experiments.errors import ConfigError
from experiments.pareto_points import OBJECTIVES, Comparison, ParetoError, Point, compare_points, front, load_points
from experiments.report import decimals
from experiments.run_folders import check_fresh
from experiments.tables import markdown_table

USAGE = "usage: python -m experiments.pareto out=FOLDER RUN_FOLDER [RUN_FOLDER ...]"


def slug(mode: str) -> str:
    """A file-name form of a mode, e.g. `7-day run` -> `7-day_run`."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", mode).strip("_")


def point_tags(points: Sequence[Point]) -> list[str]:
    """Short names for the plots, in order: `L1, L2, ...` for learned points, `H1, ...` for heuristics."""
    counts = {True: 0, False: 0}
    tags = []
    for p in points:
        counts[p.learned] += 1
        tags.append(f"{'L' if p.learned else 'H'}{counts[p.learned]}")
    return tags


def plot(points: Sequence[Point], mode: str, path: Path) -> Path:
    """Good parts against energy cost and against CO2 (means, 95% intervals), learned front joined.

    Points are tagged as in `point_tags`; the report's table names them.
    """
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5))
    learned = [p for p in points if p.learned]
    heuristic = [p for p in points if not p.learned]
    tags = {id(p): tag for p, tag in zip(points, point_tags(points), strict=True)}
    best = front(learned)
    for ax, k in zip(axes, (1, 2), strict=True):
        for group, style in (
            (learned, {"fmt": "o", "color": "tab:blue"}),
            (heuristic, {"fmt": "s", "color": "tab:orange"}),
        ):
            for p in group:
                (x, xh), (y, yh) = p.interval(k), p.interval(0)  # no bar for one seed: it has no interval
                ax.errorbar(x, y, xerr=_bar(xh), yerr=_bar(yh), capsize=3, markersize=6, **style)
                ax.annotate(tags[id(p)], (x, y), fontsize=7, xytext=(4, 4), textcoords="offset points")
        if len(best) > 1:
            ax.plot([p.interval(k)[0] for p in best], [p.interval(0)[0] for p in best], "--", color="tab:blue", lw=1)
        ax.set_xlabel(f"{OBJECTIVES[k][1]} (less is better)")
        ax.set_ylabel("good parts (more is better)")
        ax.grid(alpha=0.3)
    axes[0].legend(
        handles=[
            plt.Line2D([], [], marker="o", ls="--", color="tab:blue", label="learned (front dashed)"),
            plt.Line2D([], [], marker="s", ls="", color="tab:orange", label="heuristic"),
        ],
        loc="lower right",
        fontsize="small",
    )
    fig.suptitle(f"{points[0].task} trade-offs, {mode} (mean, 95% interval over seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _bar(half: float) -> float | None:
    return None if math.isnan(half) else half


def _cell(mean: float, half: float) -> str:
    """A signed mean and its half-width (none for one seed), to two significant digits of the half-width."""
    d = decimals(0.0 if math.isnan(half) else half, mean)
    return f"{mean:+,.{d}f}" if math.isnan(half) else f"{mean:+,.{d}f} ± {half:,.{d}f}"


def report(points: Sequence[Point], comparisons: Sequence[Comparison]) -> str:
    """The Markdown report: points per mode, the learned front, and each learned against each heuristic point."""
    sections = []
    for mode in dict.fromkeys(p.mode for p in points):
        here = [p for p in points if p.mode == mode]
        body = [
            [tag, p.label, len(p.values)] + [_cell(*p.interval(k)).lstrip("+") for k in range(len(OBJECTIVES))]
            for tag, p in zip(point_tags(here), here, strict=True)
        ]
        header = ["tag", "point", "seeds", *(label for _, label, _ in OBJECTIVES)]
        title = f"### {mode}: points (tags as in `pareto_{slug(mode)}.png`)"
        sections.append(f"{title}\n\n" + markdown_table(header, body, numeric=[False, False, True, True, True, True]))
        best = front([p for p in here if p.learned])
        if best:
            sections.append(
                "Learned front (no learned point better on all three means): " + "; ".join(p.label for p in best)
            )
        rows = []
        for c in comparisons:
            if c.learned.mode != mode:
                continue
            rows.append(
                [
                    c.learned.label,
                    c.heuristic.label,
                    c.seeds,
                    *(_cell(m, h) for m, h in c.gains),
                    "yes" if c.dominates else "no",
                    "yes" if c.never_worse else "no",
                ]
            )
        if rows:
            header = [
                "learned",
                "heuristic",
                "paired seeds",
                "more good parts",
                "energy cost saved",
                "CO2 saved, kg",
                "dominates (95%)",
                "better on one, worse on none (95%)",
            ]
            sections.append(
                f"### {mode}: learned against heuristic (paired gain, mean ± 95%)\n\n"
                + markdown_table(header, rows, numeric=[False, False, True, True, True, True, False, False])
            )
            sections.append(
                _verdicts([c for c in comparisons if c.learned.mode == mode], sum(not p.learned for p in here))
            )
    return "\n\n".join(sections) + "\n"


def _verdicts(comparisons: Sequence[Comparison], heuristic_points: int) -> str:
    """Per learned point: against how many of the mode's `heuristic_points` it dominates, and is never worse.

    A heuristic point that shares no seed with the learned point is not compared, and says so: it
    does not count as dominated.
    """
    lines = []
    learned = {id(c.learned): c.learned for c in comparisons}
    for key, point in learned.items():
        mine = [c for c in comparisons if id(c.learned) == key]
        strict, weak = sum(c.dominates for c in mine), sum(c.never_worse for c in mine)
        every = strict == len(mine) == heuristic_points
        unpaired = heuristic_points - len(mine)
        lines.append(
            f"- {point.label} {'dominates' if every else 'does not dominate'} every heuristic point: better on all "
            f"three against {strict} of {heuristic_points}; better on one and worse on none against {weak} of "
            f"{heuristic_points}" + (f" ({unpaired} share no seed with it, not compared)." if unpaired else ".")
        )
    return "\n".join(lines)


def write(points: Sequence[Point], out: Path) -> dict[str, Path]:
    """Write the plots, `points.csv` and `pareto.md` into `out` (made if missing); return their paths."""
    if not points:
        raise ParetoError("no points: the runs hold no episodes")
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for mode in dict.fromkeys(p.mode for p in points):
        paths[f"plot {mode}"] = plot([p for p in points if p.mode == mode], mode, out / f"pareto_{slug(mode)}.png")
    paths["points"] = out / "points.csv"
    with paths["points"].open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["label", "kind", "mode", "run", "seeds", *(f"{k}_{s}" for k, _, _ in OBJECTIVES for s in ("mean", "ci95"))]
        )
        for p in points:
            cells = [repr(x) for k in range(len(OBJECTIVES)) for x in p.interval(k)]
            writer.writerow([p.label, "learned" if p.learned else "heuristic", p.mode, p.run, len(p.values), *cells])
    paths["report"] = out / "pareto.md"
    paths["report"].write_text(report(points, compare_points(points)))
    return paths


def arguments(args: Sequence[str]) -> tuple[Path, list[Path]]:
    """`out` and the run folders from the command line.

    Raises:
        ParetoError: without `out=` or a run folder, for an unknown `key=value` argument, or an `out`
            that is a file or a folder holding files (another report's would be mixed with this one's).
    """
    out: Path | None = None
    runs: list[Path] = []
    for arg in args:
        key, eq, value = arg.partition("=")
        if eq and key == "out":
            out = Path(value)
        elif eq and not Path(arg).exists():
            raise ParetoError(f"{arg!r}: not an argument here; {USAGE}")
        else:
            runs.append(Path(arg))
    if out is None or not runs:
        raise ParetoError(f"name out=FOLDER and at least one run folder; {USAGE}")
    try:
        check_fresh("out", out)
    except ConfigError as exc:
        raise ParetoError(str(exc)) from None
    return out, runs


def main(argv: Sequence[str] | None = None) -> None:
    """Write the trade-off plots and report of the named runs; a bad argument or run exits with status 2."""
    try:
        out, runs = arguments(list(sys.argv[1:] if argv is None else argv))
        paths = write(load_points(runs), out)
    except ParetoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"written: {', '.join(str(p) for p in paths.values())}")


if __name__ == "__main__":
    main()
