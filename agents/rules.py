"""Heuristic baselines for the setpoint tasks, and the `Baseline` protocol every heuristic shares.

A baseline is built for one env and answers SB3's `predict`, so `evaluate_policy` treats a rule
and a trained policy alike. Rules decide from the observation alone: `SensorDecoder` turns the
scaled features back into physical readings. Defaults come from the twin's line parameters when
the env runs on a `TwinLine`, otherwise from the sensor ranges in the `LineSpec`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from envs.base import LineEnv, Task
from envs.energy import EnergyTask
from envs.factory import FactoryTask
from envs.inventory import InventoryTask
from envs.maintenance import MaintenanceTask
from envs.setpoint import ACTION_MAINTAIN, ACTION_RUN, ACTION_STANDBY, SetpointTask
from envs.speed import SpeedTask
from hardware import Lever, StationState
from hardware.twin import LineParams, TwinLine

# Health at which the condition-based rule maintains by default. Cost alone would maintain near
# 0.8, but vibration rises with the square of wear: above ~0.6 the rise is buried under variant
# load (a new machine on the heavy variant reads like a worn one) and sensor drift. Of 0.5-0.65,
# 0.6 earned the most over the registered week on flow5.
CONDITION_HEALTH = 0.6
# Without twin parameters: condition threshold as a fraction of the vibration range (about the
# reading at health CONDITION_HEALTH on the shipped machines), peak price as a fraction of the
# price range (the shipped tariff's peak is a quarter of its range, which spikes x4 reach), and
# (s, S) as fractions of the largest order.
VIBRATION_RANGE_FRACTION = 0.15
PEAK_PRICE_FRACTION = 0.25
REORDER_POINT_FRACTION, ORDER_UP_TO_FRACTION = 0.2, 0.5
DEFAULT_INTERVAL_H = 100.0
_RESOLUTION = 1e-6  # comparison slack in scaled units, well above float32 rounding


class Baseline(ABC):
    """A heuristic policy for one env with SB3's `predict`.

    Subclasses name the task classes they understand in `tasks` and map a batch of observations
    to a batch of actions in `act`.
    """

    tasks: ClassVar[tuple[type[Task], ...]]
    task: Task

    def __init__(self, env: gym.Env[Any, Any]) -> None:
        base = env.unwrapped
        if not isinstance(base, LineEnv) or not isinstance(base.task, self.tasks):
            task = type(base.task).__name__ if isinstance(base, LineEnv) else type(base).__name__
            known = ", ".join(t.__name__ for t in self.tasks)
            raise TypeError(f"env: {type(self).__name__} drives {known}, not {task}")
        self.env: LineEnv = base
        self.task = base.task
        self.observation_space = base.observation_space
        self.action_space = base.action_space
        self.action_shape: tuple[int, ...] = base.action_space.shape or ()

    def predict(
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """Action for one observation, or actions of shape `(n_envs, ...)` for a batch.

        The rules are deterministic and stateless: `deterministic` and `episode_start` are
        ignored and `state` is handed back unchanged, as SB3's feed-forward policies do.
        """
        if isinstance(observation, dict):
            raise TypeError("observation: the smartline tasks observe arrays, not dicts")
        obs = np.asarray(observation, dtype=np.float64)
        shape = self.observation_space.shape or ()
        single = obs.shape == shape
        batch = obs[None] if single else obs
        if batch.ndim != len(shape) + 1 or batch.shape[1:] != shape:
            raise ValueError(f"observation: expected shape {shape} or (n_envs, *{shape}), got {obs.shape}")
        actions = self.act(batch).astype(self.action_space.dtype)
        return (actions.reshape(self.action_shape) if single else actions), state

    @abstractmethod
    def act(self, obs: np.ndarray) -> np.ndarray:
        """Actions for a batch of observations of shape `(n, obs_dim)`, shape `(n, *action_shape)`."""


class SensorDecoder:
    """Physical readings back from a setpoint task's observation (the inverse of `SensorEncoder`)."""

    def __init__(self, task: SetpointTask) -> None:
        self._layout = task.encoder.layout
        self.stations = task.spec.stations
        self._task = type(task).__name__

    def value(self, obs: np.ndarray, name: str) -> np.ndarray:
        """Reading of sensor `name`, shape `obs.shape[:-1]` (values outside the range read clipped)."""
        column, _, low, span = self._find(name)
        return low + obs[..., column] * span

    def valid(self, obs: np.ndarray, name: str) -> np.ndarray:
        """Whether sensor `name` read a value (always true for sensors that cannot drop out)."""
        flag = self._find(name)[1]
        return np.ones(obs.shape[:-1], dtype=bool) if flag is None else obs[..., flag] > 0.5

    def stations_value(self, obs: np.ndarray, quantity: str) -> np.ndarray:
        """Reading of `<station>.<quantity>` for every station, shape `(*obs.shape[:-1], n_stations)`."""
        return np.stack([self.value(obs, f"{s}.{quantity}") for s in self.stations], axis=-1)

    def stations_valid(self, obs: np.ndarray, quantity: str) -> np.ndarray:
        """Validity of `<station>.<quantity>` for every station."""
        return np.stack([self.valid(obs, f"{s}.{quantity}") for s in self.stations], axis=-1)

    def tolerance(self, name: str) -> float:
        """Slack for threshold comparisons on `name`: far above float32 rounding, far below any unit."""
        return _RESOLUTION * self._find(name)[3]

    def _find(self, name: str) -> tuple[int, int | None, float, float]:
        if name not in self._layout:
            raise ValueError(f"{self._task} does not observe sensor {name!r}")
        return self._layout[name]


