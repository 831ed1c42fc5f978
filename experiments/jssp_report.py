"""The reports of the job-shop gap harness: a Markdown table per instance group, a CSV and a bar plot.

`experiments.jssp_gaps` produces one `Result` per instance and policy; this module turns them into
what RESULTS.md quotes: makespan and gap per instance and policy, each group's mean gap, the
instances where a policy beats (or, for a rule, matches) the best dispatching rule, proven optima
and seconds per schedule.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agents.dispatching import Rule
from envs.jobshop import Instance
from experiments.plots import plt

RULES = tuple(r.value for r in Rule)


@dataclass(frozen=True)
class Result:
    """One policy's schedule of one instance.

    Attributes:
        group: the instance group it belongs to (e.g. "ta01-ta10").
        instance: the instance.
        policy: the policy's label ("spt", "cpsat 60s", a learned scheduler's name).
        makespan: the checked schedule's makespan, time units of the instance; None where a
            solver's limit ran out before it found a schedule.
        seconds: wall-clock time to produce the schedule, s.
        cpu_seconds: processor time this process spent on it, all threads, s (on a shared machine
            a solver's wall-clock limit buys less of it).
        status: what the solver proved ("OPTIMAL", "FEASIBLE", or "UNKNOWN": no schedule in its
            limit); empty for rules and learned schedulers.
        lower_bound: the solver's proven lower bound on the optimum, time units; None where not a solver.
        deterministic_time: the solver's load-independent measure of its work (CP-SAT units), to
            compare solver runs made under different machine loads; None where not a solver.
    """

    group: str
    instance: Instance
    policy: str
    makespan: int | None
    seconds: float
    cpu_seconds: float
    status: str = ""
    lower_bound: int | None = None
    deterministic_time: float | None = None

    @property
    def gap(self) -> float:
        """Relative gap to the instance's best known makespan; NaN without a schedule."""
        return math.nan if self.makespan is None else self.instance.gap(self.makespan)


def policies(results: Sequence[Result]) -> list[str]:
    """The policy labels of `results` in first-seen order."""
    return list(dict.fromkeys(r.policy for r in results))


def best_rule(results: Sequence[Result], instance: str) -> int | None:
    """The smallest makespan any dispatching rule reached on `instance` (None when no rule ran)."""
    spans = [r.makespan for r in results if r.instance.name == instance and r.policy in RULES and r.makespan]
    return min(spans) if spans else None


def gap_table(results: Sequence[Result], group: str) -> str:
    """Markdown table of one group: makespan (gap) per instance and policy, then the group's summary rows."""
    rows = [r for r in results if r.group == group]
    labels = policies(rows)
    names = list(dict.fromkeys(r.instance.name for r in rows))
    cell = {(r.instance.name, r.policy): r for r in rows}
    head = ["instance", "size", "optimum / best known", *labels]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in names:
        inst = cell[(name, labels[0])].instance
        bound = f"{inst.best_known}" if inst.optimum is not None else f"{inst.best_known} (best known, open)"
        cells = []
        for p in labels:
            r = cell[(name, p)]
            if r.makespan is None:
                cells.append(f"no schedule ({r.status})")
                continue
            proven = " opt" if r.status == "OPTIMAL" else (f" lb {r.lower_bound}" if r.lower_bound is not None else "")
            cells.append(f"{r.makespan} ({100 * r.gap:.1f}%){proven}")
        lines.append(f"| {name} | {inst.n_jobs}x{inst.n_machines} | {bound} | " + " | ".join(cells) + " |")
    summary = summarise(rows)
    for title, key in (
        ("mean gap", "mean_gap"),
        ("beats the best rule", "beats_best_rule"),
        ("best rule (ties count)", "best_rule"),
        ("proven optimal", "optimal"),
        ("s per schedule", "seconds"),
        ("CPU s per schedule", "cpu_seconds"),
    ):
        lines.append(f"| **{title}** | | | " + " | ".join(summary[p][key] for p in labels) + " |")
    return "\n".join(lines)


def summarise(rows: Sequence[Result]) -> dict[str, dict[str, str]]:
    """Per policy, as text: mean gap, wins over (or ties with) the best rule, proven optima, mean wall and CPU s."""
    names = list(dict.fromkeys(r.instance.name for r in rows))
    best = {n: best_rule(rows, n) for n in names}
    out: dict[str, dict[str, str]] = {}
    for p in policies(rows):
        mine = [r for r in rows if r.policy == p]
        rule = p in RULES
        against = [r for r in mine if best[r.instance.name] is not None and r.makespan is not None]
        beats = sum(r.makespan < best[r.instance.name] for r in against)  # type: ignore[operator]
        ties = sum(r.makespan == best[r.instance.name] for r in against)
        solver = any(r.lower_bound is not None or r.makespan is None for r in mine)
        missing = sum(r.makespan is None for r in mine)  # a mean over the others would flatter the policy
        out[p] = {
            "mean_gap": f"{100 * float(np.mean([r.gap for r in mine])):.1f}%"
            if not missing
            else f"none ({missing}/{len(mine)} without a schedule)",
            "beats_best_rule": "" if rule or not against else f"{beats}/{len(mine)}",
            "best_rule": f"{ties}/{len(mine)}" if rule else "",
            "optimal": f"{sum(r.status == 'OPTIMAL' for r in mine)}/{len(mine)}" if solver else "",
            "seconds": f"{float(np.mean([r.seconds for r in mine])):.3g}",
            "cpu_seconds": f"{float(np.mean([r.cpu_seconds for r in mine])):.3g}",
        }
    return out


CSV_FIELDS = (
    "group",
    "instance",
    "jobs",
    "machines",
    "optimum",
    "best_known",
    "policy",
    "makespan",
    "gap",
    "seconds",
    "cpu_seconds",
    "status",
    "lower_bound",
    "deterministic_time",
)


def write_csv(results: Sequence[Result], path: Path) -> Path:
    """One row per instance and policy (`CSV_FIELDS`); returns `path`."""
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_FIELDS)
        for r in results:
            i = r.instance
            writer.writerow(
                [
                    r.group,
                    i.name,
                    i.n_jobs,
                    i.n_machines,
                    i.optimum if i.optimum is not None else "",
                    i.best_known,
                    r.policy,
                    "" if r.makespan is None else r.makespan,
                    "" if r.makespan is None else f"{r.gap:.6f}",
                    f"{r.seconds:.4f}",
                    f"{r.cpu_seconds:.4f}",
                    r.status,
                    "" if r.lower_bound is None else r.lower_bound,
                    "" if r.deterministic_time is None else f"{r.deterministic_time:.3f}",
                ]
            )
    return path


