"""Maintenance: decide from noisy sensors when to maintain each station."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym

from envs.base import delta, health_used
from envs.setpoint import SetpointTask
from envs.weights import WEAR_COST_PER_HEALTH
from hardware import Command, Frame, Lever, LineSpec


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
    `MultiBinary(n_stations)`: 1 requests preventive maintenance of that station now (after its
    current part; ignored while it is under repair or maintenance).

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
    `line`, `scenario`, `control_period_s` (default 300), `weights` (`MaintenanceWeights` fields).

    ## Version History
    v0: initial version.
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

    def __init__(self, spec: LineSpec, weights: Mapping[str, Any] | None = None) -> None:
        super().__init__(spec, weights)
        self.action_space = gym.spaces.MultiBinary(len(self._acts))

    def command(self, action: Any, frame: Frame) -> Command:
        """Request maintenance where the action is 1; anything but 0 or 1 is invalid and requests nothing."""
        return self.setpoints(self.checked(action))

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
