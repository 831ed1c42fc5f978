"""Observation and action encodings shared by the setpoint tasks.

Sensor values are scaled to [0, 1] by their spec range and clipped. A value that can drop out
(`SensorSpec.dropouts`) is encoded as two numbers: the scaled value (0 when missing) and a
validity flag (1 valid, 0 missing), so NaN never reaches the agent.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import gymnasium as gym
import numpy as np

from hardware import Frame, LineSpec, SensorSpec

_DAY_S = 86400.0


class SensorEncoder:
    """Scales the selected sensors of a frame, with validity flags for those that can drop out."""

    def __init__(self, spec: LineSpec, keep: Callable[[SensorSpec], bool], clock: bool = False) -> None:
        chosen = [i for i, s in enumerate(spec.sensors) if keep(s)]
        if not chosen:
            raise ValueError(f"line {spec.name!r}: no sensor matches the task's selection")
        self._idx = np.array(chosen)
        self._low = np.array([spec.sensors[i].low for i in chosen])
        span = np.array([spec.sensors[i].high - spec.sensors[i].low for i in chosen])
        self._inv_span = 1.0 / np.where(span > 0, span, 1.0)
        self._flagged = np.array([k for k, i in enumerate(chosen) if spec.sensors[i].dropouts], dtype=np.int64)
        self._clock = clock
        self.names = tuple(spec.sensors[i].name for i in chosen)
        flag_of = {int(k): len(chosen) + j for j, k in enumerate(self._flagged)}
        # sensor name -> (value column, validity-flag column or None, range low, range span)
        self.layout: dict[str, tuple[int, int | None, float, float]] = {
            name: (k, flag_of.get(k), float(self._low[k]), float(span[k])) for k, name in enumerate(self.names)
        }
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
        scaled = (raw - self._low) * self._inv_span
        scaled[missing] = 0.0
        np.clip(scaled, 0.0, 1.0, out=out[:n])
        out[n : n + k] = ~missing[self._flagged]
        if self._clock:
            phase = 2.0 * math.pi * (frame.time % _DAY_S) / _DAY_S
            out[n + k :] = (math.sin(phase), math.cos(phase))
        return out


def rescale(action: np.ndarray, low: np.ndarray, high: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Map actions in [-1, 1] onto [low, high], piecewise linearly with 0 on `centre`.

    Centring on the actuator's default (nominal speed) makes the zero action the line's own
    setting, so an untrained policy starts where the plant runs today.
    """
    return np.where(action < 0.0, centre + action * (centre - low), centre + action * (high - centre))
