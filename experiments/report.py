"""Episode records and the KPI tables made from them: mean and 95% interval, Markdown, CSV, plots.

Each row has a mode: `episode` (one episode of the task's length, from `reset`), a settled episode
(`episode after 1 of its own`: scored after the policy ran the line for a whole episode first) or a
continuing run (`7-day run`: the line operated for days without reset), so a policy that borrows
from the line's future, or pays for the state the warm-up left, shows it beside its per-episode score.

At the command line it renders the shadow report of a deployment's audit log
(`experiments.shadow_report`):

python -m experiments.report audit=runs/deploy/audit.sqlite [out=folder] [replay_seeds=5]
"""

from __future__ import annotations

import csv
import math
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from agents.rollout import Episode, episode_kpis
from experiments.plots import bar_plot, difference_plot
from experiments.tables import markdown_table

EPISODE = "episode"

METRICS = (
    ("return", "episode return"),
    ("good_parts", "good parts"),
    ("throughput_per_h", "throughput, parts/h"),
    ("oee", "OEE"),
    ("energy_cost", "energy cost"),
    ("energy_cost_per_part", "energy cost per good part"),
    ("co2_kg_per_part", "CO2 per part, kg"),
    ("co2_kg", "CO2, kg"),
    ("downtime_h", "downtime, h"),
    ("failures", "failures"),
    ("preventive_maintenances", "preventive maintenances"),
    ("maintenance_cost", "repair + preventive cost"),
    ("stockout_h", "stockout, h"),
    ("orders_placed", "orders placed"),
    ("tardiness_h", "tardiness, h"),
    ("wip_end_parts", "parts left in the line at the end"),
    ("makespan_s", "makespan, s"),
)


@dataclass(frozen=True)
class Row:
    """One evaluated episode (or continuing run, see `mode`), flattened for tables and CSV."""

    policy: str
    scenario: str
    seed: int
    values: dict[str, float]
    mode: str = EPISODE


def continuing_mode(days: float) -> str:
    """The mode label of a continuing run of `days` days, e.g. `7-day run`."""
    return f"{days:g}-day run"


def settled_mode(episodes: int) -> str:
    """The mode label of an episode scored after `episodes` unscored episodes of the same policy's own operation."""
    return f"episode after {episodes} of its own"


def episode_row(policy: str, scenario: str, episode: Episode, mode: str = EPISODE) -> Row:
    """The metrics of one episode."""
    values = {"return": episode.total_reward, **episode_kpis(episode.kpis, episode.info)}
    return Row(policy, scenario, episode.seed, values, mode)


def mean_interval(samples: Sequence[float]) -> tuple[float, float]:
    """Mean and half-width of its 95% Student-t confidence interval (0 for a single sample)."""
    x = np.asarray(samples, dtype=float)
    if len(x) < 2:
        return float(x.mean()), 0.0
    half = float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return float(x.mean()), half


def groups(rows: Sequence[Row]) -> dict[tuple[str, str, str], list[Row]]:
    """Rows by (policy, scenario, mode), in first-seen order."""
    out: dict[tuple[str, str, str], list[Row]] = {}
    for r in rows:
        out.setdefault((r.policy, r.scenario, r.mode), []).append(r)
    return out


def modes(rows: Sequence[Row]) -> list[str]:
    """The modes present, in first-seen order."""
    return list(dict.fromkeys(r.mode for r in rows))


def metrics_of(rows: Sequence[Row]) -> list[tuple[str, str]]:
    """The metrics present in every row, in table order."""
    return [(key, label) for key, label in METRICS if all(key in r.values for r in rows)]


def paired_difference(rows: Sequence[Row], policy: str, baseline: str, key: str = "return") -> tuple[float, float, int]:
    """Mean and 95% half-width of `policy` minus `baseline` on `key`, paired by scenario, mode and seed.

    Raises:
        ValueError: no shared seed, or two episodes of one policy under one scenario, mode and seed
            (pairing would silently keep only one of them).
    """
    for name in (policy, baseline):
        seen = Counter((r.scenario, r.mode, r.seed) for r in rows if r.policy == name)
        twice = sorted((k for k, n in seen.items() if n > 1), key=str)
        if twice:
            scenario, mode, seed = twice[0]
            raise ValueError(
                f"{name!r} has {seen[twice[0]]} episodes under scenario {scenario!r}, mode {mode!r}, seed {seed}: "
                "pairing needs one each"
            )
    theirs = {(r.scenario, r.mode, r.seed): r.values[key] for r in rows if r.policy == baseline}
    diffs = [
        r.values[key] - theirs[(r.scenario, r.mode, r.seed)]
        for r in rows
        if r.policy == policy and (r.scenario, r.mode, r.seed) in theirs
    ]
    if not diffs:
        raise ValueError(f"no episodes of {policy!r} and {baseline!r} share a seed")
    mean, half = mean_interval(diffs)
    return mean, half, len(diffs)


