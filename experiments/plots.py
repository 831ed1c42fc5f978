"""PNG plots of evaluation tables: a metric per policy, and paired differences against a baseline.

Bars are horizontal, one per row, so long policy and scenario names never collide.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window

import matplotlib.pyplot as plt
from matplotlib.patches import Patch

Interval = tuple[float, float]  # mean and 95% half-width


def _figure(n: int, labels: list[str]) -> tuple[plt.Figure, plt.Axes]:
    width = 6.0 + 0.06 * max((len(s) for s in labels), default=0)
    fig, ax = plt.subplots(figsize=(width, 1.0 + 0.45 * n))
    return fig, ax


def bar_plot(bars: Mapping[str, Interval], label: str, path: Path) -> Path:
    """One horizontal bar per entry (mean, with its 95% interval as an error bar); returns `path`."""
    names = list(bars)
    fig, ax = _figure(len(names), names)
    ax.barh(range(len(names)), [m for m, _ in bars.values()], xerr=[h for _, h in bars.values()], capsize=4)
    ax.set_yticks(range(len(names)), names, fontsize="small")
    ax.invert_yaxis()
    ax.set_xlabel(label)
    ax.set_title(f"{label} (mean, 95% interval)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def difference_plot(differences: Mapping[str, Interval], label: str, path: Path) -> Path:
    """Paired differences with their 95% intervals, coloured by what the interval says; returns `path`.

    A NaN half-width (one seed) draws no interval and counts as cannot be told apart.
    """
    names = list(differences)
    outcome = {"tab:green": "better", "tab:red": "worse", "tab:gray": "cannot be told apart"}
    colours = ["tab:green" if m - h > 0 else "tab:red" if m + h < 0 else "tab:gray" for m, h in differences.values()]
    fig, ax = _figure(len(names), names)
    ax.barh(
        range(len(names)),
        [m for m, _ in differences.values()],
        xerr=[h for _, h in differences.values()],
        capsize=4,
        color=colours,
    )
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_yticks(range(len(names)), names, fontsize="small")
    ax.invert_yaxis()
    ax.set_xlabel(label)
    ax.set_title(f"{label}: mean and 95% interval")
    shown = dict.fromkeys(colours)
    ax.legend(handles=[Patch(color=c, label=outcome[c]) for c in shown], fontsize="small", loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
