"""Maintenance: decide from noisy sensors when to maintain each station."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from envs.base import delta, health_used, warn_unused
from envs.setpoint import SetpointTask
from envs.weights import WEAR_COST_PER_HEALTH, finite_number
from hardware import Command, Frame, Lever, LineSpec

ACTIONS = ("binary", "box", "due_box")  # the action space's kind, see `MaintenanceTask`


@dataclass(frozen=True)
class MaintenanceWeights:
    """Prices of the maintenance task's reward terms."""

    repair: float = 1.0  # per unit of corrective repair cost (the line's repair_cost per failure)
    preventive: float = 1.0  # per unit of preventive maintenance cost
    planned_downtime_cost_per_h: float = 150.0
    unplanned_downtime_cost_per_h: float = 400.0
    wear_cost_per_health: float = WEAR_COST_PER_HEALTH  # per unit of machine health used (worn off less restored)


class MaintenanceTask(SetpointTask):
    """Per-station "maintain now" from vibration, temperature, current and time since maintenance.

    ## Description
    Machines wear with use; worn machines fail more often and show it in their instruments. A
    failure means a long, costly repair; preventive maintenance is short, cheaper and planned.

    ## Action Space
    `MultiBinary(n_stations)` (`action="binary"`, the default): 1 requests preventive maintenance
    of that station now (after its current part; ignored while it is under repair or
    maintenance). `action="box"`: `Box(-1, 1, (n_stations,))`, a component above 0.5 requests it,
    so a Gaussian policy centred on 0 starts out rarely maintaining (its spread, e.g. PPO's
    `log_std_init`, sets how rarely) instead of requesting at half of all decisions.
    `action="due_box"`: `Box(-1, 1, (n_stations,))`, each component sets when its station is due,
    `(a + 1) / 2 * max_due_h` hours since its last maintenance or repair, and requests it once its
    reading reaches that (a >= 1: not at all; -1: now). Any request at any state is still one
    action away, but a policy centred on 0 starts as a fixed-interval rule of `max_due_h / 2`
    hours and learns when to deviate from it. A component that is not a finite number, or a
    reading that is missing, requests nothing.

    ## Observation Space
    `Box(-1, 1)`: per station its state, vibration RMS, bearing temperature, motor current (each
    with a validity flag for dropouts) and hours since its last maintenance or repair.

    ## Rewards
    `-(repair * repair cost + preventive * maintenance cost + planned_downtime_cost_per_h *
    planned downtime hours + unplanned_downtime_cost_per_h * unplanned downtime hours +
    wear_cost_per_health * net health used)`.

    ## Starting State
    A line as it runs: the episode begins after a warm-up under the line's own rules (its length
    drawn as the line definition's `start` says), with buffers, backlog, machine health, stock and
    time of day as they come; `start="cold"` begins at time 0 with empty buffers and new machines.

    ## Episode End
    Never terminates; truncated after one week by default.

    ## Arguments
    `line`, `scenario`, `control_period_s` (default 300), `weights` (`MaintenanceWeights` fields),
    `action` ("binary", "box" or "due_box"), `max_due_h` (default 200; due times span 0 to this, h;
    `"due_box"` only, another value with another action is named in a warning).

    ## Version History
    v0: initial version; `action="box"` and `"due_box"` added as options, the default unchanged.
    """

    weights_class: ClassVar[type] = MaintenanceWeights
    weights: MaintenanceWeights
    levers: ClassVar[frozenset[Lever]] = frozenset({Lever.MAINTENANCE})
    sensors: ClassVar[tuple[str, ...]] = (
        "state",
        "vibration_mm_s",
        "bearing_temp_c",
        "motor_current_a",
        "since_maintenance_h",
    )

    def __init__(
        self,
        spec: LineSpec,
        weights: Mapping[str, Any] | None = None,
        action: str = "binary",
        max_due_h: float = 200.0,
    ) -> None:
        super().__init__(spec, weights)
        if action not in ACTIONS:
            raise ValueError(f"action must be one of {', '.join(ACTIONS)}, got {action!r}")
        if not (finite_number(max_due_h) and max_due_h > 0):
            raise ValueError(f"max_due_h must be a finite number > 0, got {max_due_h!r}")
        if action != "due_box":
            warn_unused("max_due_h", max_due_h, 200.0, "action='due_box'")
        self.action_kind = action
        self.max_due_h = float(max_due_h)
        if action == "binary":
            self.action_space = gym.spaces.MultiBinary(len(self._acts))
        self._since = [spec.sensor_index(f"{s}.since_maintenance_h") for s in spec.stations]

    def command(self, action: Any, frame: Frame) -> Command:
        """Request maintenance where the action says so (see Action Space); invalid components request nothing."""
        if self.action_kind == "box":
            return super().command(action, frame)
        if self.action_kind == "binary":
            return self.setpoints(self.checked(action))
        a, valid = self.parse_action(action)
        if not valid.all():
            self.mark_invalid()
        a = np.where(valid, a, 1.0).clip(-1.0, 1.0)
        due = (frame.values[self._since] >= (a + 1.0) / 2.0 * self.max_due_h) & (a < 1.0)
        return self.setpoints(due.astype(float))

    def reward(self, before: Frame, after: Frame) -> tuple[float, dict[str, float]]:
        """Minus corrective, preventive, downtime and wear costs."""
        w, b, a = self.weights, before.kpis, after.kpis
        terms = {
            "reward/repair": -w.repair * delta(b, a, "repair_cost"),
            "reward/preventive": -w.preventive * delta(b, a, "preventive_cost"),
            "reward/planned_downtime": -w.planned_downtime_cost_per_h * delta(b, a, "planned_downtime_s") / 3600.0,
            "reward/unplanned_downtime": -w.unplanned_downtime_cost_per_h
            * delta(b, a, "unplanned_downtime_s")
            / 3600.0,
            "reward/wear": -w.wear_cost_per_health * health_used(b, a),
        }
        return sum(terms.values()), terms
