"""The raw-material store and its supplier: random lead times, outages, reorders."""

from __future__ import annotations

from collections.abc import Callable, Generator

import numpy as np
import simpy

from hardware.twin.params import Distribution, SupplyParams
from hardware.twin.rng import exponential, unit_duration


class Supply:
    """Stock on hand, stock on order, and a supplier that can be out of service."""

    def __init__(
        self,
        env: simpy.Environment,
        params: SupplyParams,
        gen: np.random.Generator,
        on_delivery: Callable[[], None],
        auto_reorder: bool,
    ) -> None:
        self._env = env
        self._p = params
        self._on_delivery = on_delivery
        self.auto_reorder = auto_reorder  # the line's (s, Q) rule places orders; off while the agent owns reorders
        self._lead = unit_duration(gen, Distribution.GAMMA, params.lead_time_cv)
        self._exp = exponential(gen)
        self.stock_units = params.initial_stock_units
        self.on_order_units = 0.0
        self._in_transit = 0  # orders placed and not delivered
        self.ordered_units = 0.0
        self.received_units = 0.0
        self.orders_placed = 0
        self._stock_area = 0.0  # integral of stock over time, unit-seconds
        self._stock_t = 0.0
        self._outages = 0
        self._back = env.event()
        if params.outage_rate_per_day > 0:
            env.process(self._random_outages())
        env.timeout(0.0).callbacks.append(lambda _: self._check_reorder_point())  # once whoever owns reorders is set

    def set_auto_reorder(self, on: bool) -> None:
        """Let the line's (s, Q) rule order (`on`) or not; switched on, it looks at the stock position at once."""
        self.auto_reorder = on
        self._check_reorder_point()

    def take(self, units: float) -> bool:
        """Take `units` from stock if there is enough; apply the reorder rule either way; return success."""
        if self.stock_units < units:
            self._check_reorder_point(short=True)
            return False
        self._count_stock()
        self.stock_units -= units
        self._check_reorder_point()
        return True

    def order(self, units: float) -> None:
        """Place an order; it ships once the supplier is up, after a random lead time."""
        if units <= 0:
            return
        self.on_order_units += units
        self._in_transit += 1
        self.ordered_units += units
        self.orders_placed += 1
        self._env.process(self._deliver(units))

    def begin_outage(self) -> None:
        """Stop the supplier shipping until the matching `end_outage`."""
        if self._outages == 0:
            self._back = self._env.event()
        self._outages += 1

    def end_outage(self) -> None:
        """End one outage; shipping resumes when none is left."""
        self._outages -= 1
        if self._outages == 0:
            self._back.succeed()

    def stock_unit_h(self) -> float:
        """Time integral of stock on hand since time 0, unit-hours."""
        return (self._stock_area + self.stock_units * (self._env.now - self._stock_t)) / 3600.0

    def _count_stock(self) -> None:
        now = self._env.now
        self._stock_area += self.stock_units * (now - self._stock_t)
        self._stock_t = now

    def _check_reorder_point(self, short: bool = False) -> None:
        """The line's rule: order Q at a stock position of s or below, or `short` of a job's material, none on order.

        Without the second clause, a reorder point below one job's material could leave the store short for good.
        """
        position = self.stock_units + self.on_order_units
        if self.auto_reorder and (position <= self._p.reorder_point_units or (short and not self._in_transit)):
            self.order(self._p.order_quantity_units)

    def _deliver(self, units: float) -> Generator[simpy.Event, None, None]:
        while self._outages > 0:
            yield self._back
        yield self._env.timeout(self._lead() * self._p.lead_time_mean_s)
        self._in_transit -= 1
        self.on_order_units = self.on_order_units - units if self._in_transit else 0.0  # no float residue
        self._count_stock()
        self.stock_units += units
        self.received_units += units
        self._on_delivery()

    def _random_outages(self) -> Generator[simpy.Event, None, None]:
        p = self._p
        while True:
            yield self._env.timeout(self._exp() * 86400.0 / p.outage_rate_per_day)
            self.begin_outage()
            yield self._env.timeout(self._exp() * p.outage_duration_mean_s)
            self.end_outage()