def gap_plot(results: Sequence[Result], path: Path) -> Path:
    """Grouped bars of the gap (%) per instance and policy, the group mean last, one panel per group; returns `path`."""
    groups = list(dict.fromkeys(r.group for r in results))
    labels = policies(results)
    fig, axes = plt.subplots(len(groups), 1, figsize=(14, 4.2 * len(groups)), squeeze=False)
    width = 0.8 / len(labels)
    for ax, group in zip(axes[:, 0], groups, strict=True):
        rows = [r for r in results if r.group == group]
        names = list(dict.fromkeys(r.instance.name for r in rows))
        for k, p in enumerate(labels):
            gaps = {r.instance.name: 100 * r.gap for r in rows if r.policy == p}
            values = [gaps.get(n, np.nan) for n in names]
            values.append(float(np.mean(values)))  # NaN where an instance has no schedule, as in the table
            ax.bar(np.arange(len(names) + 1) + (k - (len(labels) - 1) / 2) * width, values, width, label=p)
        ax.set_xticks(range(len(names) + 1), [*names, "mean"])
        ax.set_ylabel("gap to best known (%)")
        ax.set_title(group)
        ax.grid(axis="y", alpha=0.3)
    axes[0, 0].legend(ncol=min(len(labels), 5), fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_reports(results: Sequence[Result], out_dir: Path, header: str) -> dict[str, Path]:
    """The Markdown tables, CSV and bar plot of `results` in `out_dir`; returns their paths by kind."""
    out_dir.mkdir(parents=True, exist_ok=True)
    groups = list(dict.fromkeys(r.group for r in results))
    text = "\n\n".join([header, *(f"### {g}\n\n{gap_table(results, g)}" for g in groups)]) + "\n"
    md = out_dir / "jssp_gaps.md"
    md.write_text(text)
    return {
        "markdown": md,
        "csv": write_csv(results, out_dir / "jssp_gaps.csv"),
        "plot": gap_plot(results, out_dir / "jssp_gaps.png"),
    }
