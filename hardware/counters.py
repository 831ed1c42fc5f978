"""Cumulative counters a line keeps, and the one derivation of `Kpis` from them.

A plant counts what happened (parts, energy, time in each machine state, cost) since some origin; a
KPI such as throughput or OEE is a ratio of counter differences over a window. The twin and any
client of a real line derive KPIs here, from the counters' change since the episode began, so an
episode's KPIs do not depend on how long the line ran before it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from hardware.interface import Frame, Kpis, StationState

_OFF, _STANDBY, _WARMUP = int(StationState.OFF), int(StationState.STANDBY), int(StationState.WARMUP)
_BUSY, _CHANGEOVER = int(StationState.BUSY), int(StationState.CHANGEOVER)
_DOWN, _MAINTENANCE = int(StationState.DOWN), int(StationState.MAINTENANCE)


@dataclass(frozen=True)
class Counters:
    """Running totals since the line's own origin; times in s, energy in kWh, money in the tariff's unit.

    Every field is a cumulative count except the two levels at the end (`wip_parts`,
    `last_completion_s`), which are read as they are now.
    """

    jobs_released: int = 0
    jobs_done: int = 0  # departures, good or scrapped
    good_parts: int = 0
    scrap_parts: int = 0
    flow_time_sum_s: float = 0.0  # arrival-to-departure time summed over departures
    wip_area_part_s: float = 0.0  # time integral of the number of jobs in the system
    energy_kwh: float = 0.0
    energy_cost: float = 0.0
    co2_kg: float = 0.0
    state_time_s: tuple[float, ...] = (0.0,) * len(StationState)  # per `StationState`, summed over stations
    operations: int = 0  # operations finished, summed over stations
    scrapped_operations: int = 0
    ideal_busy_s: float = 0.0  # nominal processing time of the finished operations
    failures: int = 0
    preventive_maintenances: int = 0
    repair_cost: float = 0.0
    preventive_cost: float = 0.0
    stockouts: int = 0
    stockout_time_s: float = 0.0
    orders_placed: int = 0
    material_ordered: float = 0.0
    material_received: float = 0.0
    stock_unit_h: float = 0.0
    tardiness_s: float = 0.0  # lateness accrued by all jobs, departed or open
    weighted_tardiness_s: float = 0.0
    tardy_jobs: int = 0  # jobs that departed late
    health_consumed: float = 0.0  # machine health worn off, summed over stations (1 = one new machine)
    health_restored: float = 0.0  # health given back by repairs and preventive maintenance, summed over stations
    wip_parts: int = 0  # level: jobs in the system now
    last_completion_s: float = 0.0  # level: time of the latest departure since the counters' origin

    def since(self, start: Counters, start_s: float) -> Counters:
        """What was counted between `start`, read at clock time `start_s`, and these counters.

        `wip_parts` is as it is now; `last_completion_s` counts from `start_s` (0 when nothing
        departed since).
        """
        changed = {name: getattr(self, name) - getattr(start, name) for name in _CUMULATIVE if name != "state_time_s"}
        states = tuple(a - b for a, b in zip(self.state_time_s, start.state_time_s, strict=True))
        last = max(0.0, self.last_completion_s - start_s)
        return Counters(**changed, state_time_s=states, wip_parts=self.wip_parts, last_completion_s=last)


LEVELS = ("wip_parts", "last_completion_s")  # read as they are now, not counted up
_CUMULATIVE = tuple(f.name for f in fields(Counters) if f.name not in LEVELS)


def derive_kpis(c: Counters, elapsed_s: float, n_stations: int) -> Kpis:
    """KPIs over a window of `elapsed_s` seconds from the counters' change over it (`Counters.since`).

    Ratios follow their usual definitions: throughput = good parts per hour; OEE = availability x
    performance x quality with planned time = station time less off, standby and planned maintenance,
    run time = planned time less downtime, changeovers and warm-ups. Performance counts each
    operation's ideal time at the machine's nominal (rated) speed, as a plant's ideal cycle time
    is: a line run above nominal speed shows a performance, and so an OEE, above 1. Energy cost and
    CO2 per good part are NaN over a window without a good part: 0 would score it best on a KPI
    where less is better.
    """
    t = c.state_time_s
    planned = n_stations * elapsed_s - t[_OFF] - t[_STANDBY] - t[_MAINTENANCE]
    run = planned - t[_DOWN] - t[_CHANGEOVER] - t[_WARMUP]
    availability = run / planned if planned > 0 else 0.0
    performance = c.ideal_busy_s / run if run > 0 else 0.0
    quality = (c.operations - c.scrapped_operations) / c.operations if c.operations else 0.0
    good = c.good_parts
    return Kpis(
        good_parts=good,
        scrap_parts=c.scrap_parts,
        jobs_released=c.jobs_released,
        jobs_done=c.jobs_done,
        throughput_per_h=good * 3600.0 / elapsed_s if elapsed_s > 0 else 0.0,
        wip_parts=c.wip_parts,
        wip_mean_parts=c.wip_area_part_s / elapsed_s if elapsed_s > 0 else float(c.wip_parts),
        flow_time_mean_s=c.flow_time_sum_s / c.jobs_done if c.jobs_done else 0.0,
        energy_kwh=c.energy_kwh,
        energy_cost=c.energy_cost,
        co2_kg=c.co2_kg,
        energy_cost_per_good_part=c.energy_cost / good if good else math.nan,
        co2_kg_per_good_part=c.co2_kg / good if good else math.nan,
        busy_time_s=t[_BUSY],
        changeover_time_s=t[_CHANGEOVER],
        planned_downtime_s=t[_MAINTENANCE],
        unplanned_downtime_s=t[_DOWN],
        failures=c.failures,
        preventive_maintenances=c.preventive_maintenances,
        repair_cost=c.repair_cost,
        preventive_cost=c.preventive_cost,
        stockouts=c.stockouts,
        stockout_time_s=c.stockout_time_s,
        orders_placed=c.orders_placed,
        material_ordered=c.material_ordered,
        material_received=c.material_received,
        stock_unit_h=c.stock_unit_h,
        tardiness_s=c.tardiness_s,
        weighted_tardiness_s=c.weighted_tardiness_s,
        tardy_jobs=c.tardy_jobs,
        health_consumed=c.health_consumed,
        health_restored=c.health_restored,
        last_completion_s=c.last_completion_s,
        availability=availability,
        performance=performance,
        quality=quality,
        oee=availability * performance * quality,
    )


def window_kpis(start: Frame, end: Frame, n_stations: int) -> Kpis:
    """KPIs over the window from `start` to `end`, two frames of one line (e.g. the scored part of a run).

    Raises ValueError when either frame carries no counters or `end` precedes `start`.
    """
    if start.counters is None or end.counters is None:
        raise ValueError("window KPIs: the line's frames carry no counters, only KPIs counted from the episode's start")
    if end.time < start.time:
        raise ValueError(f"window KPIs: the window ends at {end.time} s, before it starts at {start.time} s")
    return derive_kpis(end.counters.since(start.counters, start.time), end.time - start.time, n_stations)
