"""Inventory: how much raw material to reorder, against random lead times and outages."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from envs.base import delta, warn_unused
from envs.setpoint import SetpointTask
from envs.weights import HOLDING_COST_PER_UNIT_H, ORDER_COST, STOCKOUT_COST_PER_H, finite_number
from hardware import Command, Frame, Lever, LineSpec

ACTIONS = ("quantity", "order_up_to", "order_up_to_box")  # what an action means, see `InventoryTask`


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
    `Discrete(order_levels)`. With `action="quantity"` (the default) level k orders
    `k / (order_levels - 1)` of the largest order (level 0 orders nothing). With
    `action="order_up_to"` level k is a target stock position (on hand plus on order),
    `k / (order_levels - 1)` of the largest order: the task orders the gap to it when the gap is at
    least `min_order_units` (else nothing; level 0 never orders, nor does a position that cannot
    be read), so holding one level is an (s, S) rule with S the target and s = S -
    `min_order_units`, and the policy's first exploration is a plausible order-up-to rule rather
    than an order at almost every decision. `action="order_up_to_box"`: `Box(-1, 1, (1,))`, the
    target is `(a + 1) / 2` times the largest order (-1 never orders, 0 aims at half the largest
    order), ordered as above, so that nearby targets are nearby actions and a Gaussian policy
    centred on 0 starts as an order-up-to rule and tunes its target by its mean.

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
    (`InventoryWeights` fields), `action` ("quantity", "order_up_to" or "order_up_to_box"), `min_order_units`
    (default 0; the smallest gap an order-up-to level orders, material units). A setting the action
    does not use (`min_order_units` with quantities, `order_levels` with the Box) is named in a warning.

    ## Version History
    v0: initial version; `action="order_up_to"` and `"order_up_to_box"` added as options, the
    default unchanged.
    """

    weights_class: ClassVar[type] = InventoryWeights
    weights: InventoryWeights
    levers: ClassVar[frozenset[Lever]] = frozenset({Lever.REORDER})
    sensors: ClassVar[tuple[str, ...]] = ("stock_units", "on_order_units", "wip_parts")
    clock: ClassVar[bool] = True

    def __init__(
        self,
        spec: LineSpec,
        weights: Mapping[str, Any] | None = None,
        order_levels: int = 9,
        action: str = "quantity",
        min_order_units: float = 0.0,
    ) -> None:
        super().__init__(spec, weights)
        if isinstance(order_levels, bool) or not isinstance(order_levels, int | np.integer) or order_levels < 2:
            raise ValueError(f"order_levels must be a whole number >= 2, got {order_levels!r}")
        if action not in ACTIONS:
            raise ValueError(f"action must be one of {', '.join(ACTIONS)}, got {action!r}")
        if not (finite_number(min_order_units) and min_order_units >= 0):
            raise ValueError(f"min_order_units must be a finite number >= 0, got {min_order_units!r}")
        if action == "quantity":
            warn_unused("min_order_units", min_order_units, 0.0, "action='order_up_to' or 'order_up_to_box'")
        if action == "order_up_to_box":
            warn_unused("order_levels", order_levels, 9, "action='quantity' or 'order_up_to'")
        self.action_kind = action
        self.min_order_units = float(min_order_units)
        self.levels = np.linspace(0.0, float(self._high[0]), order_levels)
        if action == "order_up_to_box":
            self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        else:
            self.action_space = gym.spaces.Discrete(order_levels)
        self._position = [spec.sensor_index("line.stock_units"), spec.sensor_index("line.on_order_units")]

    def command(self, action: Any, frame: Frame) -> Command:
        """Order the chosen level's quantity, or the gap to its target; an invalid action orders nothing."""
        if self.action_kind == "order_up_to_box":
            a, valid = self.parse_action(action)
            if not valid.all():
                self.mark_invalid()
                return self.setpoints(np.zeros(1))
            target = (float(a.clip(-1.0, 1.0)[0]) + 1.0) / 2.0 * float(self._high[0])
        else:
            level = self.parse_discrete(action)
            if level is None:
                self.mark_invalid()
                level = 0
            if self.action_kind == "quantity":
                return self.setpoints(self.levels[level : level + 1])
            target = float(self.levels[level])
        gap = target - float(np.sum(frame.values[self._position]))
        order = min(gap, float(self._high[0])) if gap >= max(self.min_order_units, 1e-9) else 0.0
        return self.setpoints(np.array([order]))

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
