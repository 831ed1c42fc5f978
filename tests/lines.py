"""Small line definitions for tests: each a plain mapping, as a YAML file would give."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
FLOW5 = REPO / "configs" / "line" / "flow5.yaml"
JOBSHOP = REPO / "configs" / "line" / "jobshop.yaml"

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
        "machines": {"m": {**RELIABLE, "processing_time_distribution": "deterministic"}},
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
