"""Base of the tasks that write setpoints at every control tick."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from envs.base import Task
from envs.encoding import SensorEncoder, rescale
from envs.weights import make_weights
from hardware import Command, Frame, Lever, LineSpec, SensorSpec, StationMode

# Actions that decode to each mode and to a maintenance request (the decoding's thresholds below).
ACTION_OFF, ACTION_STANDBY, ACTION_RUN, ACTION_MAINTAIN = -1.0, -0.5, 0.0, 1.0
_OFF_BELOW, _STANDBY_BELOW = -2 / 3, -1 / 3
MAINTAIN_ABOVE = 0.5  # a maintain component above this requests maintenance


class SetpointTask(Task):
    """A tick task whose action is a `Box(-1, 1)` over the actuators of its levers, in spec order.

    Decoding per lever: speed maps -1, 0, 1 onto its lower limit, nominal speed and upper limit
    (linear in between); mode is off below -2/3, standby below -1/3 and run above (so 0 runs); maintenance is
    requested above 0.5; reorder orders `max(0, a)` times the largest order (a <= 0 orders
    nothing).

    An action of the wrong shape is an error naming the expected shape. A component that is not a
    finite number (or, in a discrete space, not one of its values) is invalid: it is never passed
    on; it decodes as the zero action (the plant's own setting; for a reorder, no order) and
    `info["invalid_action"]` says so, `info["invalid_actions"]` counting them over the episode.
    """

    sensors: ClassVar[tuple[str, ...]]  # sensor name suffixes the task observes (station and line)
    clock: ClassVar[bool] = False  # add time-of-day features
    weights_class: ClassVar[type]  # the frozen dataclass of the reward's prices

    def __init__(self, spec: LineSpec, weights: Mapping[str, Any] | None = None) -> None:
        super().__init__(spec)
        self.weights: Any = make_weights(self.weights_class, weights)
        self.encoder = SensorEncoder(spec, self._observes, clock=self.clock)
        self.observation_space = self.encoder.space()
        self._acts = [i for i, a in enumerate(spec.actuators) if a.lever in self.levers]
        self._lever = [spec.actuators[i].lever for i in self._acts]
        self._low = np.array([spec.actuators[i].low for i in self._acts])
        self._high = np.array([spec.actuators[i].high for i in self._acts])
        self._centre = np.array([spec.actuators[i].default for i in self._acts])
        self._discrete = [k for k, lever in enumerate(self._lever) if lever is not Lever.SPEED]
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(len(self._acts),), dtype=np.float32)

    def checked(self, action: Any) -> np.ndarray:
        """The action as a float vector, its invalid components replaced by 0 (the line's own setting)."""
        a, valid = self.parse_action(action)
        if valid.all():
            return a
        self.mark_invalid()
        return np.where(valid, a, 0.0)

    def observe(self, frame: Frame) -> np.ndarray:
        """The selected sensors, scaled, with validity flags."""
        return self.encoder(frame)

    def command(self, action: Any, frame: Frame) -> Command:
        """Decode each action component by its lever into the actuator's units."""
        a = self.checked(action).clip(-1.0, 1.0)
        values = rescale(a, self._low, self._high, self._centre)
        for k in self._discrete:
            lever = self._lever[k]
            if lever is Lever.MODE:
                mode = (
                    StationMode.OFF
                    if a[k] < _OFF_BELOW
                    else StationMode.STANDBY
                    if a[k] < _STANDBY_BELOW
                    else StationMode.RUN
                )
                values[k] = float(mode)
            elif lever is Lever.MAINTENANCE:
                values[k] = 1.0 if a[k] > MAINTAIN_ABOVE else 0.0
            elif lever is Lever.REORDER:
                values[k] = max(0.0, a[k]) * self._high[k]
        return self.setpoints(values)

    def setpoints(self, values: np.ndarray) -> Command:
        """A command writing `values` to this task's actuators (in its action order), keeping the others."""
        full = np.full(len(self.spec.actuators), np.nan)
        full[self._acts] = values
        return Command(setpoints=full)

    def _observes(self, sensor: SensorSpec) -> bool:
        return sensor.name.split(".", 1)[1] in self.sensors
