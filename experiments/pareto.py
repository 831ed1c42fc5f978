"""Trade-off curves between throughput, energy cost and CO2, from the KPI tables of finished runs.

    python -m experiments.pareto out=results/factory multirun/train/Factory/<sweep>/* outputs/evaluate/<run>

Each folder is a train run (its `final/episodes.csv`), an evaluate run or a tune run (their
`episodes.csv`), with Hydra's `.hydra/config.yaml` beside it. Every policy of every folder becomes
a point per mode (one episode, a continuing run): good parts (more is better), energy cost and kg
CO2 (less is better), each a mean with its 95% interval over the seeds. A learned point is
labelled by the reward weights its run set (`task.kwargs.weights`) and any `agent.` override of its
command line, a heuristic point by the parameters its run gave it (`heuristics`), or by its
combination in a tune run's grid (run the grid on the held-out seeds, `tune.seed=20000`, to put a
heuristic's whole sweep on the plot).
Writes the plots (`pareto_<mode>.png`), the points (`points.csv`) and a Markdown report
(`pareto.md`): the points, the front of the learned points, and for every learned and heuristic
point the paired differences on their shared seeds, with a verdict on dominance.
"""

from __future__ import annotations

import csv
import math
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window

import matplotlib.pyplot as plt
import numpy as np
from omegaconf import DictConfig, OmegaConf

from agents.baselines import BASELINES
from experiments.evaluate import evaluation_config, heuristic_params
from experiments.report import mean_interval
from experiments.tables import markdown_table

USAGE = "usage: python -m experiments.pareto out=FOLDER RUN_FOLDER [RUN_FOLDER ...]"
# The objectives: (key, label, sign), sign +1 where more is better.
OBJECTIVES = (
    ("good_parts", "good parts", 1.0),
    ("energy_cost", "energy cost", -1.0),
    ("co2_kg", "CO2, kg", -1.0),
)
_HEURISTIC_SUFFIX = " (heuristic)"


class ParetoError(Exception):
    """A run folder or argument that cannot be read; the message names it."""


@dataclass(frozen=True)
class Point:
    """One policy of one run in one mode: its objectives on each seed.

    `values` maps a seed to (good parts, energy cost, kg CO2) of that seed's episode or run.
    """

    label: str
    learned: bool
    mode: str
    run: str
    values: Mapping[int, tuple[float, float, float]]

    def interval(self, k: int) -> tuple[float, float]:
        """Mean and 95% half-width of objective `k` (an index of `OBJECTIVES`) over the seeds."""
        return mean_interval([v[k] for v in self.values.values()])


@dataclass(frozen=True)
class Comparison:
    """A learned point against a heuristic point on their shared seeds.

    `gains` holds, per objective, the mean paired gain of the learned point and its 95% half-width,
    signed so that a positive gain is better (more parts, less energy cost, less CO2).
    """

    learned: Point
    heuristic: Point
    gains: tuple[tuple[float, float], ...]
    seeds: int

    def verdicts(self) -> tuple[str, ...]:
        """Per objective: `better` or `worse` where the interval excludes 0, else `tie`."""
        return tuple("better" if m - h > 0 else "worse" if m + h < 0 else "tie" for m, h in self.gains)

    @property
    def dominates(self) -> bool:
        """Whether the learned point is better on every objective, each with its 95% interval above 0."""
        return self.seeds > 1 and all(v == "better" for v in self.verdicts())

    @property
    def never_worse(self) -> bool:
        """Pareto's weaker sense at 95%: better on at least one objective and worse on none (ties allowed)."""
        verdicts = self.verdicts()
        return self.seeds > 1 and "better" in verdicts and "worse" not in verdicts


def episodes_file(run: Path) -> Path:
    """The per-episode CSV of a train run (`final/episodes.csv`) or an evaluate run (`episodes.csv`)."""
    for candidate in (run / "final" / "episodes.csv", run / "episodes.csv"):
        if candidate.is_file():
            return candidate
    raise ParetoError(f"{run}: no final/episodes.csv or episodes.csv (not a finished train or evaluate run)")


