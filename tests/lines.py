"""Small line definitions for tests: each a plain mapping, as a YAML file would give."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np

from configs import config_file
from hardware.twin import State

REPO = Path(__file__).resolve().parents[1]  # the source tree, for tests that run its tools (not for configs)
FLOW5 = config_file("line", "flow5")
JOBSHOP = config_file("line", "jobshop")

# a distinct power in every state, so that energy booked to the wrong state shows
POWER_KW = {
    "off": 0.0,
    "standby": 0.7,
    "warmup": 3.1,
    "idle": 2.0,
    "busy": 8.0,
    "blocked": 2.3,
    "changeover": 3.6,
    "down": 0.4,
    "maintenance": 1.3,
}

RELIABLE = {
    "failure_rate_base_per_h": 0.0,
    "failure_rate_wear_per_h": 0.0,
    "scrap_probability": 0.0,
    "sensors": {"dropout_probability": 0.0},
}


def single_station(arrival_rate_per_h: float, processing_time_s: float, **machine: Any) -> dict[str, Any]:
    """One station fed by Poisson arrivals: an M/G/1 queue (M/M/1 with exponential service)."""
    return {
        "name": "single",
        "layout": "flow",
        "machines": {"m": {**RELIABLE, "processing_time_distribution": "exponential", **machine}},
        "stations": [{"name": "s", "machine": "m"}],
        "variants": [{"name": "A", "processing_time_s": [processing_time_s]}],
        "demand": {"arrival_rate_per_h": arrival_rate_per_h},
    }


def deterministic_shop(jobs: list[tuple[str, float]], variants: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """A reliable, deterministic job shop with stations m0..m3 and static jobs (variant, release_s)."""
    return {
        "name": "shop",
        "layout": "jobshop",
        "machines": {"m": {**RELIABLE, "processing_time_distribution": "deterministic", "power_kw": POWER_KW}},
        "stations": [{"name": f"m{i}", "machine": "m"} for i in range(4)],
        "variants": variants,
        "demand": {"jobs": [{"variant": v, "release_s": r} for v, r in jobs]},
        **extra,
    }


def edited(definition: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """Return a deep copy of `definition` with the value at dotted `path` (list indices allowed) set."""
    out = copy.deepcopy(definition)
    node: Any = out
    keys = path.split(".")
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
    last = keys[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return out


def power_table_kw(definition: dict[str, Any], station: int, speed: float) -> np.ndarray:
    """Power of a station's machine in each `State`, kW, busy at `speed`, read from the definition itself.

    The definition must give every state's power (as the shipped lines do); busy power scales as
    speed ** `busy_power_speed_exponent` (2 unless the machine says otherwise).
    """
    machine = definition["machines"][definition["stations"][station]["machine"]]
    power = machine["power_kw"]
    table = np.array([float(power[s.name.lower()]) for s in State])
    table[State.BUSY] *= speed ** machine.get("busy_power_speed_exponent", 2.0)
    return table


def energy_kwh(definition: dict[str, Any], state_times_s: np.ndarray, speed: float = 1.0) -> float:
    """Energy a line drew, kWh: the definition's power in each state times the time each station spent in it."""
    return sum(power_table_kw(definition, i, speed) @ row for i, row in enumerate(state_times_s)) / 3600.0