def twin_params(env: gym.Env[Any, Any]) -> LineParams | None:
    """The line parameters when the env runs on the twin, else None (a real line shows only its spec)."""
    line = getattr(env.unwrapped, "line", None)
    return line.params if isinstance(line, TwinLine) else None


def action_positions(task: SetpointTask, lever: Lever) -> np.ndarray:
    """Positions in a setpoint task's action vector of the actuators of `lever` (station order)."""
    acts = [a for a in task.spec.actuators if a.lever in task.levers]
    return np.array([k for k, a in enumerate(acts) if a.lever is lever], dtype=np.intp)


def finite_at_least(name: str, value: float, low: float, strict: bool = False) -> float:
    """`value` as a float after checking it is finite and >= `low` (> when `strict`); errors name it."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < low or (strict and value == low):
        raise ValueError(f"{name} must be a finite number {'>' if strict else '>='} {low}, got {value!r}")
    return float(value)


class VibrationTrigger:
    """Condition rule: maintain a station whose valid vibration reading exceeds its threshold.

    A station already down or in maintenance is never asked again. Default thresholds, per station:
    on the twin, the busy vibration at nominal speed and load 1 at health `CONDITION_HEALTH`
    (`idle + busy * (1 + gain * (1 - health)^2)`); else `VIBRATION_RANGE_FRACTION` of the range.
    """

    def __init__(
        self, env: gym.Env[Any, Any], task: SetpointTask, threshold_mm_s: float | Sequence[float] | None
    ) -> None:
        self.decoder = SensorDecoder(task)
        n = len(task.spec.stations)
        if threshold_mm_s is None:
            self.threshold_mm_s = _default_vibration(env, task)
        else:
            given = [threshold_mm_s] * n if isinstance(threshold_mm_s, int | float) else list(threshold_mm_s)
            if len(given) != n:
                raise ValueError(f"threshold_mm_s: give one value or {n} (one per station), got {len(given)}")
            self.threshold_mm_s = np.array(
                [finite_at_least(f"threshold_mm_s[{i}]", v, 0.0, strict=True) for i, v in enumerate(given)]
            )

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """Stations to maintain now, bool of shape `(n, n_stations)`."""
        vib = self.decoder.stations_value(obs, "vibration_mm_s")
        high = (vib > self.threshold_mm_s) & self.decoder.stations_valid(obs, "vibration_mm_s")
        return high & available(self.decoder, obs)


def available(decoder: SensorDecoder, obs: np.ndarray) -> np.ndarray:
    """Stations not already down or in maintenance, bool of shape `(n, n_stations)`."""
    state = np.rint(decoder.stations_value(obs, "state"))
    return (state != StationState.DOWN) & (state != StationState.MAINTENANCE)


def _default_vibration(env: gym.Env[Any, Any], task: SetpointTask) -> np.ndarray:
    params = twin_params(env)
    if params is None:
        spec = task.spec
        return np.array(
            [
                VIBRATION_RANGE_FRACTION * spec.sensors[spec.sensor_index(f"{s}.vibration_mm_s")].high
                for s in spec.stations
            ]
        )
    out = []
    for st in params.stations:
        s = params.machines[st.machine].sensors
        out.append(
            s.vibration_idle_mm_s + s.vibration_busy_mm_s * (1 + s.vibration_wear_gain * (1 - CONDITION_HEALTH) ** 2)
        )
    return np.array(out)


class ReorderPoint:
    """(s, S) rule: when stock on hand plus on order is at or below s, order up to S.

    Defaults: on the twin, the line's own reorder point s and S = s + its order quantity (the
    line's rule as an order-up-to policy); else `REORDER_POINT_FRACTION` and
    `ORDER_UP_TO_FRACTION` of the largest order.
    """

    def __init__(
        self,
        env: gym.Env[Any, Any],
        task: SetpointTask,
        reorder_point_units: float | None,
        order_up_to_units: float | None,
    ) -> None:
        self.decoder = SensorDecoder(task)
        self.max_order_units = next(a.high for a in task.spec.actuators if a.lever is Lever.REORDER)
        params = twin_params(env)
        supply = None if params is None else params.supply
        if supply is not None:
            s, big_s = supply.reorder_point_units, supply.reorder_point_units + supply.order_quantity_units
        else:
            s, big_s = REORDER_POINT_FRACTION * self.max_order_units, ORDER_UP_TO_FRACTION * self.max_order_units
        self.reorder_point_units = finite_at_least(
            "reorder_point_units", s if reorder_point_units is None else reorder_point_units, 0.0
        )
        self.order_up_to_units = finite_at_least(
            "order_up_to_units", big_s if order_up_to_units is None else order_up_to_units, 0.0
        )
        if self.order_up_to_units <= self.reorder_point_units:
            raise ValueError(
                f"order_up_to_units ({self.order_up_to_units}) must exceed reorder_point_units "
                f"({self.reorder_point_units})"
            )

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """Units to order now (0 above the reorder point), shape `(n,)`."""
        d = self.decoder
        position = d.value(obs, "line.stock_units") + d.value(obs, "line.on_order_units")
        tol = d.tolerance("line.stock_units") + d.tolerance("line.on_order_units")
        return np.where(position <= self.reorder_point_units + tol, self.order_up_to_units - position, 0.0)


class NominalSpeed(Baseline):
    """Every station at nominal speed (and running): action 0, the line's own setting."""

    tasks = (SpeedTask, EnergyTask)
    task: SetpointTask

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Zeros."""
        return np.zeros((len(obs), *self.action_shape), dtype=np.float32)


class TimeOfUseEnergy(Baseline):
    """Nominal speed; while power is dear, stations with an empty input queue go to standby.

    Args:
        env: an Energy env.
        price_threshold_per_kwh: price at or above which idle stations stand by. Default: on the
            twin the tariff's peak price, else `PEAK_PRICE_FRACTION` of the price sensor's range.
    """

    tasks = (EnergyTask,)
    task: EnergyTask

    def __init__(self, env: gym.Env[Any, Any], price_threshold_per_kwh: float | None = None) -> None:
        super().__init__(env)
        self.decoder = SensorDecoder(self.task)
        if price_threshold_per_kwh is None:
            params = twin_params(env)
            spec = self.task.spec
            price_threshold_per_kwh = (
                PEAK_PRICE_FRACTION * spec.sensors[spec.sensor_index("line.price_per_kwh")].high
                if params is None
                else max(p.price_per_kwh for p in params.grid.tariff)
            )
        self.price_threshold_per_kwh = finite_at_least("price_threshold_per_kwh", price_threshold_per_kwh, 0.0)
        self._mode = action_positions(self.task, Lever.MODE)

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Speed 0 everywhere; mode standby where dear and empty, else run."""
        d = self.decoder
        price = d.value(obs, "line.price_per_kwh")
        dear = price >= self.price_threshold_per_kwh - d.tolerance("line.price_per_kwh")
        empty = d.stations_value(obs, "queue_parts") < 0.5
        actions = np.zeros((len(obs), *self.action_shape), dtype=np.float32)
        actions[:, self._mode] = np.where(dear[:, None] & empty, ACTION_STANDBY, ACTION_RUN)
        return actions


