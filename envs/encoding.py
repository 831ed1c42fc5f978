"""Observation and action encodings shared by the setpoint tasks.

Sensor values are scaled to [0, 1] by their spec range, linearly or on the log scale a spec asks
for (`SensorSpec.log_reference`), and clipped. A value that can drop out (`SensorSpec.dropouts`)
is encoded as two numbers: the scaled value (0 when missing) and a validity flag (1 valid, 0
missing), so NaN never reaches the agent. `SensorEncoder.decode` is the inverse: rules that
decide on physical readings read them back through it, so there is one codec.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import gymnasium as gym
import numpy as np

from hardware import Frame, LineSpec, SensorSpec

_DAY_S = 86400.0
# Slack of a threshold comparison on a decoded value, in scaled units: far above float32 rounding
# of a feature in [0, 1] (6e-8), far below any unit a threshold is set in.
_RESOLUTION = 1e-6


class SensorEncoder:
    """Scales the selected sensors of a frame, with validity flags for those that can drop out.

    Feature order: the selected sensors' scaled values in spec order (`names`), then one validity
    flag per sensor that can drop out, then sine and cosine of the time of day if `clock`.
    """

    def __init__(self, spec: LineSpec, keep: Callable[[SensorSpec], bool], clock: bool = False) -> None:
        chosen = [i for i, s in enumerate(spec.sensors) if keep(s)]
        if not chosen:
            raise ValueError(f"line {spec.name!r}: no sensor matches the task's selection")
        sensors = [spec.sensors[i] for i in chosen]
        self._line = spec.name
        self._idx = np.array(chosen)
        self._low = np.array([s.low for s in sensors])
        self._span = np.array([s.high - s.low for s in sensors])
        self._inv_span = 1.0 / np.where(self._span > 0, self._span, 1.0)
        # log-scaled columns: scaled = log1p((x - low) / ref) / log1p(span / ref); linear ones keep ref 1
        self._is_log = np.array([s.log_reference is not None for s in sensors])
        self._ref = np.array([s.log_reference or 1.0 for s in sensors])
        self._log_top = np.log1p(self._span / self._ref)
        self._inv_log_top = 1.0 / np.where(self._log_top > 0, self._log_top, 1.0)
        self._flagged = np.array([k for k, s in enumerate(sensors) if s.dropouts], dtype=np.int64)
        self._clock = clock
        self.names = tuple(s.name for s in sensors)
        flag_of = {int(k): len(chosen) + j for j, k in enumerate(self._flagged)}
        self._column = {name: k for k, name in enumerate(self.names)}
        self._flag = {name: flag_of.get(k) for k, name in enumerate(self.names)}
        self.size = len(chosen) + len(self._flagged) + (2 if clock else 0)

    def space(self, extra: int = 0) -> gym.spaces.Box:
        """The observation space of this encoding plus `extra` features in [-1, 1]."""
        return gym.spaces.Box(-1.0, 1.0, shape=(self.size + extra,), dtype=np.float32)

    def __call__(self, frame: Frame) -> np.ndarray:
        """Encode a frame as float32 features in [-1, 1] (sensor values in [0, 1])."""
        raw = frame.values[self._idx]
        missing = np.isnan(raw)
        out = np.empty(self.size, dtype=np.float32)
        n, k = len(raw), len(self._flagged)
        scaled = self._scale(raw - self._low)
        scaled[missing] = 0.0
        np.clip(scaled, 0.0, 1.0, out=out[:n])
        out[n : n + k] = ~missing[self._flagged]
        if self._clock:
            phase = 2.0 * math.pi * (frame.time % _DAY_S) / _DAY_S
            out[n + k :] = (math.sin(phase), math.cos(phase))
        return out

    def encode(self, name: str, value: float | np.ndarray) -> np.ndarray:
        """The feature sensor `name` shows for physical `value` (in its spec unit), clipped to [0, 1]."""
        k = self.column(name)
        return np.clip(self._scale(np.asarray(value, dtype=float) - self._low[k], k), 0.0, 1.0)

    def decode(self, obs: np.ndarray, name: str) -> np.ndarray:
        """Physical reading of sensor `name` in its spec unit from observations `(..., size)`.

        Returns shape `obs.shape[:-1]`. Values beyond the range read as its bound; a missing
        value reads as the range's low (see `valid`).
        """
        k = self.column(name)
        scaled = np.clip(np.asarray(obs, dtype=float)[..., k], 0.0, 1.0)
        if self._is_log[k]:
            return self._low[k] + self._ref[k] * np.expm1(scaled * self._log_top[k])
        return self._low[k] + scaled * self._span[k]

    def valid(self, obs: np.ndarray, name: str) -> np.ndarray:
        """Whether sensor `name` read a value, bool of shape `obs.shape[:-1]` (always for sensors without dropouts)."""
        self.column(name)
        flag = self._flag[name]
        obs = np.asarray(obs)
        return np.ones(obs.shape[:-1], dtype=bool) if flag is None else obs[..., flag] > 0.5

    def tolerance(self, name: str) -> float:
        """Slack for threshold comparisons on decoded `name`, in its unit, valid anywhere in its range.

        The largest change of the physical value that `_RESOLUTION` of the scaled feature makes:
        far above float32 rounding, far below any unit a threshold is set in.
        """
        k = self.column(name)
        if self._is_log[k]:
            # d value / d scaled = (ref + value - low) * log_top, largest at the top of the range
            return _RESOLUTION * float((self._ref[k] + self._span[k]) * self._log_top[k])
        return _RESOLUTION * float(self._span[k])

    def bounds(self, name: str) -> tuple[float, float]:
        """The range sensor `name` reads, (low, high) in its spec unit: beyond it a reading is its bound."""
        k = self.column(name)
        return float(self._low[k]), float(self._low[k] + self._span[k])

    def column(self, name: str) -> int:
        """Position of sensor `name`'s value in the observation."""
        if name not in self._column:
            raise ValueError(f"line {self._line!r}: this encoding does not observe sensor {name!r}")
        return self._column[name]

    def _scale(self, offset: np.ndarray, columns: int | slice = slice(None)) -> np.ndarray:
        """Scaled values (unclipped) of `columns` from their offsets above the range low."""
        logged = np.log1p(np.maximum(offset, 0.0) / self._ref[columns]) * self._inv_log_top[columns]
        return np.where(self._is_log[columns], logged, offset * self._inv_span[columns])


def rescale(action: np.ndarray, low: np.ndarray, high: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Map actions in [-1, 1] onto [low, high], piecewise linearly with 0 on `centre`.

    Centring on the actuator's default (nominal speed) makes the zero action the line's own
    setting, so an untrained policy starts where the plant runs today. -1 and 1 give `low` and
    `high` exactly (the centre minus its distance to `low` can round a step past it), and nothing
    lands outside them.
    """
    mapped = np.where(action < 0.0, centre + action * (centre - low), centre + action * (high - centre))
    return np.clip(np.where(action <= -1.0, low, np.where(action >= 1.0, high, mapped)), low, high)


def unscale(value: np.ndarray, low: np.ndarray, high: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """The inverse of `rescale`: the actions in [-1, 1] that `rescale` maps onto `value` (within [low, high])."""
    below = (value - centre) / np.where(centre > low, centre - low, 1.0)
    above = (value - centre) / np.where(high > centre, high - centre, 1.0)
    return np.where(value < centre, below, above)
