"""Baselines of the maintenance task: reactive, fixed-interval and condition-based maintenance."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from agents.baseline import Baseline, finite_at_least
from agents.decoder import SensorDecoder, available
from envs.maintenance import MaintenanceTask
from envs.setpoint import SetpointTask

Thresholds = float | Sequence[float] | Mapping[str, float]


def per_station(name: str, value: Thresholds, stations: Sequence[str]) -> np.ndarray:
    """One positive finite value per station from one for all, a list in station order, or a mapping by name.

    Raises:
        ValueError: naming `name` and the station when a value is missing, unknown or not positive.
    """
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - set(stations))
        missing = [s for s in stations if s not in value]
        if unknown or missing:
            raise ValueError(
                f"{name}: give one value per station of the line ({', '.join(stations)}); "
                f"missing {missing or 'none'}, unknown {unknown or 'none'}"
            )
        given = [value[s] for s in stations]
    elif isinstance(value, Sequence) and not isinstance(value, str):
        given = list(value)
        if len(given) != len(stations):
            raise ValueError(f"{name}: give one value or {len(stations)} (one per station), got {len(given)}")
    else:
        given = [value] * len(stations)
    return np.array(
        [finite_at_least(f"{name}[{s}]", v, 0.0, strict=True) for s, v in zip(stations, given, strict=True)]
    )


class VibrationTrigger:
    """Condition rule: maintain a station whose valid vibration reading exceeds its threshold.

    A station already down or in maintenance is never asked again.

    Args:
        task: the setpoint task whose observation the rule reads.
        threshold_mm_s: vibration RMS threshold in mm/s: one for all stations, one per station in
            station order, or a mapping from station name.
        scale: factor (> 0) on every station's threshold, so that one number sweeps them all.
    """

    def __init__(self, task: SetpointTask, threshold_mm_s: Thresholds, scale: float = 1.0) -> None:
        self.decoder = SensorDecoder(task)
        scale = finite_at_least("threshold_scale", scale, 0.0, strict=True)
        self.threshold_mm_s = scale * per_station("threshold_mm_s", threshold_mm_s, task.spec.stations)
        # a reading is above its threshold beyond the observation's float32 rounding, alike at every station
        self._tolerance = np.array([self.decoder.tolerance(f"{s}.vibration_mm_s") for s in self.decoder.stations])
        for station, threshold, tolerance in zip(
            self.decoder.stations, self.threshold_mm_s, self._tolerance, strict=True
        ):
            top = self.decoder.bounds(f"{station}.vibration_mm_s")[1]
            if threshold + tolerance >= top:
                raise ValueError(
                    f"threshold_mm_s[{station}]: {threshold:g} mm/s (scale included) is at or above the top of "
                    f"what its vibration sensor reads ({top:g} mm/s): the station would never be maintained"
                )

    def ratio(self, obs: np.ndarray) -> np.ndarray:
        """Each station's vibration reading over its threshold, shape `(n, n_stations)` (above 1: too high)."""
        return self.decoder.stations_value(obs, "vibration_mm_s") / self.threshold_mm_s

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """Stations to maintain now, bool of shape `(n, n_stations)`."""
        vib = self.decoder.stations_value(obs, "vibration_mm_s")
        high = (vib > self.threshold_mm_s + self._tolerance) & self.decoder.stations_valid(obs, "vibration_mm_s")
        return high & available(self.decoder, obs)


def as_actions(task: MaintenanceTask, request: np.ndarray) -> np.ndarray:
    """Per-station requests (bool, `(n, n_stations)`) as the task's actions: 1/0, or due now (-1) / not at all (1)."""
    if task.action_kind == "due_box":
        return np.where(request, -1.0, 1.0)
    return request.astype(np.int8)


class ReactiveMaintenance(Baseline):
    """Never maintain preventively: stations are only repaired when they fail (the line's rule)."""

    tasks = (MaintenanceTask,)
    task: MaintenanceTask

    def act(self, obs: np.ndarray) -> np.ndarray:
        """No request anywhere."""
        return as_actions(self.task, np.zeros((len(obs), len(self.task.spec.stations)), dtype=bool))


class FixedIntervalMaintenance(Baseline):
    """Maintain a station once its hours since maintenance (or repair) reach `interval_h`.

    Args:
        env: a Maintenance env.
        interval_h: line-clock hours between maintenances of a station.
    """

    tasks = (MaintenanceTask,)
    task: MaintenanceTask

    def __init__(self, env: gym.Env[Any, Any], interval_h: float) -> None:
        super().__init__(env)
        self.interval_h = finite_at_least("interval_h", interval_h, 0.0, strict=True)
        self.decoder = SensorDecoder(self.task)
        sensors = [f"{s}.since_maintenance_h" for s in self.decoder.stations]
        self._due_h = self.interval_h - np.array([self.decoder.tolerance(s) for s in sensors])
        for sensor in sensors:
            top = self.decoder.bounds(sensor)[1]
            if self.interval_h > top:
                raise ValueError(
                    f"interval_h: {self.interval_h:g} h is beyond what {sensor} reads (up to {top:g} h): "
                    "that station would never be maintained"
                )

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Stations due and available."""
        due = self.decoder.stations_value(obs, "since_maintenance_h") >= self._due_h
        return as_actions(self.task, due & available(self.decoder, obs))


class ConditionBasedMaintenance(Baseline):
    """Maintain a station when its vibration reading exceeds a threshold (see `VibrationTrigger`).

    Args:
        env: a Maintenance env.
        threshold_mm_s: vibration RMS threshold in mm/s, one for all stations or one per station.
        threshold_scale: factor (> 0) on every threshold: the one parameter a sweep varies, keeping
            the stations' thresholds in proportion.
    """

    tasks = (MaintenanceTask,)
    task: MaintenanceTask

    def __init__(self, env: gym.Env[Any, Any], threshold_mm_s: Thresholds, threshold_scale: float = 1.0) -> None:
        super().__init__(env)
        self.trigger = VibrationTrigger(self.task, threshold_mm_s, threshold_scale)

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Stations over their threshold."""
        return as_actions(self.task, self.trigger(obs))