def run_config(run: Path) -> DictConfig:
    """The composed config a run saved (`.hydra/config.yaml`)."""
    path = run / ".hydra" / "config.yaml"
    if not path.is_file():
        raise ParetoError(f"{run}: no .hydra/config.yaml to read the run's weights and heuristics from")
    config = OmegaConf.load(path)
    if not isinstance(config, DictConfig):
        raise ParetoError(f"{path}: expected a mapping")
    return config


def agent_changes(run: Path) -> str:
    """`; agent.gamma=0.98` for the `agent.` overrides a run's command line made (`.hydra/overrides.yaml`), else ''.

    Points that differ in how they were trained, not only in their weights, say so in their label.
    """
    path = run / ".hydra" / "overrides.yaml"
    overrides: list[str] = [str(o) for o in OmegaConf.load(path)] if path.is_file() else []
    changed = [o for o in overrides if o.lstrip("+~").startswith("agent.")]
    return f"; {', '.join(changed)}" if changed else ""


def describe(values: Mapping[str, object] | None, empty: str) -> str:
    """`a=1, b=2` for a mapping of settings (nested ones flattened with dots), `empty` if there are none."""
    if not values:
        return empty
    flat: list[str] = []
    for key, value in values.items():
        if isinstance(value, Mapping):
            flat.extend(f"{key}.{k}={_value(v)}" for k, v in value.items())
        else:
            flat.append(f"{key}={_value(value)}")
    return ", ".join(flat)


def _value(value: object) -> str:
    """A setting as the config writes it: `0.8`, `null`."""
    if value is None:
        return "null"
    return f"{value:g}" if isinstance(value, float) else str(value)


def load_points(runs: Sequence[Path]) -> list[Point]:
    """Every policy of every run as a point per mode; the same policy, mode and seeds twice is kept once.

    Raises:
        ParetoError: for a folder that is not a finished run, or a table without the needed columns.
    """
    points: list[Point] = []
    seen: set[tuple[str, str, tuple[tuple[int, tuple[float, float, float]], ...]]] = set()
    for run in runs:
        config = run_config(run)
        # an evaluate run: the artifact's task (its weights) and its tuned heuristics under this run's
        trained = evaluation_config(config) if config.get("policies") is not None else config
        weights = _mapping(OmegaConf.select(trained, "task.kwargs.weights"))
        tuned: Mapping[str, object] = (
            heuristic_params(trained, config) if trained is not config else _mapping(config.get("heuristics"))
        )
        by_policy: dict[tuple[str, str], dict[int, tuple[float, float, float]]] = {}
        path = episodes_file(run)
        with path.open(newline="") as f:
            for line, row in enumerate(csv.DictReader(f), start=2):
                try:
                    parts = float(row["good_parts"])
                    objectives = (parts, float(row["energy_cost"]), float(row["co2_kg_per_part"]) * parts)
                    by_policy.setdefault((row["policy"], row["mode"]), {})[int(row["seed"])] = objectives
                except (KeyError, ValueError) as exc:
                    raise ParetoError(
                        f"{path}:{line}: needs policy, mode, seed, good_parts, energy_cost and co2_kg_per_part ({exc})"
                    ) from None
        swept = OmegaConf.select(config, "tune.baseline")  # a tune run: every row is a combination of its grid
        for (policy, mode), values in by_policy.items():
            name = policy.removesuffix(_HEURISTIC_SUFFIX)
            learned = swept is None and name not in BASELINES
            if swept is not None:
                label = f"{swept} ({policy})"
            elif learned:
                label = f"learned ({describe(weights, 'default weights')}{agent_changes(run)})"
            else:
                params = tuned.get(name)
                label = f"{name} ({describe(params if isinstance(params, Mapping) else None, 'as shipped')})"
            identity = (label, mode, tuple(sorted(values.items())))
            if identity not in seen:
                seen.add(identity)
                points.append(Point(label, learned, mode, str(run), values))
    return _named_apart(points)


