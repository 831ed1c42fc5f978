"""Episode records and the KPI tables made from them: mean and 95% interval, Markdown, CSV, plots."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from scipy import stats

from agents.rollout import Episode, episode_kpis

METRICS = (
    ("return", "episode return"),
    ("good_parts", "good parts"),
    ("throughput_per_h", "throughput, parts/h"),
    ("oee", "OEE"),
    ("energy_cost", "energy cost"),
    ("co2_kg_per_part", "CO2 per part, kg"),
    ("downtime_h", "downtime, h"),
    ("tardiness_h", "tardiness, h"),
    ("makespan_s", "makespan, s"),
)


@dataclass(frozen=True)
class Row:
    """One evaluated episode, flattened for tables and CSV."""

    policy: str
    scenario: str
    seed: int
    values: dict[str, float]


def episode_row(policy: str, scenario: str, episode: Episode) -> Row:
    """The metrics of one episode."""
    values = {"return": episode.total_reward, **episode_kpis(episode.kpis, episode.info)}
    return Row(policy, scenario, episode.seed, values)


def mean_interval(samples: Sequence[float]) -> tuple[float, float]:
    """Mean and half-width of its 95% Student-t confidence interval (0 for a single sample)."""
    x = np.asarray(samples, dtype=float)
    if len(x) < 2:
        return float(x.mean()), 0.0
    half = float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return float(x.mean()), half


def groups(rows: Sequence[Row]) -> dict[tuple[str, str], list[Row]]:
    """Rows by (policy, scenario), in first-seen order."""
    out: dict[tuple[str, str], list[Row]] = {}
    for r in rows:
        out.setdefault((r.policy, r.scenario), []).append(r)
    return out


def metrics_of(rows: Sequence[Row]) -> list[tuple[str, str]]:
    """The metrics present in every row, in table order."""
    return [(key, label) for key, label in METRICS if all(key in r.values for r in rows)]


def paired_difference(rows: Sequence[Row], policy: str, baseline: str, key: str = "return") -> tuple[float, float, int]:
    """Mean and 95% half-width of `policy` minus `baseline` on `key`, paired by scenario and seed."""
    theirs = {(r.scenario, r.seed): r.values[key] for r in rows if r.policy == baseline}
    diffs = [
        r.values[key] - theirs[(r.scenario, r.seed)]
        for r in rows
        if r.policy == policy and (r.scenario, r.seed) in theirs
    ]
    if not diffs:
        raise ValueError(f"no episodes of {policy!r} and {baseline!r} share a seed")
    mean, half = mean_interval(diffs)
    return mean, half, len(diffs)


def verdict(rows: Sequence[Row], policy: str, baseline: str) -> str:
    """One sentence: does `policy` beat `baseline` on return, with the paired 95% interval."""
    mean, half, n = paired_difference(rows, policy, baseline)
    if mean - half > 0:
        outcome = "beats"
    elif mean + half < 0:
        outcome = "is beaten by"
    else:
        outcome = "cannot be told apart from"
    return f"{policy} {outcome} {baseline}: return difference {mean:+,.1f} ± {half:,.1f} (95%, paired over {n} seeds)"


def markdown_table(rows: Sequence[Row]) -> str:
    """KPI table: one row per policy and scenario, mean +- 95% interval half-width per metric."""
    metrics = metrics_of(rows)
    head = "| policy | scenario | episodes | " + " | ".join(label for _, label in metrics) + " |"
    lines = [head, "|---|---|---:|" + "---:|" * len(metrics)]
    for (policy, scenario), group in groups(rows).items():
        cells = []
        for key, _ in metrics:
            mean, half = mean_interval([r.values[key] for r in group])
            cells.append(f"{_num(mean)} ± {_num(half)}")
        lines.append(f"| {policy} | {scenario} | {len(group)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _num(x: float) -> str:
    """Four significant figures, thousands separated, no exponent below a billion."""
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.4g}"


def write_reports(rows: Sequence[Row], out_dir: Path, title: str) -> dict[str, Path]:
    """Write the table (Markdown), the raw episodes and the summary (CSV) and one plot per metric (PNG)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "table": out_dir / "kpi_table.md",
        "episodes": out_dir / "episodes.csv",
        "summary": out_dir / "summary.csv",
    }
    paths["table"].write_text(f"# {title}\n\n{markdown_table(rows)}\n")
    metrics = metrics_of(rows)
    with paths["episodes"].open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["policy", "scenario", "seed", *[k for k, _ in metrics]])
        for r in rows:
            writer.writerow([r.policy, r.scenario, r.seed, *[repr(r.values[k]) for k, _ in metrics]])
    with paths["summary"].open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["policy", "scenario", "episodes", "metric", "mean", "ci95_half_width"])
        for (policy, scenario), group in groups(rows).items():
            for key, _ in metrics:
                mean, half = mean_interval([r.values[key] for r in group])
                writer.writerow([policy, scenario, len(group), key, repr(mean), repr(half)])
    for key, label in metrics:
        paths[f"plot_{key}"] = _bar_plot(rows, key, label, out_dir / f"{key}.png")
    return paths


def _bar_plot(rows: Sequence[Row], key: str, label: str, path: Path) -> Path:
    grouped = groups(rows)
    names = [f"{p}\n{s}" for p, s in grouped]
    stats_ = [mean_interval([r.values[key] for r in g]) for g in grouped.values()]
    fig, ax = plt.subplots(figsize=(max(4.0, 1.3 * len(names)), 3.5))
    ax.bar(range(len(names)), [m for m, _ in stats_], yerr=[h for _, h in stats_], capsize=4, color="tab:blue")
    ax.set_xticks(range(len(names)), names, fontsize="small")
    ax.set_ylabel(label)
    ax.set_title(f"{label} (mean, 95% interval)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
