"""Line speed: trade output against energy, scrap and wear."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from envs.base import delta, health_used, maintenance_spend
from envs.setpoint import SetpointTask
from envs.weights import DOWNTIME_COST_PER_H, PART_VALUE, SCRAP_COST, WEAR_COST_PER_HEALTH
from hardware import Frame, Lever


@dataclass(frozen=True)
class SpeedWeights:
    """Prices of the speed task's reward terms."""

    part_value: float = PART_VALUE  # per good part
    energy: float = 1.0  # per unit of energy cost
    scrap_cost: float = SCRAP_COST  # per scrapped part, on top of its lost value
    downtime_cost_per_h: float = DOWNTIME_COST_PER_H  # per hour of unplanned downtime (summed over stations)
    maintenance_cost: float = 1.0  # per unit of repair and preventive maintenance cost
    wear_cost_per_health: float = WEAR_COST_PER_HEALTH  # per unit of machine health used (worn off less restored)


class SpeedTask(SetpointTask):
    """Speed setpoints per station, every control period.

    ## Description
    Faster stations finish parts sooner but draw more power, wear faster (so fail more) and scrap
    more. Dispatch, maintenance and reorders follow the line's rules.

    ## Action Space
    `Box(-1, 1, (n_stations,), float32)`, -1, 0 and 1 set each station's lower speed limit,
    nominal speed and upper limit (linear in between).

    ## Observation Space
    `Box(-1, 1)`: per station its state, queue, speed, vibration, bearing temperature and motor
    current, then line WIP and electricity price, each scaled by its spec range to [0, 1]; each
    instrument that can drop out adds a validity flag (its value reads 0 when missing).

    ## Rewards
    `part_value * good parts - energy * energy cost - scrap_cost * scrapped parts
    - downtime_cost_per_h * unplanned downtime hours - maintenance_cost * repair cost
    - wear_cost_per_health * net health used` (worn off less what repairs restore), all as changes
    over the step, so that running fast pays for the machine life it uses and the repairs it
    brings. The terms are in `info` under `reward/...`.

    ## Starting State
    A line as it runs: the episode begins after a warm-up under the line's own rules (its length
    drawn as the line definition's `start` says), with buffers, backlog, machine health, stock and
    time of day as they come; `start="cold"` begins at time 0 with empty buffers and new machines.

    ## Episode End
    Never terminates; truncated by the registered time limit (one 8-hour shift by default).

    ## Arguments
    `line`, `scenario`, `control_period_s` (default 60), `weights` (`SpeedWeights` fields).

    ## Version History
    v0: initial version.
    """

    levers: ClassVar[frozenset[Lever]] = frozenset({Lever.SPEED})
    sensors: ClassVar[tuple[str, ...]] = (
        "state",
        "queue_parts",
        "speed_ratio",
        "vibration_mm_s",
        "bearing_temp_c",
        "motor_current_a",
        "wip_parts",
        "price_per_kwh",
    )
    weights_class: ClassVar[type] = SpeedWeights
    weights: SpeedWeights

    def reward(self, before: Frame, after: Frame) -> tuple[float, dict[str, float]]:
        """Value of good parts minus energy, scrap, downtime, repair and wear costs."""
        w, b, a = self.weights, before.kpis, after.kpis
        terms = {
            "reward/parts": w.part_value * delta(b, a, "good_parts"),
            "reward/energy": -w.energy * delta(b, a, "energy_cost"),
            "reward/scrap": -w.scrap_cost * delta(b, a, "scrap_parts"),
            "reward/downtime": -w.downtime_cost_per_h * delta(b, a, "unplanned_downtime_s") / 3600.0,
            "reward/maintenance": -w.maintenance_cost * maintenance_spend(b, a),
            "reward/wear": -w.wear_cost_per_health * health_used(b, a),
        }
        return sum(terms.values()), terms
