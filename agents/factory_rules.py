"""The factory baseline: the plant engineer's rules for every setpoint lever at once."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from agents.baseline import Baseline, action_positions, finite_at_least
from agents.decoder import SensorDecoder
from agents.inventory_rules import ReorderPoint
from agents.maintenance_rules import Thresholds, VibrationTrigger
from agents.speed_rules import price_threshold, speed_actions
from envs.factory import FactoryTask
from envs.setpoint import ACTION_MAINTAIN, ACTION_RUN, ACTION_STANDBY, MAINTAIN_ABOVE
from hardware import Lever

_SURE_REQUEST = MAINTAIN_ABOVE + 1e-3  # a request's least action: above the threshold after float32 rounding


class FactoryRules(Baseline):
    """Factory: one fixed speed, standby when idle and power is dear, condition-based maintenance, (s, S) reorders.

    Args:
        env: a Factory env.
        threshold_mm_s: vibration RMS threshold in mm/s, see `VibrationTrigger`.
        reorder_point_units: s, see `ReorderPoint`.
        order_up_to_units: S, see `ReorderPoint`.
        speed_ratio: speed of every station as a ratio of its nominal speed (1: nominal); a station
            whose limits do not reach it runs at its nearest limit.
        standby_price_per_kwh: price of the `line.price_per_kwh` sensor, per kWh, at or above which
            stations with an empty input queue stand by; None: they always run.

    Raises:
        ValueError: for a speed ratio that is not a finite number > 0, a price that is not a finite
            number >= 0 or is above what the price sensor reads, an (s, S) the task cannot carry out
            (S above the largest target, or more than the largest order above s; S - s under
            `min_order_units` on a target task), and the errors of the maintenance and reorder rules.
    """

    tasks = (FactoryTask,)
    task: FactoryTask

    def __init__(
        self,
        env: gym.Env[Any, Any],
        threshold_mm_s: Thresholds,
        reorder_point_units: float,
        order_up_to_units: float,
        speed_ratio: float = 1.0,
        standby_price_per_kwh: float | None = None,
    ) -> None:
        super().__init__(env)
        self.trigger = VibrationTrigger(self.task, threshold_mm_s)
        self.reorder = ReorderPoint(self.task, reorder_point_units, order_up_to_units)
        target = self.task.reorder == "order_up_to"
        self.reorder.check_largest(self.reorder.max_order_units, target=target)
        if target:  # a quantity is a continuous fraction of the largest order: any gap is placed
            self.reorder.check_order_at_s(
                self.reorder.order_up_to_units, self.task.min_order_units, "the task's min_order_units"
            )
        self.decoder = SensorDecoder(self.task)
        self.speed_ratio = finite_at_least("speed_ratio", speed_ratio, 0.0, strict=True)
        self.standby_price_per_kwh = (
            None
            if standby_price_per_kwh is None
            else price_threshold(self.decoder, "standby_price_per_kwh", standby_price_per_kwh)
        )
        self._speed = action_positions(self.task, Lever.SPEED)
        self._mode = action_positions(self.task, Lever.MODE)
        self._maintain = action_positions(self.task, Lever.MAINTENANCE)
        (self._order,) = action_positions(self.task, Lever.REORDER)
        self._speed_action = speed_actions(self.task, self.speed_ratio)

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Speed and mode from the fixed settings; maintain and reorder components from the two rules.

        On a task whose reorder component is a target (`reorder="order_up_to"`) the rule asks for
        S when it orders, so its orders are exact when S - s is at least the task's `min_order_units`;
        between orders it also asks for S wherever the gap to S is below `min_order_units` (the task
        orders nothing then), and for no stock only where S would order early. The orders are the
        same; the action is constant wherever it can be, so a policy fitted to it (a warm start)
        learns the target instead of a switch.
        """
        actions = self.line_setting(len(obs))
        actions[:, self._speed] = self._speed_action
        if self.standby_price_per_kwh is not None:
            d = self.decoder
            price = d.value(obs, "line.price_per_kwh")
            dear = price >= self.standby_price_per_kwh - d.tolerance("line.price_per_kwh")
            empty = d.stations_value(obs, "queue_parts") < 0.5
            actions[:, self._mode] = np.where(dear[:, None] & empty, ACTION_STANDBY, ACTION_RUN)
        # half the vibration's ratio to its threshold: above the task's 0.5 exactly where the rule
        # maintains, and graded, so that a policy fitted to it (a warm start) learns the threshold
        graded = 0.5 * np.nan_to_num(self.trigger.ratio(obs))
        actions[:, self._maintain] = np.where(
            self.trigger(obs), np.clip(graded, _SURE_REQUEST, ACTION_MAINTAIN), np.clip(graded, 0.0, MAINTAIN_ABOVE)
        )
        position = self.reorder.position(obs)
        quantity = self.reorder.order_at(position)
        largest = self.reorder.max_order_units
        if self.task.reorder == "order_up_to":
            # the target S where the rule orders or where S orders nothing (its gap is below the
            # task's least order); no stock only where S would order before the reorder point
            asked = self.reorder.order_up_to_units  # at most the largest target (checked)
            gap = asked - position
            quiet = gap < self.task.min_order_units - self.reorder.tolerance_units
            actions[:, self._order] = np.where((quantity > 0.0) | quiet, 2.0 * asked / largest - 1.0, -1.0)
        else:
            actions[:, self._order] = np.clip(quantity / largest, 0.0, 1.0)
        return actions
