"""Inventory: how much raw material to reorder, against random lead times and outages."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from envs.base import delta
from envs.setpoint import SetpointTask
from envs.weights import HOLDING_COST_PER_UNIT_H, ORDER_COST, STOCKOUT_COST_PER_H
from hardware import Command, Frame, Lever, LineSpec


@dataclass(frozen=True)
class InventoryWeights:
    """Prices of the inventory task's reward terms."""

    holding_cost_per_unit_h: float = HOLDING_COST_PER_UNIT_H
    stockout_cost_per_h: float = STOCKOUT_COST_PER_H  # per station-hour held up by an empty store
    order_cost: float = ORDER_COST  # fixed cost per order placed


class InventoryTask(SetpointTask):
    """Reorder quantity each period.

    ## Description
    The line draws raw material from a store. Orders arrive after a random lead time, later if
    the supplier is out. Too little stock starves the line; too much ties up money.

    ## Action Space
    `Discrete(order_levels)`: level k orders `k / (order_levels - 1)` of the largest order
    (level 0 orders nothing).

    ## Observation Space
    `Box(-1, 1)`: stock on hand, stock on order, WIP and the first station's queue and state,
    then sine and cosine of the time of day.

    ## Rewards
    `-(holding_cost_per_unit_h * unit-hours held + stockout_cost_per_h * hours held up by a
    stockout + order_cost * orders placed)`.

    ## Starting State
    A line as it runs: the episode begins after a warm-up under the line's own rules (its length
    drawn as the line definition's `start` says), with buffers, backlog, machine health, stock and
    time of day as they come; `start="cold"` begins at time 0 with empty buffers and new machines.

    ## Episode End
    Never terminates; truncated after three days by default.

    ## Arguments
    `line`, `scenario`, `control_period_s` (default 120), `order_levels` (default 9), `weights`
    (`InventoryWeights` fields).

    ## Version History
    v0: initial version.
    """

    weights_class: ClassVar[type] = InventoryWeights
    weights: InventoryWeights
    levers: ClassVar[frozenset[Lever]] = frozenset({Lever.REORDER})
    sensors: ClassVar[tuple[str, ...]] = ("stock_units", "on_order_units", "wip_parts")
    clock: ClassVar[bool] = True

    def __init__(self, spec: LineSpec, weights: Mapping[str, Any] | None = None, order_levels: int = 9) -> None:
        super().__init__(spec, weights)
        if order_levels < 2:
            raise ValueError(f"order_levels must be >= 2, got {order_levels}")
        self.levels = np.linspace(0.0, float(self._high[0]), order_levels)
        self.action_space = gym.spaces.Discrete(order_levels)

    def command(self, action: Any, frame: Frame) -> Command:
        """Order the quantity of the chosen level; a level outside the space is invalid and orders nothing."""
        level = self.parse_discrete(action)
        if level is None:
            self.mark_invalid()
            level = 0
        return self.setpoints(self.levels[level : level + 1])

    def reward(self, before: Frame, after: Frame) -> tuple[float, dict[str, float]]:
        """Minus holding, stockout and ordering costs."""
        w, b, a = self.weights, before.kpis, after.kpis
        terms = {
            "reward/holding": -w.holding_cost_per_unit_h * delta(b, a, "stock_unit_h"),
            "reward/stockout": -w.stockout_cost_per_h * delta(b, a, "stockout_time_s") / 3600.0,
            "reward/ordering": -w.order_cost * delta(b, a, "orders_placed"),
        }
        return sum(terms.values()), terms

    def _observes(self, sensor: Any) -> bool:
        first = self.spec.stations[0]
        return super()._observes(sensor) or sensor.name in (f"{first}.queue_parts", f"{first}.state")
