"""The whole factory: every setpoint lever at once, with a vector of objectives."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import astuple, dataclass
from typing import Any, ClassVar

import numpy as np

from envs.base import delta, health_used, maintenance_spend
from envs.setpoint import SetpointTask
from envs.weights import (
    DOWNTIME_COST_PER_H,
    HOLDING_COST_PER_UNIT_H,
    ORDER_COST,
    PART_VALUE,
    SCRAP_COST,
    STOCKOUT_COST_PER_H,
    TARDINESS_COST_PER_H,
    WEAR_COST_PER_HEALTH,
)
from hardware import Frame, Lever, Line, LineSpec, SensorSpec

OBJECTIVES = (
    "throughput",
    "energy_cost",
    "co2",
    "downtime",
    "tardiness",
    "scrap",
    "maintenance_cost",
    "wear",
    "holding",
    "ordering",
    "stockout",
)
_SIGN = np.array([1.0] + [-1.0] * (len(OBJECTIVES) - 1))  # throughput is a good, the rest are costs


@dataclass(frozen=True)
class FactoryWeights:
    """Prices of the objectives in the scalar reward, in `OBJECTIVES` order.

    Each lever's costs are priced as in its single-lever task (Speed: scrap, repairs and wear;
    Maintenance: repair and maintenance cost; Inventory: holding, ordering and stockouts), downtime
    at one rate whether planned or not, so no lever is free.
    """

    throughput: float = PART_VALUE  # per good part
    energy_cost: float = 1.0  # per unit of energy cost
    co2: float = 0.1  # per kg CO2
    downtime: float = DOWNTIME_COST_PER_H  # per hour of downtime, planned and unplanned
    tardiness: float = TARDINESS_COST_PER_H  # per hour of lateness
    scrap: float = SCRAP_COST  # per scrapped part, on top of its lost value
    maintenance_cost: float = 1.0  # per unit of corrective repair and preventive maintenance cost
    wear: float = WEAR_COST_PER_HEALTH  # per unit of machine health used (worn off less restored)
    holding: float = HOLDING_COST_PER_UNIT_H  # per unit-hour of raw stock held
    ordering: float = ORDER_COST  # per order placed
    stockout: float = STOCKOUT_COST_PER_H  # per station-hour held up by an empty store


class FactoryTask(SetpointTask):
    """Speed, mode, maintenance and reorders together; dispatch follows the line's rule.

    ## Description
    All setpoint levers of the line at once (dispatch is event-driven: use Scheduling for it).

    ## Action Space
    `Box(-1, 1, (3 n_stations + 1,), float32)` over the line's actuators in spec order: per
    station speed, mode and maintain, then the reorder quantity; decoded as in `SetpointTask`.

    ## Observation Space
    `Box(-1, 1)`: every sensor of the line, scaled, with validity flags, and the time of day.

    ## Rewards
    `info["objectives"]` holds the step's vector in `OBJECTIVES` order: good parts, energy cost, kg
    CO2, downtime hours, lateness hours, scrapped parts, repair and maintenance cost, net health used
    (worn off less restored), raw-stock unit-hours, orders placed, stockout station-hours. The
    reward is the weighted sum,
    `throughput * parts` minus every other objective times its weight (`FactoryWeights`).

    ## Starting State
    A line as it runs: the episode begins after a warm-up under the line's own rules (its length
    drawn as the line definition's `start` says); `start="cold"` begins at time 0 with empty
    buffers and new machines.

    ## Episode End
    Never terminates; truncated after one day by default.

    ## Arguments
    `line`, `scenario`, `control_period_s` (default 60), `weights` (`FactoryWeights` fields).

    ## Version History
    v0: initial version.
    """

    weights_class: ClassVar[type] = FactoryWeights
    weights: FactoryWeights
    levers: ClassVar[frozenset[Lever]] = frozenset({Lever.SPEED, Lever.MODE, Lever.MAINTENANCE, Lever.REORDER})
    sensors: ClassVar[tuple[str, ...]] = ()
    clock: ClassVar[bool] = True

    def __init__(self, spec: LineSpec, weights: Mapping[str, Any] | None = None) -> None:
        super().__init__(spec, weights)
        self._signed = np.array(astuple(self.weights)) * _SIGN
        self._objectives = np.zeros(len(OBJECTIVES))

    def start(self, line: Line, frame: Frame) -> Frame:
        """A new episode has no step behind it yet."""
        self._objectives = np.zeros(len(OBJECTIVES))
        return super().start(line, frame)

    def objectives(self, before: Frame, after: Frame) -> np.ndarray:
        """The step's objective vector, in `OBJECTIVES` order."""
        b, a = before.kpis, after.kpis
        down_s = delta(b, a, "planned_downtime_s") + delta(b, a, "unplanned_downtime_s")
        return np.array(
            [
                delta(b, a, "good_parts"),
                delta(b, a, "energy_cost"),
                delta(b, a, "co2_kg"),
                down_s / 3600.0,
                delta(b, a, "tardiness_s") / 3600.0,
                delta(b, a, "scrap_parts"),
                maintenance_spend(b, a),
                health_used(b, a),
                delta(b, a, "stock_unit_h"),
                delta(b, a, "orders_placed"),
                delta(b, a, "stockout_time_s") / 3600.0,
            ]
        )

    def reward(self, before: Frame, after: Frame) -> tuple[float, dict[str, float]]:
        """The weighted sum of the objectives."""
        self._objectives = self.objectives(before, after)
        parts = self._signed * self._objectives
        terms = {f"reward/{name}": float(v) for name, v in zip(OBJECTIVES, parts, strict=True)}
        return float(parts.sum()), terms

    def info(self, frame: Frame) -> dict[str, Any]:
        """The objective vector of the last step."""
        return {"objectives": self._objectives.copy()}

    def _observes(self, sensor: SensorSpec) -> bool:
        return True