def verdict(rows: Sequence[Row], policy: str, baseline: str) -> str:
    """One sentence per scenario and mode: does `policy` beat `baseline` on return, with the paired 95% interval."""
    lines = []
    scenarios = list(dict.fromkeys(r.scenario for r in rows))
    for scenario in scenarios:
        for mode in modes(rows):
            cell = [r for r in rows if r.mode == mode and r.scenario == scenario]
            if not _paired(cell, policy, baseline):
                continue
            where = mode if len(scenarios) == 1 else f"{scenario}, {mode}"
            lines.append(_sentence(where, cell, policy, baseline))
    return "\n".join(lines)


def _paired(rows: Sequence[Row], policy: str, baseline: str) -> bool:
    """Whether both policies have episodes among `rows`."""
    present = {r.policy for r in rows}
    return policy in present and baseline in present


def _sentence(where: str, rows: Sequence[Row], policy: str, baseline: str) -> str:
    mean, half, n = paired_difference(rows, policy, baseline)
    if not math.isfinite(mean):
        return f"{where}: {policy} against {baseline}: no verdict, the return is not a number on some of the {n} seeds"
    if n < 2:
        d = decimals(0.0, mean)
        return f"{where}: {policy} against {baseline}: return difference {mean:+,.{d}f} (one seed, no interval)"
    if mean - half > 0:
        outcome = "beats"
    elif mean + half < 0:
        outcome = "is beaten by"
    else:
        outcome = "cannot be told apart from"
    d = decimals(half, mean)
    return (
        f"{where}: {policy} {outcome} {baseline}: return difference {mean:+,.{d}f} ± {half:,.{d}f}"
        f" (95%, paired over {n} seeds)"
    )


def decimals(half: float, mean: float, least: int = 1) -> int:
    """Decimals showing an interval's half-width (the mean, where it is 0) to two significant digits, `least` or more.

    Without the mean, a difference of 0.04 on every seed (no spread) printed as `+0.0 ± 0.0` and "beats".
    """
    scale = half if half > 0 else abs(mean)
    return least if not 0 < scale < 10.0**-least else 1 - math.floor(math.log10(scale))


def kpi_table(rows: Sequence[Row]) -> str:
    """KPI table: one row per policy, scenario and mode, mean ± 95% interval half-width per metric.

    A metric that is zero in every row (failures on a line that never fails, orders on a task
    without a store) is left out of the table; the CSV keeps it. A row of one episode shows its
    values alone: one sample has no interval (it printed `± 0`, which reads as certainty).
    """
    metrics = [(k, label) for k, label in metrics_of(rows) if any(r.values[k] != 0 for r in rows)]
    header = ["policy", "scenario", "mode", "episodes", *(label for _, label in metrics)]
    body = []
    for (policy, scenario, mode), group in groups(rows).items():
        cells = []
        for key, _ in metrics:
            mean, half = _group_interval(group, key)
            cell = _num(mean) if math.isnan(half) else f"{_num(mean)} ± {_num(half)}"
            defined = len(_defined(group, key))
            cells.append(
                "n/a" if defined == 0 else cell if defined == len(group) else f"{cell} ({defined} of {len(group)})"
            )
        body.append([policy, scenario, mode, len(group), *cells])
    return markdown_table(header, body, numeric=[False, False, False, True] + [True] * len(metrics))


def shown_interval(samples: Sequence[float]) -> tuple[float, float]:
    """Mean and 95% half-width as a table shows them: a NaN half-width for one sample, which has no interval."""
    mean, half = mean_interval(samples)
    return mean, half if len(samples) > 1 else math.nan


