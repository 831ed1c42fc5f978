"""Energy: run, idle or switch off stations and set their speed under a time-of-use tariff."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from envs.base import delta, health_used, maintenance_spend
from envs.setpoint import SetpointTask
from envs.weights import PART_VALUE, SCRAP_COST, TARDINESS_COST_PER_H, WEAR_COST_PER_HEALTH
from hardware import Frame, Lever


@dataclass(frozen=True)
class EnergyWeights:
    """Prices of the energy task's reward terms."""

    part_value: float = PART_VALUE  # per good part
    energy: float = 1.0  # per unit of energy cost
    tardiness_cost_per_h: float = TARDINESS_COST_PER_H  # per hour of lateness, summed over orders (open ones too)
    scrap_cost: float = SCRAP_COST  # per scrapped part, on top of its lost value
    maintenance_cost: float = 1.0  # per unit of repair and preventive maintenance cost
    wear_cost_per_health: float = WEAR_COST_PER_HEALTH  # per unit of machine health used (worn off less restored)


class EnergyTask(SetpointTask):
    """Per-station mode (off / standby / run) and speed under the tariff, keeping due dates.

    ## Description
    Electricity is cheap at night and dear in the evening peak, with random price spikes. The
    agent can slow down, idle in standby (quick warm-up) or switch off (long warm-up) stations,
    while orders keep arriving with due dates.

    ## Action Space
    `Box(-1, 1, (2 n_stations,), float32)`: for each station (in line order) its speed (-1, 0, 1:
    lower limit, nominal, upper limit), then its mode: below -2/3 off, below -1/3 standby, else run.

    ## Observation Space
    `Box(-1, 1)`: per station its state, queue and speed; line WIP, electricity price and carbon
    intensity; then sine and cosine of the time of day.

    ## Rewards
    `part_value * good parts - energy * energy cost - tardiness_cost_per_h * added lateness hours
    - scrap_cost * scrapped parts - maintenance_cost * repair cost - wear_cost_per_health * net
    health used` (worn off less what repairs restore). Lateness of open orders counts as it
    accrues, so idling cannot hide late orders; scrap, repairs and wear are charged, so running fast
    in cheap hours is not free.

    ## Starting State
    A line as it runs: the episode begins after a warm-up under the line's own rules (its length
    drawn as the line definition's `start` says), with buffers, backlog, machine health, stock and
    time of day as they come; `start="cold"` begins at time 0 with empty buffers and new machines.

    ## Episode End
    Never terminates; truncated after one day by default.

    ## Arguments
    `line`, `scenario`, `control_period_s` (default 120), `weights` (`EnergyWeights` fields).

    ## Version History
    v0: initial version.
    """

    levers: ClassVar[frozenset[Lever]] = frozenset({Lever.SPEED, Lever.MODE})
    sensors: ClassVar[tuple[str, ...]] = (
        "state",
        "queue_parts",
        "speed_ratio",
        "wip_parts",
        "price_per_kwh",
        "carbon_kg_per_kwh",
    )
    clock: ClassVar[bool] = True
    weights_class: ClassVar[type] = EnergyWeights
    weights: EnergyWeights

    def reward(self, before: Frame, after: Frame) -> tuple[float, dict[str, float]]:
        """Value of good parts minus energy cost, lateness, scrap, repairs and wear."""
        w, b, a = self.weights, before.kpis, after.kpis
        terms = {
            "reward/parts": w.part_value * delta(b, a, "good_parts"),
            "reward/energy": -w.energy * delta(b, a, "energy_cost"),
            "reward/tardiness": -w.tardiness_cost_per_h * delta(b, a, "tardiness_s") / 3600.0,
            "reward/scrap": -w.scrap_cost * delta(b, a, "scrap_parts"),
            "reward/maintenance": -w.maintenance_cost * maintenance_spend(b, a),
            "reward/wear": -w.wear_cost_per_health * health_used(b, a),
        }
        return sum(terms.values()), terms
