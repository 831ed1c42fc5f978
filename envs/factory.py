"""The whole factory: every setpoint lever at once, with a vector of objectives."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import astuple, dataclass
from typing import Any, ClassVar

import numpy as np

from envs.base import delta
from envs.setpoint import SetpointTask
from hardware import Frame, Lever, Line, LineSpec, SensorSpec

OBJECTIVES = ("throughput", "energy_cost", "co2", "downtime", "tardiness")


@dataclass(frozen=True)
class FactoryWeights:
    """Weights of the objectives in the scalar reward, in `OBJECTIVES` order."""

    throughput: float = 12.0  # per good part
    energy_cost: float = 1.0  # per unit of energy cost
    co2: float = 0.1  # per kg CO2
    downtime: float = 300.0  # per hour of downtime, planned and unplanned
    tardiness: float = 20.0  # per hour of lateness


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
    `info["objectives"]` holds the step's vector (good parts, energy cost, kg CO2, downtime hours,
    lateness hours); the reward is `throughput * parts - energy_cost * cost - co2 * kg -
    downtime * hours - tardiness * hours`.

    ## Starting State
    The line at time 0.

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
        self._signed = np.array(astuple(self.weights)) * np.array([1.0, -1.0, -1.0, -1.0, -1.0])
        self._objectives = np.zeros(len(OBJECTIVES))

    def start(self, line: Line, frame: Frame) -> Frame:
        """A new episode has no step behind it yet."""
        self._objectives = np.zeros(len(OBJECTIVES))
        return frame

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