class ReactiveMaintenance(Baseline):
    """Never maintain preventively: stations are only repaired when they fail (the line's rule)."""

    tasks = (MaintenanceTask,)
    task: MaintenanceTask

    def act(self, obs: np.ndarray) -> np.ndarray:
        """All zeros."""
        return np.zeros((len(obs), *self.action_shape), dtype=np.int8)


class FixedIntervalMaintenance(Baseline):
    """Maintain a station once its hours since maintenance (or repair) reach `interval_h`.

    Args:
        env: a Maintenance env.
        interval_h: line-clock hours between maintenances (default `DEFAULT_INTERVAL_H`).
    """

    tasks = (MaintenanceTask,)
    task: MaintenanceTask

    def __init__(self, env: gym.Env[Any, Any], interval_h: float = DEFAULT_INTERVAL_H) -> None:
        super().__init__(env)
        self.interval_h = finite_at_least("interval_h", interval_h, 0.0, strict=True)
        self.decoder = SensorDecoder(self.task)
        self._due_h = self.interval_h - np.array(
            [self.decoder.tolerance(f"{s}.since_maintenance_h") for s in self.decoder.stations]
        )

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Stations due and available."""
        due = self.decoder.stations_value(obs, "since_maintenance_h") >= self._due_h
        return (due & available(self.decoder, obs)).astype(np.int8)


class ConditionBasedMaintenance(Baseline):
    """Maintain a station when its vibration reading exceeds a threshold (see `VibrationTrigger`).

    Args:
        env: a Maintenance env.
        threshold_mm_s: vibration RMS threshold, one for all stations or one per station.
    """

    tasks = (MaintenanceTask,)
    task: MaintenanceTask

    def __init__(self, env: gym.Env[Any, Any], threshold_mm_s: float | Sequence[float] | None = None) -> None:
        super().__init__(env)
        self.trigger = VibrationTrigger(env, self.task, threshold_mm_s)

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Stations over their threshold."""
        return self.trigger(obs).astype(np.int8)


