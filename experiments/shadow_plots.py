"""The shadow report's plots: proposed against actual setpoints, decision latency, data staleness.

Each function draws one figure from a run's audit records into a PNG file and returns its path.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from experiments.shadow_evidence import actual_setpoints, latency, matrix, staleness
from hardware import LineSpec
from hardware.audit import AuditRecord


def _hours(records: Sequence[AuditRecord]) -> np.ndarray:
    """Line time of each record, h since the first."""
    t = np.array([r.line_time_s for r in records], dtype=float)
    return (t - t[0]) / 3600.0


def agreement_plot(spec: LineSpec, records: Sequence[AuditRecord], path: Path) -> Path:
    """Proposed and actual setpoints over time, one panel per actuator; returns `path`."""
    hours = _hours(records)
    proposed, active = matrix(r.proposed for r in records), actual_setpoints(spec, records)
    n = len(spec.actuators)
    fig, axes = plt.subplots(n, 1, figsize=(8.0, 0.6 + 1.6 * n), sharex=True, squeeze=False)
    for j, (ax, a) in enumerate(zip(axes[:, 0], spec.actuators, strict=True)):
        ax.step(hours, active[:, j], where="post", label="actual (ran)", color="tab:gray", linewidth=4, alpha=0.5)
        ax.step(hours, proposed[:, j], where="post", label="proposed", color="tab:blue")
        ax.set_ylabel(f"{a.name}\n{a.unit}", fontsize="small")
        ax.set_ylim(a.low - 0.05 * (a.high - a.low), a.high + 0.05 * (a.high - a.low))
    axes[0, 0].legend(fontsize="small", loc="upper right")
    axes[-1, 0].set_xlabel("line time since the first record, h")
    fig.suptitle("proposed and actual setpoints")
    return _save(fig, path)


def latency_plot(records: Sequence[AuditRecord], path: Path) -> Path:
    """Each stage's p50, p99 and maximum (ms, log scale), and the total latency over time; returns `path`."""
    spreads = latency(records)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11.0, 0.8 + 0.45 * max(len(spreads), 4)))
    rows = range(len(spreads))
    for attr, marker in (("p50", "o"), ("p99", "D"), ("max", "x")):
        left.plot([getattr(s, attr) for s in spreads.values()], rows, marker, linestyle="none", label=attr)
    left.hlines(rows, [s.p50 for s in spreads.values()], [s.max for s in spreads.values()], color="tab:gray")
    left.set_yticks(rows, list(spreads))
    left.invert_yaxis()
    left.set_xscale("log")
    left.set_xlabel("latency, ms")
    left.legend(fontsize="small")
    totals = [r.latency_ms.get("total", math.nan) for r in records]
    right.plot(_hours(records), totals, ".", markersize=2)
    right.set_xlabel("line time since the first record, h")
    right.set_ylabel("total latency, ms")
    fig.suptitle("decision latency")
    return _save(fig, path)


def staleness_plot(records: Sequence[AuditRecord], path: Path) -> Path:
    """Data staleness over time; returns `path`."""
    fig, ax = plt.subplots(figsize=(8.0, 3.0))
    ax.plot(_hours(records), [staleness(r) for r in records], ".", markersize=2)
    ax.set_xlabel("line time since the first record, h")
    ax.set_ylabel("frame time - oldest stamp, s")
    ax.set_title("data staleness")
    return _save(fig, path)


def _save(fig: Figure, path: Path) -> Path:
    """Lay `fig` out, write it to `path` as PNG (100 dpi) and close it; returns `path`."""
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
