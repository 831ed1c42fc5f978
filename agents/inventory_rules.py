"""The (s, S) reorder rule and its baseline on the inventory task."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from agents.baseline import Baseline, finite_at_least
from agents.decoder import SensorDecoder
from envs.inventory import InventoryTask
from envs.setpoint import SetpointTask
from hardware import Lever


class ReorderPoint:
    """(s, S) rule: when stock on hand plus on order is at or below s, order up to S.

    Args:
        task: the setpoint task whose observation the rule reads (it must own the reorder lever).
        reorder_point_units: s, material units.
        order_up_to_units: S, material units, above s.
    """

    def __init__(self, task: SetpointTask, reorder_point_units: float, order_up_to_units: float) -> None:
        self.decoder = SensorDecoder(task)
        self.max_order_units = next(a.high for a in task.spec.actuators if a.lever is Lever.REORDER)
        self.reorder_point_units = finite_at_least("reorder_point_units", reorder_point_units, 0.0)
        self.order_up_to_units = finite_at_least("order_up_to_units", order_up_to_units, 0.0)
        if self.order_up_to_units <= self.reorder_point_units:
            raise ValueError(
                f"order_up_to_units ({self.order_up_to_units}) must exceed reorder_point_units "
                f"({self.reorder_point_units})"
            )
        # slack of comparisons on the stock position: float32 rounding never flips a decision
        self.tolerance_units = self.decoder.tolerance("line.stock_units") + self.decoder.tolerance(
            "line.on_order_units"
        )
        stock_top = self.decoder.bounds("line.stock_units")[1]
        if self.reorder_point_units >= stock_top:
            raise ValueError(
                f"reorder_point_units ({self.reorder_point_units:g}) is at or above the top of what the stock "
                f"sensor reads ({stock_top:g} units): a full store would read as one at the reorder point"
            )

    def check_order_at_s(self, target_units: float, least_units: float, least: str) -> None:
        """Refuse an (s, S) whose order at s the task would not place: `target_units` - s under `least_units`.

        `target_units` is S as the task sets it; `least` names the least order (the task's
        `min_order_units`, half a quantity level). Such a rule would act as s = target - least, and
        a sweep over s would rank one policy under several names.
        """
        s = self.reorder_point_units
        if target_units - s < least_units:
            raise ValueError(
                f"the target ({target_units:g} units) less reorder_point_units ({s:g}) is below {least} "
                f"({least_units:g}): at s the gap to S is too small to order, so the rule would act as "
                f"reorder_point_units={target_units - least_units:g}"
            )

    def check_largest(self, largest_units: float, *, target: bool) -> None:
        """Refuse an S the task cannot reach: over its largest target, or (quantities) its largest order above s."""
        s, big_s = self.reorder_point_units, self.order_up_to_units
        if target and big_s > largest_units:
            raise ValueError(
                f"order_up_to_units ({big_s:g}) is above the task's largest target ({largest_units:g} units)"
            )
        if not target and big_s - s > largest_units:
            raise ValueError(
                f"order_up_to_units ({big_s:g}) is more than the task's largest order ({largest_units:g} units) above "
                f"reorder_point_units ({s:g}): at s the rule would order only that, acting as "
                f"order_up_to_units={s + largest_units:g}"
            )

    def position(self, obs: np.ndarray) -> np.ndarray:
        """Stock on hand plus on order, material units, shape `(n,)`."""
        d = self.decoder
        return d.value(obs, "line.stock_units") + d.value(obs, "line.on_order_units")

    def order_at(self, position: np.ndarray) -> np.ndarray:
        """Units to order at stock positions `position` (0 above the reorder point), shape `(n,)`."""
        reorder = position <= self.reorder_point_units + self.tolerance_units
        return np.where(reorder, self.order_up_to_units - position, 0.0)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """Units to order now (0 above the reorder point), shape `(n,)`."""
        return self.order_at(self.position(obs))


class SSReorder(Baseline):
    """(s, S) reordering on the Inventory task: the order level closest to S minus the position.

    With the task's order-up-to levels (`action="order_up_to"`) it picks the target level closest
    to S at or below the reorder point, and level 0 (no order) above it; with its continuous
    target (`"order_up_to_box"`) it sets the target to S there, and -1 (no order) above it.
    A target action orders only a gap of at least the task's `min_order_units`, so there S - s
    must be at least that (else the rule would act as s = S - `min_order_units`, and a sweep
    over s would rank one policy under several names), and S at most the largest target. With
    quantities (`action="quantity"`) the order is the level nearest S - position, so it reaches S
    only to within half a level: S - s must be more than half a level (a smaller order rounds to
    none) and at most the largest order.

    Args:
        env: an Inventory env.
        reorder_point_units: s, see `ReorderPoint`.
        order_up_to_units: S, see `ReorderPoint`.
    """

    tasks = (InventoryTask,)
    task: InventoryTask

    def __init__(self, env: gym.Env[Any, Any], reorder_point_units: float, order_up_to_units: float) -> None:
        super().__init__(env)
        self.reorder = ReorderPoint(self.task, reorder_point_units, order_up_to_units)
        self._check_orders()

    def _check_orders(self) -> None:
        """S is a target the task can set, or reach in one order from s, far enough above s for an order at s."""
        levels, kind, rule = self.task.levels, self.task.action_kind, self.reorder
        big_s = rule.order_up_to_units
        rule.check_largest(float(levels[-1]), target=kind != "quantity")
        if kind == "quantity":  # a strict half level: a tie rounds to the lower level, no order
            half = float(levels[1]) / 2.0
            rule.check_order_at_s(big_s, np.nextafter(half, np.inf), "half an order level")
            return
        target = big_s
        if kind == "order_up_to":  # the level nearest S, the lower of two equally near
            target = float(levels[np.argmin(np.abs(levels - big_s))])
        rule.check_order_at_s(target, self.task.min_order_units, "the task's min_order_units")

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Index of the level nearest the wanted quantity or target (the lower of two equally near)."""
        wanted = self.reorder(obs)
        if self.task.action_kind != "quantity":
            wanted = np.where(wanted > 0.0, self.reorder.order_up_to_units, 0.0)
        if self.task.action_kind == "order_up_to_box":
            return (2.0 * wanted / self.task.levels[-1] - 1.0)[:, None]
        distance = np.abs(self.task.levels[None, :] - wanted[:, None])
        nearest = distance <= distance.min(axis=1, keepdims=True) + self.reorder.tolerance_units
        return np.argmax(nearest, axis=1)
