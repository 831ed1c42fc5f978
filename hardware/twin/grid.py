"""The electricity grid seen by the line: time-of-use price, random price spikes, carbon intensity.

The line clock starts at hour 0 of day 0. Price and carbon intensity are piecewise constant;
`before_change` is called just before either changes so energy can be integrated exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from math import prod

import numpy as np
import simpy

from hardware.twin.params import GridParams
from hardware.twin.rng import exponential

_DAY_S = 86400.0


class Grid:
    """Current price (per kWh) and carbon intensity (kg CO2 per kWh) on the line clock."""

    def __init__(
        self,
        env: simpy.Environment,
        params: GridParams,
        gen: np.random.Generator,
        before_change: Callable[[], None],
    ) -> None:
        self._env = env
        self._params = params
        self._before_change = before_change
        self._factors: list[float] = []
        hourly = len(params.carbon_kg_per_kwh) == 24
        hours = {p.from_hour for p in params.tariff} | (set(range(24)) if hourly else set())
        self._boundaries_h = sorted(float(h) for h in hours)
        self._segment = 0
        self._tou_price = 0.0
        self.price_per_kwh = 0.0
        self.carbon_kg_per_kwh = 0.0
        self._enter_segment(0)
        self._exp = exponential(gen)
        env.process(self._clock())
        if params.spike_rate_per_day > 0:
            env.process(self._spikes())

    def add_factor(self, factor: float) -> None:
        """Multiply the price by `factor` until `remove_factor(factor)`."""
        self._before_change()
        self._factors.append(factor)
        self.price_per_kwh = self._tou_price * prod(self._factors)

    def remove_factor(self, factor: float) -> None:
        """End one price multiplication started by `add_factor(factor)`."""
        self._before_change()
        self._factors.remove(factor)
        self.price_per_kwh = self._tou_price * prod(self._factors)

    def _enter_segment(self, k: int) -> None:
        hour = self._boundaries_h[k % len(self._boundaries_h)]
        tariff = self._params.tariff
        self._tou_price = next(p.price_per_kwh for p in reversed(tariff) if p.from_hour <= hour)
        carbon = self._params.carbon_kg_per_kwh
        self.carbon_kg_per_kwh = carbon[int(hour)] if len(carbon) == 24 else carbon[0]
        self.price_per_kwh = self._tou_price * prod(self._factors)

    def _clock(self) -> Generator[simpy.Event, None, None]:
        n = len(self._boundaries_h)
        k = 0
        while True:
            k += 1
            at = (k // n) * _DAY_S + self._boundaries_h[k % n] * 3600.0
            yield self._env.timeout(at - self._env.now)
            self._before_change()
            self._enter_segment(k)

    def _spikes(self) -> Generator[simpy.Event, None, None]:
        p = self._params
        while True:
            yield self._env.timeout(self._exp() * _DAY_S / p.spike_rate_per_day)
            self.add_factor(p.spike_factor)
            yield self._env.timeout(self._exp() * p.spike_duration_mean_s)
            self.remove_factor(p.spike_factor)