def _named_apart(points: list[Point]) -> list[Point]:
    """Learned points of different runs that share a label get their run folder's name added to it."""
    runs: dict[str, set[str]] = {}
    for p in points:
        if p.learned:
            runs.setdefault(p.label, set()).add(p.run)
    return [
        replace(p, label=f"{p.label.removesuffix(')')}, run {Path(p.run).name})")
        if p.learned and len(runs[p.label]) > 1
        else p
        for p in points
    ]


def _mapping(node: object) -> dict[str, object]:
    """A config node as a plain dict (None or empty: {})."""
    if isinstance(node, DictConfig):
        return {str(k): v for k, v in OmegaConf.to_container(node, resolve=True).items()}  # type: ignore[union-attr]
    return {}


def gains(a: Point, b: Point) -> tuple[tuple[tuple[float, float], ...], int]:
    """Per objective, the mean paired gain of `a` over `b` (positive: `a` better) and its 95% half-width.

    Raises:
        ParetoError: when the points share no seed.
    """
    shared = sorted(set(a.values) & set(b.values))
    if not shared:
        raise ParetoError(f"{a.label} and {b.label} ({a.mode}) share no seed")
    out = []
    for k, (_, _, sign) in enumerate(OBJECTIVES):
        diffs = [sign * (a.values[s][k] - b.values[s][k]) for s in shared]
        mean, half = mean_interval(diffs)
        out.append((mean, half if len(shared) > 1 else math.nan))
    return tuple(out), len(shared)


def compare_points(points: Sequence[Point]) -> list[Comparison]:
    """Every learned point against every heuristic point of the same mode that shares its seeds."""
    out = []
    for a in points:
        for b in points:
            if a.learned and not b.learned and a.mode == b.mode and set(a.values) & set(b.values):
                g, n = gains(a, b)
                out.append(Comparison(a, b, g, n))
    return out


def front(points: Sequence[Point]) -> list[Point]:
    """The points no other point of the list dominates on the means, by throughput."""
    means = [np.array([sign * p.interval(k)[0] for k, (_, _, sign) in enumerate(OBJECTIVES)]) for p in points]
    kept = [
        p
        for i, p in enumerate(points)
        if not any(np.all(means[j] >= means[i]) and np.any(means[j] > means[i]) for j in range(len(points)) if j != i)
    ]
    return sorted(kept, key=lambda p: p.interval(0)[0])


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
                (x, xh), (y, yh) = p.interval(k), p.interval(0)
                ax.errorbar(x, y, xerr=xh, yerr=yh, capsize=3, markersize=6, **style)
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
    fig.suptitle(f"Factory trade-offs, {mode} (mean, 95% interval over seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _cell(mean: float, half: float) -> str:
    if math.isnan(half):
        return f"{mean:+,.1f}"
    return f"{mean:+,.1f} ± {half:,.1f}"


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
            sections.append(_verdicts([c for c in comparisons if c.learned.mode == mode]))
    return "\n\n".join(sections) + "\n"


def _verdicts(comparisons: Sequence[Comparison]) -> str:
    """Per learned point: against how many heuristic points it dominates, and is better on one and worse on none."""
    lines = []
    for label in dict.fromkeys(c.learned.label for c in comparisons):
        mine = [c for c in comparisons if c.learned.label == label]
        strict, weak = sum(c.dominates for c in mine), sum(c.never_worse for c in mine)
        every = "dominates every heuristic point" if strict == len(mine) else "does not dominate every heuristic point"
        lines.append(
            f"- {label} {every}: better on all three against {strict} of {len(mine)}; "
            f"better on one and worse on none against {weak} of {len(mine)}."
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
        ParetoError: without `out=` or a run folder, or for an unknown `key=value` argument.
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
