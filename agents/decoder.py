"""Physical readings back from a setpoint task's observation, for rules that decide on them."""

from __future__ import annotations

import numpy as np

from envs.setpoint import SetpointTask
from hardware import RENEWING_STATES, state_mask

_RENEWING = state_mask(RENEWING_STATES)


class SensorDecoder:
    """Reads named sensors out of a setpoint task's observation through its encoder's inverse.

    The scaling lives only in the task's `SensorEncoder` (`decode`, `valid`, `tolerance`); this
    class names the task in its errors and reads whole stations at once.
    """

    def __init__(self, task: SetpointTask) -> None:
        self._encoder = task.encoder
        self._observed = frozenset(task.encoder.names)
        self.stations = task.spec.stations
        self._task = type(task).__name__

    def value(self, obs: np.ndarray, name: str) -> np.ndarray:
        """Reading of sensor `name` in its spec unit, shape `obs.shape[:-1]` (out-of-range values read clipped)."""
        return self._encoder.decode(obs, self._known(name))

    def valid(self, obs: np.ndarray, name: str) -> np.ndarray:
        """Whether sensor `name` read a value (always true for sensors that cannot drop out)."""
        return self._encoder.valid(obs, self._known(name))

    def stations_value(self, obs: np.ndarray, quantity: str) -> np.ndarray:
        """Reading of `<station>.<quantity>` for every station, shape `(*obs.shape[:-1], n_stations)`."""
        return np.stack([self.value(obs, f"{s}.{quantity}") for s in self.stations], axis=-1)

    def stations_valid(self, obs: np.ndarray, quantity: str) -> np.ndarray:
        """Validity of `<station>.<quantity>` for every station."""
        return np.stack([self.valid(obs, f"{s}.{quantity}") for s in self.stations], axis=-1)

    def bounds(self, name: str) -> tuple[float, float]:
        """The range sensor `name` reads, (low, high) in its spec unit: a rule cannot tell values beyond it apart."""
        return self._encoder.bounds(self._known(name))

    def tolerance(self, name: str) -> float:
        """Slack for threshold comparisons on `name`, in its unit: far above float32 rounding, far below any unit."""
        return self._encoder.tolerance(self._known(name))

    def _known(self, name: str) -> str:
        if name not in self._observed:
            raise ValueError(f"{self._task} does not observe sensor {name!r}")
        return name


def available(decoder: SensorDecoder, obs: np.ndarray) -> np.ndarray:
    """Stations not already being renewed (down or in maintenance), bool of shape `(n, n_stations)`."""
    state = np.rint(decoder.stations_value(obs, "state")).astype(np.intp).clip(0, len(_RENEWING) - 1)
    return ~_RENEWING[state]
