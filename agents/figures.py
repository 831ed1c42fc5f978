"""Figures of a recorded episode: a schedule's Gantt chart, power and tariff, health and maintenance."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")  # files and TensorBoard only, never a window

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from agents.rollout import Episode
from hardware import LineSpec, StationState

_HOUR = 3600.0


def gantt(episode: Episode, spec: LineSpec) -> Figure:
    """Bars of each dispatched operation per station, nominal duration, coloured by job, with a job legend."""
    height_in = 0.4 * len(spec.stations) + 1.5
    fig, ax = plt.subplots(figsize=(10, height_in))
    colours = plt.get_cmap("tab20")
    for d in episode.dispatches:
        duration = spec.jobs[d.job].times_s[d.step] if spec.jobs else 0.0
        ax.barh(d.station, duration, left=d.time_s, color=colours(d.job % 20), edgecolor="black", linewidth=0.3)
    by_colour: dict[int, list[int]] = {}  # 20 colours: jobs 20 apart share one, and one legend entry
    for job in sorted({d.job for d in episode.dispatches}):
        by_colour.setdefault(job % 20, []).append(job)
    handles = [
        Patch(facecolor=colours(c), edgecolor="black", linewidth=0.3, label=", ".join(map(str, jobs)))
        for c, jobs in sorted(by_colour.items())
    ]
    if handles:
        columns = math.ceil(len(handles) / max(1, int(3 * (height_in - 0.8))))  # about 3 entries per inch
        ax.legend(
            handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="x-small", title="job", ncol=columns
        )
    ax.set_yticks(range(len(spec.stations)), spec.stations)
    ax.invert_yaxis()
    ax.set_xlabel("line clock, s")
    ax.set_title(f"Schedule, makespan {episode.kpis.last_completion_s:,.0f} s")
    fig.tight_layout()
    return fig


def power_and_tariff(episode: Episode, spec: LineSpec) -> Figure:
    """Line power (kW, from the energy counter) and electricity price over the episode."""
    t = np.array([f.time for f in episode.frames])
    energy = np.array([f.kpis.energy_kwh for f in episode.frames])
    price = np.array([f.values for f in episode.frames])[:, spec.sensor_index("line.price_per_kwh")]
    dt_h = np.diff(t) / _HOUR
    power = np.divide(np.diff(energy), dt_h, out=np.zeros_like(dt_h), where=dt_h > 0)
    fig, ax = plt.subplots(figsize=(10, 3.5))
    ax.step(t[1:] / _HOUR, power, where="pre", label="power, kW")
    ax.set_xlabel("line clock, h")
    ax.set_ylabel("kW")
    twin = ax.twinx()
    twin.step(t / _HOUR, price, where="post", color="tab:red", label="price per kWh")
    twin.set_ylabel("price per kWh", color="tab:red")
    ax.set_title("Power and tariff")
    fig.tight_layout()
    return fig


def health_and_maintenance(episode: Episode, spec: LineSpec) -> Figure:
    """Vibration per station while it works, with failures and preventive maintenance marked."""
    t = np.array([f.time for f in episode.frames]) / _HOUR
    values = np.array([f.values for f in episode.frames])
    fig, ax = plt.subplots(figsize=(10, 3.5))
    for name in spec.stations:
        vib = values[:, spec.sensor_index(f"{name}.vibration_mm_s")]
        state = values[:, spec.sensor_index(f"{name}.state")]
        busy = np.where(state == StationState.BUSY, vib, np.nan)
        ax.plot(t, busy, ".", markersize=2, label=name if np.isfinite(busy).any() else None)
    failures = _increments([f.kpis.failures for f in episode.frames])
    planned = _increments([f.kpis.preventive_maintenances for f in episode.frames])
    for mask, colour, label in ((failures, "tab:red", "failure"), (planned, "tab:green", "maintenance")):
        for i, x in enumerate(t[mask]):
            ax.axvline(x, color=colour, linestyle="--", linewidth=0.8, label=label if i == 0 else None)
    ax.set_xlabel("line clock, h")
    ax.set_ylabel("vibration RMS while busy, mm/s")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", fontsize="small", ncol=3, markerscale=4)
    ax.set_title("Health (vibration) and maintenance")
    fig.tight_layout()
    return fig


def _increments(counter: list[int]) -> np.ndarray:
    """Where a cumulative counter rose since the previous frame (never at the first frame)."""
    x = np.asarray(counter)
    return np.diff(x, prepend=x[:1]) > 0


def episode_figures(episode: Episode, spec: LineSpec) -> dict[str, Figure]:
    """The figures that fit the episode: a Gantt chart where dispatches were recorded, the others always."""
    figures = {"power_and_tariff": power_and_tariff(episode, spec)}
    if any(s.name.endswith(".vibration_mm_s") for s in spec.sensors):
        figures["health_and_maintenance"] = health_and_maintenance(episode, spec)
    if episode.dispatches:
        figures["gantt"] = gantt(episode, spec)
    return figures
