"""The whole factory: every setpoint lever at once, with a vector of objectives."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import astuple, dataclass
from typing import Any, ClassVar

import numpy as np

from envs.base import delta, health_used, maintenance_spend, warn_unused
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
    finite_number,
)
from hardware import Command, Frame, Lever, Line, LineSpec, SensorSpec

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
REORDER_ACTIONS = ("quantity", "order_up_to")  # what the reorder component means, see `FactoryTask`


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
    station speed, mode and maintain, then the reorder component; decoded as in `SetpointTask`.
    With `reorder="quantity"` (the default) the reorder component is the quantity, as there. With
    `reorder="order_up_to"` it is a target stock position (on hand plus on order), `(a + 1) / 2`
    of the largest order (so 0 is half of it): the task orders the gap to the target when the gap
    is at least `min_order_units` (never more than the largest order; nothing when the position
    cannot be read). Holding one value is then an (s, S) rule with S the target and
    s = S - `min_order_units`, so an untrained policy reorders as a plant does instead of at every
    other tick, and a rule's (s, S) orders are exact when S - s >= `min_order_units`.

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
    `line`, `scenario`, `control_period_s` (default 60), `weights` (`FactoryWeights` fields),
    `reorder` ("quantity" or "order_up_to"), `min_order_units` (default 0; the smallest gap an
    order-up-to target orders, material units; with quantities it is named in a warning).

    ## Version History
    v0: initial version; `reorder="order_up_to"` added as an option, the default unchanged.
    """

    weights_class: ClassVar[type] = FactoryWeights
    weights: FactoryWeights
    levers: ClassVar[frozenset[Lever]] = frozenset({Lever.SPEED, Lever.MODE, Lever.MAINTENANCE, Lever.REORDER})
    sensors: ClassVar[tuple[str, ...]] = ()
    clock: ClassVar[bool] = True

    def __init__(
        self,
        spec: LineSpec,
        weights: Mapping[str, Any] | None = None,
        reorder: str = "quantity",
        min_order_units: float = 0.0,
    ) -> None:
        super().__init__(spec, weights)
        if reorder not in REORDER_ACTIONS:
            raise ValueError(f"reorder must be one of {', '.join(REORDER_ACTIONS)}, got {reorder!r}")
        if not (finite_number(min_order_units) and min_order_units >= 0):
            raise ValueError(f"min_order_units must be a finite number >= 0, got {min_order_units!r}")
        if reorder == "quantity":
            warn_unused("min_order_units", min_order_units, 0.0, "reorder='order_up_to'")
        self.reorder = reorder
        self.min_order_units = float(min_order_units)
        self._signed = np.array(astuple(self.weights)) * _SIGN
        self._objectives = np.zeros(len(OBJECTIVES))
        if reorder == "order_up_to":
            orders = [k for k, lever in enumerate(self._lever) if lever is Lever.REORDER]
            if len(orders) != 1:
                raise ValueError(
                    f'reorder="order_up_to" needs the line\'s one reorder lever; line {spec.name!r} has none'
                )
            (self._order,) = orders
            self._position = [spec.sensor_index("line.stock_units"), spec.sensor_index("line.on_order_units")]

    def command(self, action: Any, frame: Frame) -> Command:
        """Decode as `SetpointTask` does; with `reorder="order_up_to"` order the gap to the target position."""
        _, valid = self.parse_action(action)
        a = self.checked(action).clip(-1.0, 1.0)
        command = super().command(a, frame)
        if self.reorder == "quantity" or command.setpoints is None:
            return command
        if not valid[self._order]:  # an invalid target orders nothing, like an invalid quantity
            setpoints = command.setpoints.copy()
            setpoints[self._acts[self._order]] = 0.0
            return Command(setpoints=setpoints, dispatch=command.dispatch)
        largest = float(self._high[self._order])
        gap = (a[self._order] + 1.0) / 2.0 * largest - float(np.sum(frame.values[self._position]))
        setpoints = command.setpoints.copy()
        setpoints[self._acts[self._order]] = min(gap, largest) if gap >= max(self.min_order_units, 1e-9) else 0.0
        return Command(setpoints=setpoints, dispatch=command.dispatch)

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
