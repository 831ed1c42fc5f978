"""Baselines of the speed and energy tasks: nominal speed, a fixed speed, and the time-of-use standby rule."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np

from agents.baseline import Baseline, action_positions, finite_at_least
from agents.decoder import SensorDecoder
from envs.encoding import unscale
from envs.energy import EnergyTask
from envs.setpoint import ACTION_RUN, ACTION_STANDBY, SetpointTask
from envs.speed import SpeedTask
from hardware import Lever


class NominalSpeed(Baseline):
    """Every station at nominal speed (and running): action 0, the line's own setting."""

    tasks = (SpeedTask, EnergyTask)
    task: SetpointTask

    def act(self, obs: np.ndarray) -> np.ndarray:
        """The line's own setting."""
        return self.line_setting(len(obs))


def price_threshold(decoder: SensorDecoder, name: str, value: Any) -> float:
    """`value`, a price threshold per kWh on the `line.price_per_kwh` sensor, checked: one it reads.

    Raises:
        ValueError: not a finite number >= 0, or above the top of what the sensor reads (the rule
            would never find power dear), naming `name`.
    """
    threshold = finite_at_least(name, value, 0.0)
    top = decoder.bounds("line.price_per_kwh")[1]
    if threshold - decoder.tolerance("line.price_per_kwh") > top:
        raise ValueError(
            f"{name} ({threshold:g} per kWh) is above the top of what the price sensor reads ({top:g} per kWh): "
            "power would never be dear"
        )
    return threshold


def speed_actions(
    task: SetpointTask,
    speed_ratio: float,
    station_speed_ratio: Mapping[str, float] | None = None,
    name: str = "speed_ratio",
) -> np.ndarray:
    """The speed components of `task`'s action that set the given speed ratios (1 = nominal), in station order.

    Args:
        task: a setpoint task with a speed lever.
        speed_ratio: speed of every station as a ratio of its nominal speed; a station whose
            limits do not reach it runs at its nearest limit, but some station's must.
        station_speed_ratio: ratios of named stations that replace `speed_ratio` there, each within
            that station's limits.
        name: the parameter `speed_ratio` stands for, named in errors.

    Raises:
        ValueError: for a ratio that is not a finite number > 0 or that no station's limits reach,
            a station the line does not have, or a station ratio outside that station's speed limits.
    """
    ratio = finite_at_least(name, speed_ratio, 0.0, strict=True)
    speeds = [a for a in task.spec.actuators if a.lever is Lever.SPEED]
    low = np.array([a.low for a in speeds])
    high = np.array([a.high for a in speeds])
    nominal = np.array([a.default for a in speeds])
    if not low.min() <= ratio <= high.max():  # every station at its limit: a sweep would rank it as that limit
        raise ValueError(
            f"{name}: {ratio:g} is outside every station's speed limits (the line's speeds span "
            f"{low.min():g} to {high.max():g})"
        )
    ratios = np.clip(np.full(len(speeds), ratio), low, high)
    stations = [task.spec.stations[a.station] if a.station is not None else a.name for a in speeds]
    if station_speed_ratio is not None and not isinstance(station_speed_ratio, Mapping):
        raise ValueError(
            f"station_speed_ratio: must map station names to speed ratios, e.g. {{{stations[0]}: 0.9}}, "
            f"got {station_speed_ratio!r}"
        )
    for name, value in (station_speed_ratio or {}).items():
        if name not in stations:
            raise ValueError(f"station_speed_ratio: the line has no station {name!r} (it has {', '.join(stations)})")
        k = stations.index(name)
        r = finite_at_least(f"station_speed_ratio.{name}", value, 0.0, strict=True)
        if not low[k] <= r <= high[k]:
            raise ValueError(
                f"station_speed_ratio.{name}: {r} is outside the station's speed limits [{low[k]}, {high[k]}]"
            )
        ratios[k] = r
    return unscale(ratios, low, high, nominal)  # the inverse of the task's decoding


class FixedSpeed(Baseline):
    """Every station at one fixed speed ratio (1 = nominal), the setting a plant engineer tunes by trial.

    Args:
        env: a Speed env.
        speed_ratio: speed of every station as a ratio of its nominal speed; a station whose
            limits do not reach it runs at its nearest limit.
        station_speed_ratio: speed ratios of named stations that replace `speed_ratio` there
            (e.g. `{press: 1.15}` for the bottleneck), each within that station's limits.

    Raises:
        ValueError: as `speed_actions` does.
    """

    tasks = (SpeedTask,)
    task: SpeedTask

    def __init__(
        self, env: gym.Env[Any, Any], speed_ratio: float = 1.0, station_speed_ratio: Mapping[str, float] | None = None
    ) -> None:
        super().__init__(env)
        self._action = speed_actions(self.task, speed_ratio, station_speed_ratio).astype(self.action_space.dtype)

    def act(self, obs: np.ndarray) -> np.ndarray:
        """The same speeds at every step."""
        return np.broadcast_to(self._action, (len(obs), *self.action_shape)).copy()


class TimeOfUseEnergy(Baseline):
    """Fixed speeds by tariff; while power is dear, stations with an empty input queue stand by.

    Args:
        env: an Energy env.
        price_threshold_per_kwh: price of the `line.price_per_kwh` sensor, per kWh, at or above
            which power is dear.
        speed_ratio: speed of every station while power is cheap, as a ratio of its nominal speed
            (clipped to each station's limits).
        dear_speed_ratio: speed of every station while power is dear (likewise).

    Raises:
        ValueError: for a threshold below 0 or above what the price sensor reads, or a speed ratio
            that is not a finite number > 0.
    """

    tasks = (EnergyTask,)
    task: EnergyTask

    def __init__(
        self,
        env: gym.Env[Any, Any],
        price_threshold_per_kwh: float,
        speed_ratio: float = 1.0,
        dear_speed_ratio: float = 1.0,
    ) -> None:
        super().__init__(env)
        self.decoder = SensorDecoder(self.task)
        self.price_threshold_per_kwh = price_threshold(self.decoder, "price_threshold_per_kwh", price_threshold_per_kwh)
        self._mode = action_positions(self.task, Lever.MODE)
        self._speed = action_positions(self.task, Lever.SPEED)
        self._cheap_speed = speed_actions(self.task, speed_ratio)
        self._dear_speed = speed_actions(self.task, dear_speed_ratio, name="dear_speed_ratio")

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Speeds by price; mode standby where dear and empty, else run."""
        d = self.decoder
        price = d.value(obs, "line.price_per_kwh")
        dear = price >= self.price_threshold_per_kwh - d.tolerance("line.price_per_kwh")
        empty = d.stations_value(obs, "queue_parts") < 0.5
        actions = self.line_setting(len(obs))
        actions[:, self._speed] = np.where(dear[:, None], self._dear_speed, self._cheap_speed)
        actions[:, self._mode] = np.where(dear[:, None] & empty, ACTION_STANDBY, ACTION_RUN)
        return actions