class SSReorder(Baseline):
    """(s, S) reordering on the Inventory task: the order level closest to S minus the position.

    Args:
        env: an Inventory env.
        reorder_point_units: s, see `ReorderPoint`.
        order_up_to_units: S, see `ReorderPoint`.
    """

    tasks = (InventoryTask,)
    task: InventoryTask

    def __init__(
        self,
        env: gym.Env[Any, Any],
        reorder_point_units: float | None = None,
        order_up_to_units: float | None = None,
    ) -> None:
        super().__init__(env)
        self.reorder = ReorderPoint(env, self.task, reorder_point_units, order_up_to_units)

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Index of the order level nearest the wanted quantity."""
        wanted = self.reorder(obs)
        return np.abs(self.task.levels[None, :] - wanted[:, None]).argmin(axis=1)


class FactoryRules(Baseline):
    """Factory: nominal speed, always run, condition-based maintenance and (s, S) reorders.

    Args:
        env: a Factory env.
        threshold_mm_s: see `VibrationTrigger`.
        reorder_point_units: s, see `ReorderPoint`.
        order_up_to_units: S, see `ReorderPoint`.
    """

    tasks = (FactoryTask,)
    task: FactoryTask

    def __init__(
        self,
        env: gym.Env[Any, Any],
        threshold_mm_s: float | Sequence[float] | None = None,
        reorder_point_units: float | None = None,
        order_up_to_units: float | None = None,
    ) -> None:
        super().__init__(env)
        self.trigger = VibrationTrigger(env, self.task, threshold_mm_s)
        self.reorder = ReorderPoint(env, self.task, reorder_point_units, order_up_to_units)
        self._maintain = action_positions(self.task, Lever.MAINTENANCE)
        (self._order,) = action_positions(self.task, Lever.REORDER)

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Zero speed and mode; maintain and reorder components from the two rules."""
        actions = np.zeros((len(obs), *self.action_shape), dtype=np.float32)
        actions[:, self._maintain] = np.where(self.trigger(obs), ACTION_MAINTAIN, 0.0)
        actions[:, self._order] = np.clip(self.reorder(obs) / self.reorder.max_order_units, 0.0, 1.0)
        return actions
