"""Baselines of the speed and energy tasks: nominal speed, and the time-of-use standby rule."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from agents.baseline import Baseline, action_positions, finite_at_least
from agents.decoder import SensorDecoder
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


class TimeOfUseEnergy(Baseline):
    """Nominal speed; while power is dear, stations with an empty input queue go to standby.

    Args:
        env: an Energy env.
        price_threshold_per_kwh: price of the `line.price_per_kwh` sensor, per kWh, at or above
            which idle stations stand by.
    """

    tasks = (EnergyTask,)
    task: EnergyTask

    def __init__(self, env: gym.Env[Any, Any], price_threshold_per_kwh: float) -> None:
        super().__init__(env)
        self.decoder = SensorDecoder(self.task)
        self.price_threshold_per_kwh = finite_at_least("price_threshold_per_kwh", price_threshold_per_kwh, 0.0)
        self._mode = action_positions(self.task, Lever.MODE)

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Speed 0 everywhere; mode standby where dear and empty, else run."""
        d = self.decoder
        price = d.value(obs, "line.price_per_kwh")
        dear = price >= self.price_threshold_per_kwh - d.tolerance("line.price_per_kwh")
        empty = d.stations_value(obs, "queue_parts") < 0.5
        actions = self.line_setting(len(obs))
        actions[:, self._mode] = np.where(dear[:, None] & empty, ACTION_STANDBY, ACTION_RUN)
        return actions
