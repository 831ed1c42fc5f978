"""Run a policy (learned, exported or heuristic) for whole episodes and keep what happened."""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import gymnasium as gym
import numpy as np

from hardware import Frame, Kpis
from hardware.counters import window_kpis


class Policy(Protocol):
    """Anything with SB3's `predict`: an algorithm, an exported artifact, a heuristic."""

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = False,
    ) -> tuple[Any, Any]:
        """Return (action, state) for an observation."""
        ...


class Normalized:
    """A policy trained behind `VecNormalize`, fed raw observations through its statistics."""

    def __init__(self, model: Policy, normalizer: Any) -> None:
        self.model = model
        self.normalizer = normalizer  # a VecNormalize; only its `normalize_obs` is used
        self._masked = takes_masks(model)

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = False,
        action_masks: np.ndarray | None = None,
    ) -> tuple[Any, Any]:
        """Normalise the observation, then ask the model."""
        obs = self.normalizer.normalize_obs(observation)
        if self._masked:
            return self.model.predict(obs, state, episode_start, deterministic, action_masks=action_masks)  # type: ignore[call-arg]
        return self.model.predict(obs, state, episode_start, deterministic)


def takes_masks(policy: Any) -> bool:
    """Whether `policy.predict` accepts `action_masks` (MaskablePPO, masked artifacts)."""
    return "action_masks" in inspect.signature(policy.predict).parameters


@dataclass
class Dispatch:
    """One dispatch an agent made: at `time_s`, `job` started its operation `step` on `station`."""

    time_s: float
    station: int
    job: int
    step: int


@dataclass
class Episode:
    """One finished episode: its return, final KPIs and, if recorded, its frames and dispatches."""

    seed: int
    total_reward: float
    steps: int
    kpis: Kpis
    info: dict[str, Any]
    frames: list[Frame] = field(default_factory=list)
    dispatches: list[Dispatch] = field(default_factory=list)


def episode_kpis(kpis: Kpis, info: dict[str, Any]) -> dict[str, float]:
    """An episode's KPIs as the scalars every report uses (TensorBoard, tables, CSV)."""
    values = {
        "good_parts": float(kpis.good_parts),
        "throughput_per_h": kpis.throughput_per_h,
        "oee": kpis.oee,
        "energy_cost": kpis.energy_cost,
        "energy_cost_per_part": kpis.energy_cost_per_good_part,
        "co2_kg_per_part": kpis.co2_kg_per_good_part,
        "co2_kg": kpis.co2_kg,  # the total: per part is NaN for an episode without good parts
        "downtime_h": (kpis.planned_downtime_s + kpis.unplanned_downtime_s) / 3600.0,
        "failures": float(kpis.failures),
        "preventive_maintenances": float(kpis.preventive_maintenances),
        "maintenance_cost": kpis.repair_cost + kpis.preventive_cost,
        "stockout_h": kpis.stockout_time_s / 3600.0,
        "orders_placed": float(kpis.orders_placed),
        "tardiness_h": kpis.tardiness_s / 3600.0,
        "wip_end_parts": float(kpis.wip_parts),
    }
    if "makespan" in info:
        values["makespan_s"] = float(info["makespan"])
    return values


def kpi_mean(values: Sequence[float]) -> float:
    """A KPI's mean over episodes, leaving out those where it is undefined (NaN: a cost per part without a part).

    NaN when it is defined on none of them.
    """
    defined = [v for v in values if not math.isnan(v)]
    return float(np.mean(defined)) if defined else math.nan


def run_episode(
    env: gym.Env[Any, Any], policy: Policy, seed: int, record: bool = False, scored_from: int = 0
) -> Episode:
    """Run `policy` deterministically on `env` from `reset(seed)` to the episode's end.

    The first `scored_from` steps are left out of `total_reward` and of the KPIs (a policy settling
    into the state its own operation leaves before it is scored): with `scored_from` > 0 the KPIs
    are the window from that step's frame to the last (`hardware.counters.window_kpis`).
    """
    masked = hasattr(env.unwrapped, "action_masks") and takes_masks(policy)
    obs, info = env.reset(seed=seed)
    base: Any = env.unwrapped
    frames: list[Frame] = [base.frame] if record else []
    dispatches: list[Dispatch] = []
    total, steps, done = 0.0, 0, False
    scored_start = base.frame
    while not done:
        if steps == scored_from:
            scored_start = base.frame
        if masked:
            action, _ = policy.predict(obs, deterministic=True, action_masks=base.action_masks())  # type: ignore[call-arg]
        else:
            action, _ = policy.predict(obs, deterministic=True)
        if record and info.get("station") is not None and int(action) < base.task.n_jobs:
            job = int(action)
            dispatches.append(Dispatch(base.frame.time, int(info["station"]), job, int(base.frame.jobs.step[job])))
        obs, reward, terminated, truncated, info = env.step(action)
        if steps >= scored_from:
            total += float(reward)
        steps += 1
        done = terminated or truncated
        if record:
            frames.append(base.frame)
    if steps <= scored_from and scored_from > 0:
        raise ValueError(f"scored_from: seed {seed}'s episode ended after {steps} steps, not after {scored_from}")
    kpis = window_kpis(scored_start, base.frame, len(base.line.spec.stations)) if scored_from else info["kpis"]
    return Episode(seed, total, steps, kpis, info, frames, dispatches)
