"""The factory baseline: the plant engineer's rules for every setpoint lever at once."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from agents.baseline import Baseline, action_positions
from agents.inventory_rules import ReorderPoint
from agents.maintenance_rules import Thresholds, VibrationTrigger
from envs.factory import FactoryTask
from envs.setpoint import ACTION_MAINTAIN
from hardware import Lever


class FactoryRules(Baseline):
    """Factory: nominal speed, always run, condition-based maintenance and (s, S) reorders.

    Args:
        env: a Factory env.
        threshold_mm_s: vibration RMS threshold in mm/s, see `VibrationTrigger`.
        reorder_point_units: s, see `ReorderPoint`.
        order_up_to_units: S, see `ReorderPoint`.
    """

    tasks = (FactoryTask,)
    task: FactoryTask

    def __init__(
        self,
        env: gym.Env[Any, Any],
        threshold_mm_s: Thresholds,
        reorder_point_units: float,
        order_up_to_units: float,
    ) -> None:
        super().__init__(env)
        self.trigger = VibrationTrigger(self.task, threshold_mm_s)
        self.reorder = ReorderPoint(self.task, reorder_point_units, order_up_to_units)
        self._maintain = action_positions(self.task, Lever.MAINTENANCE)
        (self._order,) = action_positions(self.task, Lever.REORDER)

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Zero speed and mode; maintain and reorder components from the two rules."""
        actions = self.line_setting(len(obs))
        actions[:, self._maintain] = np.where(self.trigger(obs), ACTION_MAINTAIN, 0.0)
        actions[:, self._order] = np.clip(self.reorder(obs) / self.reorder.max_order_units, 0.0, 1.0)
        return actions