def _defined(group: Sequence[Row], key: str) -> list[float]:
    """`key` over a group of episodes, less the episodes where a KPI is undefined (NaN); the return is kept whole.

    A cost per part without a part is no cost; a return that is not a number is a fault to show.
    """
    values = [r.values[key] for r in group]
    return values if key == "return" else [v for v in values if not math.isnan(v)]


def _group_interval(group: Sequence[Row], key: str) -> tuple[float, float]:
    """`shown_interval` of `key` over a group of episodes where it is defined (NaN, NaN where it is nowhere)."""
    values = _defined(group, key)
    return shown_interval(values) if values else (math.nan, math.nan)


def _num(x: float) -> str:
    """Four significant figures, thousands separated, no exponent below a billion."""
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.4g}"


def write_reports(
    rows: Sequence[Row], out_dir: Path, title: str, pairs: Sequence[tuple[str, str]] = ()
) -> dict[str, Path]:
    """Write the table (Markdown), the raw episodes and the summary (CSV) and the plots (PNG).

    A policy, scenario and mode of one episode has no interval: none in the table and the plots,
    a NaN half-width in the summary. A KPI undefined on some episodes (a cost per part where no
    part was made: NaN in `episodes.csv`) is averaged over the others; the table says over how many,
    and so does the summary's `episodes` column.

    Args:
        rows: the evaluated episodes and continuing runs.
        out_dir: the folder to write into (made if missing).
        title: the table's heading, with any verdicts beneath it.
        pairs: (policy, baseline) pairs whose paired return difference is plotted, per mode.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "table": out_dir / "kpi_table.md",
        "episodes": out_dir / "episodes.csv",
        "summary": out_dir / "summary.csv",
    }
    paths["table"].write_text(f"# {title}\n\n{kpi_table(rows)}\n")
    metrics = metrics_of(rows)
    with paths["episodes"].open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["policy", "scenario", "mode", "seed", *[k for k, _ in metrics]])
        for r in rows:
            writer.writerow([r.policy, r.scenario, r.mode, r.seed, *[repr(r.values[k]) for k, _ in metrics]])
    with paths["summary"].open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["policy", "scenario", "mode", "episodes", "metric", "mean", "ci95_half_width"])
        for (policy, scenario, mode), group in groups(rows).items():
            for key, _ in metrics:  # `episodes`: those the metric is defined on, which its mean is over
                mean, half = _group_interval(group, key)
                writer.writerow([policy, scenario, mode, len(_defined(group, key)), key, repr(mean), repr(half)])
    for key, label in metrics:
        panels: dict[str, dict[str, tuple[float, float]]] = {}
        for (policy, scenario, mode), group in groups(rows).items():
            panels.setdefault(mode, {})[f"{policy} · {scenario}"] = _group_interval(group, key)
        paths[f"plot_{key}"] = bar_plot(panels, label, out_dir / f"{key}.png")
    differences: dict[str, dict[str, tuple[float, float]]] = {}
    scenarios = list(dict.fromkeys(r.scenario for r in rows))
    for policy, baseline in pairs:
        for mode in modes(rows):
            for scenario in scenarios:
                cell = [r for r in rows if r.mode == mode and r.scenario == scenario]
                if not _paired(cell, policy, baseline):
                    continue
                mean, half, n = paired_difference(cell, policy, baseline)
                name = f"{policy} - {baseline}" + (f" · {scenario}" if len(scenarios) > 1 else "")
                differences.setdefault(mode, {})[name] = (mean, half if n > 1 else math.nan)
    if differences:
        paths["plot_return_difference"] = difference_plot(
            differences, "return difference (paired)", out_dir / "return_difference.png"
        )
    return paths


def main(argv: Sequence[str] | None = None) -> None:
    """Write the shadow report of an audit log (`experiments.shadow_report`) and say where.

    A bad argument, or an audit log that is missing, malformed or holds no records, ends with one
    line on stderr and exit status 2.
    """
    # Imported here, not above: the shadow report imports this module for its intervals.
    from experiments.shadow_report import USAGE, ReportError, arguments, write_shadow_report
    from hardware.audit import AuditError

    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("help", "-h", "--help"):
        print(USAGE)
        return
    try:
        paths = write_shadow_report(*arguments(args))
    except (AuditError, ReportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    plots = [p for name, p in paths.items() if name != "report"]
    print(f"written: {paths['report']} and {len(plots)} plots in {paths['report'].parent}")


if __name__ == "__main__":
    main()
