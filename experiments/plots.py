"""PNG plots of evaluation tables: a metric per policy, and paired differences against a baseline.

Bars are horizontal, one per row, so long policy and scenario names never collide; each mode (a
per-episode figure, a week of continuing operation) gets its own panel and scale.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window

import matplotlib.pyplot as plt
from matplotlib.patches import Patch

Interval = tuple[float, float]  # mean and 95% half-width


Panels = Mapping[str, Mapping[str, Interval]]  # panel title -> bar label -> interval


def _figure(panels: Panels) -> tuple[plt.Figure, list[plt.Axes]]:
    """One panel per entry (each with its own scale: an episode and a week differ by orders of magnitude)."""
    labels = [name for bars in panels.values() for name in bars]
    width = 6.0 + 0.06 * max((len(s) for s in labels), default=0)
    heights = [0.6 + 0.45 * len(bars) for bars in panels.values()]
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(width, 0.6 + sum(heights)), squeeze=False, gridspec_kw={"height_ratios": heights}
    )
    return fig, list(axes[:, 0])


def _bars(ax: plt.Axes, bars: Mapping[str, Interval], colours: list[str] | None = None) -> None:
    names = list(bars)
    ax.barh(
        range(len(names)),
        [m for m, _ in bars.values()],
        xerr=[h for _, h in bars.values()],
        capsize=4,
        color=colours,
    )
    ax.set_yticks(range(len(names)), names, fontsize="small")
    ax.invert_yaxis()


def bar_plot(panels: Panels, label: str, path: Path) -> Path:
    """Horizontal bars (mean, with its 95% interval as an error bar), one panel per entry; returns `path`."""
    fig, axes = _figure(panels)
    for ax, (title, bars) in zip(axes, panels.items(), strict=True):
        _bars(ax, bars)
        ax.set_title(title, fontsize="medium")
    axes[-1].set_xlabel(label)
    fig.suptitle(f"{label} (mean, 95% interval)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def difference_plot(panels: Panels, label: str, path: Path) -> Path:
    """Paired differences with their 95% intervals, coloured by what the interval says; returns `path`.

    A NaN half-width (one seed) draws no interval and counts as cannot be told apart.
    """
    outcome = {"tab:green": "better", "tab:red": "worse", "tab:gray": "cannot be told apart"}
    fig, axes = _figure(panels)
    shown: dict[str, None] = {}
    for ax, (title, differences) in zip(axes, panels.items(), strict=True):
        colours = [
            "tab:green" if m - h > 0 else "tab:red" if m + h < 0 else "tab:gray" for m, h in differences.values()
        ]
        shown.update(dict.fromkeys(colours))
        _bars(ax, differences, colours)
        ax.axvline(0.0, color="black", linewidth=0.8)
        ax.set_title(title, fontsize="medium")
    axes[-1].set_xlabel(label)
    fig.suptitle(f"{label}: mean and 95% interval")
    fig.tight_layout(rect=(0.0, 0.0, 0.8, 1.0))
    fig.legend(handles=[Patch(color=c, label=outcome[c]) for c in shown], fontsize="small", loc="center right")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
