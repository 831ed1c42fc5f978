"""The simulated plant: one SimPy environment holding the stations, jobs, grid, store and scenarios.

A `Plant` lives for one episode. `TwinLine` builds a fresh one at every reset, runs it under the
line's own rules for any warm-up, hands the agent its levers with `hand_over` (which also starts the
scenarios and sets the origin of the episode's KPIs), runs it with `run_until` and reads its counters
into frames.
"""

from __future__ import annotations

from collections.abc import Generator
from itertools import accumulate
from math import prod

import numpy as np
import simpy
from simpy.core import StopSimulation

from hardware.counters import Counters, derive_kpis
from hardware.interface import JobStatus, Kpis, Lever
from hardware.twin.grid import Grid
from hardware.twin.job import Job
from hardware.twin.lateness import LatenessBook
from hardware.twin.params import LineParams, ScenarioEvent, ScenarioKind
from hardware.twin.rng import exponential, uniform
from hardware.twin.station import State, Station
from hardware.twin.supply import Supply


class Plant:
    """All runtime state of one simulated episode."""

    def __init__(self, params: LineParams, seed: np.random.SeedSequence) -> None:
        self.env = simpy.Environment()
        self.params = params
        self.agent_dispatch = False  # the line's own rules run it until `hand_over`
        ss_stations, ss_demand, ss_grid, ss_supply, self.sensor_seed = seed.spawn(5)
        n_var = len(params.variants)
        self.changeover_s = params.changeover_time_s or tuple((0.0,) * n_var for _ in range(n_var))
        self.total_power_kw = 0.0
        self._energy_t = 0.0
        self.energy_kwh = 0.0
        self.energy_cost = 0.0
        self.co2_kg = 0.0
        self.state_time_s = [0.0] * len(State)  # closed intervals, summed over stations
        self.ops = 0  # operations finished, summed over stations
        self.ideal_busy_s = 0.0  # their nominal processing time
        self.scrapped_ops = 0
        self.failures = 0
        self.maintenances = 0
        self.health_consumed = 0.0
        self.health_restored = 0.0
        self.repair_cost = 0.0
        self.preventive_cost = 0.0
        self.stockouts = 0
        self.stockout_time_s = 0.0
        self.jobs_released = 0
        self.good_parts = 0
        self.scrap_parts = 0
        self.departures = 0
        self.flow_time_sum_s = 0.0
        self.lateness = LatenessBook()
        self.last_completion_s = 0.0
        self.wip = 0
        self._wip_area = 0.0
        self._wip_t = 0.0
        self.n_static = len(params.demand.jobs)
        self.job_step = np.zeros(self.n_static, dtype=np.int64)
        self.job_status = np.zeros(self.n_static, dtype=np.int8)
        self._next_id = self.n_static
        self._static_left = self.n_static
        self._demand_factors: list[float] = []  # active demand dips (factors below 1)
        self._origin: Counters | None = None  # counters at the episode's start (None: the start is time 0)
        self._origin_s = 0.0
        self._stop: simpy.Event | None = None
        self._deadline: simpy.Event | None = None
        self.grid = Grid(self.env, params.grid, np.random.default_rng(ss_grid), self.integrate_energy_now)
        self.supply = (
            Supply(
                self.env,
                params.supply,
                np.random.default_rng(ss_supply),
                self._on_delivery,
                auto_reorder=True,
            )
            if params.supply is not None
            else None
        )
        self.stations = [
            Station(self, i, sp, params.machines[sp.machine], np.random.default_rng(ss))
            for i, (sp, ss) in enumerate(zip(params.stations, ss_stations.spawn(len(params.stations)), strict=True))
        ]
        self.total_power_kw = sum(s.power_kw for s in self.stations)
        # separate streams, so a scenario's extra or dropped orders leave the base orders unchanged
        ss_base, ss_keep, ss_surge = ss_demand.spawn(3)
        base_gen = np.random.default_rng(ss_base)
        self._exp = exponential(base_gen)
        self._u = uniform(base_gen)
        self._keep = uniform(np.random.default_rng(ss_keep))
        self._surge_seeds = iter(ss_surge.spawn(len(params.scenarios)))
        self._mix = list(accumulate(v.mix for v in params.variants))
        self._routes = [params.route_of(v) for v in range(len(params.variants))]
        self._release_static_jobs()
        if params.demand.arrival_rate_per_h > 0:
            self.env.process(self._arrivals())

    def hand_over(self, levers: frozenset[Lever]) -> None:
        """Start the episode now: the agent takes `levers`, scenarios start, KPIs count from here.

        Scenario event times are relative to this instant, so a disruption falls in the episode
        however long the line ran before it.
        """
        self.agent_dispatch = Lever.DISPATCH in levers
        if self.supply is not None:
            self.supply.set_auto_reorder(Lever.REORDER not in levers)
        for ev in self.params.scenarios:
            self.env.process(self._scenario(ev))
        if self.env.now > 0:
            self._origin, self._origin_s = self.counters(), self.env.now

    def run_until(self, t_end: float) -> None:
        """Simulate up to `t_end` s, or until a decision for the agent comes up, if earlier."""
        env = self.env
        self._stop = env.event()
        self._stop.callbacks.append(self._on_stop)
        self._deadline = env.timeout(t_end - env.now)
        self._deadline.callbacks.append(self._on_stop)
        try:
            while True:
                env.step()
        except StopSimulation:
            pass
        finally:
            self._stop = self._deadline = None
        self.integrate_energy(env.now)

    def halt(self) -> None:
        """End the current `run_until` at this instant, once events already due now have run."""
        if self._stop is not None and not self._stop.triggered:
            self._stop.succeed()

    def _on_stop(self, event: simpy.Event) -> None:
        if event is self._stop or event is self._deadline:
            raise StopSimulation(None)

    def integrate_energy(self, now: float) -> None:
        """Add the energy, cost and CO2 of the line's power since the last call, up to `now`."""
        dt = now - self._energy_t
        if dt > 0:
            kwh = self.total_power_kw * dt / 3600.0
            self.energy_kwh += kwh
            self.energy_cost += kwh * self.grid.price_per_kwh
            self.co2_kg += kwh * self.grid.carbon_kg_per_kwh
            self._energy_t = now

    def integrate_energy_now(self) -> None:
        """Integrate energy up to the current clock (before the grid changes price or carbon)."""
        self.integrate_energy(self.env.now)

    def take_material(self, job: Job) -> bool:
        """Consume `job`'s raw material from the store; False if the store cannot supply it."""
        return self.supply is None or self.supply.take(job.material)

    def counters(self) -> Counters:
        """The running totals since time 0, open intervals (states, stockouts) closed at now."""
        now = self.env.now
        t = list(self.state_time_s)
        stockout_open = 0.0
        for st in self.stations:
            t[st.state] += now - st.since
            if st.stockout_since is not None:
                stockout_open += now - st.stockout_since
        supply = self.supply
        tardiness, weighted_tardiness = self.lateness.totals(now)
        return Counters(
            jobs_released=self.jobs_released,
            jobs_done=self.departures,
            good_parts=self.good_parts,
            scrap_parts=self.scrap_parts,
            flow_time_sum_s=self.flow_time_sum_s,
            wip_area_part_s=self._wip_area + self.wip * (now - self._wip_t),
            energy_kwh=self.energy_kwh,
            energy_cost=self.energy_cost,
            co2_kg=self.co2_kg,
            state_time_s=tuple(t),
            operations=self.ops,
            scrapped_operations=self.scrapped_ops,
            ideal_busy_s=self.ideal_busy_s,
            failures=self.failures,
            preventive_maintenances=self.maintenances,
            repair_cost=self.repair_cost,
            preventive_cost=self.preventive_cost,
            stockouts=self.stockouts,
            stockout_time_s=self.stockout_time_s + stockout_open,
            orders_placed=supply.orders_placed if supply else 0,
            material_ordered=supply.ordered_units if supply else 0.0,
            material_received=supply.received_units if supply else 0.0,
            stock_unit_h=supply.stock_unit_h() if supply else 0.0,
            tardiness_s=tardiness,
            weighted_tardiness_s=weighted_tardiness,
            tardy_jobs=self.lateness.tardy_jobs,
            health_consumed=self.health_consumed,
            health_restored=self.health_restored,
            wip_parts=self.wip,
            last_completion_s=self.last_completion_s,
        )

    def kpis(self, counters: Counters) -> Kpis:
        """The KPIs of the episode so far, counted from its start (`hand_over`), from `counters` read now."""
        if self._origin is not None:
            counters = counters.since(self._origin, self._origin_s)
        return derive_kpis(counters, self.env.now - self._origin_s, len(self.stations))

    def mark(self, job: Job, status: JobStatus) -> None:
        """Record where a job of the fixed job set is (other jobs are not tracked)."""
        if job.id < self.n_static:
            self.job_status[job.id] = status
            self.job_step[job.id] = job.step

    def release(self, variant: int, job_id: int, due_s: float, weight: float = 1.0) -> None:
        """Bring a new job into the system at its route's first station, or the backlog while that is full."""
        job = Job(job_id, variant, self.params, self._routes[variant], self.env.now, due_s, weight)
        self.lateness.open(job_id, due_s, weight)
        self.mark(job, JobStatus.QUEUED)
        self.jobs_released += 1
        self._count_wip(+1)
        self.stations[job.route[0]].admit(job)

    def depart(self, job: Job, good: bool) -> None:
        """Take `job` out of the system, finished (`good`) or scrapped."""
        now = self.env.now
        self._count_wip(-1)
        self.departures += 1
        self.flow_time_sum_s += now - job.arrived_s
        self.last_completion_s = now
        if job.id < self.n_static:
            self.mark(job, JobStatus.DONE if good else JobStatus.SCRAPPED)
            self._static_left -= 1
            if self._static_left == 0 and self.params.demand.arrival_rate_per_h == 0:
                self.halt()  # the job set is complete: nothing more will happen on this line
        self.lateness.close(job.id, job.due_s, job.weight, now)
        if good:
            self.good_parts += 1
        else:
            self.scrap_parts += 1

    def offer_open_decisions(self, finished: Station) -> None:
        """After an operation ends, re-offer stations the agent left idle with work waiting."""
        if any(s.open_for_dispatch() for s in self.stations if s is not finished):
            self.halt()

    def _count_wip(self, delta: int) -> None:
        now = self.env.now
        self._wip_area += self.wip * (now - self._wip_t)
        self._wip_t = now
        self.wip += delta

    def _on_delivery(self) -> None:
        for s in self.stations:
            if s.stockout_since is not None:
                s.poke()

    def _release_static_jobs(self) -> None:
        later = []
        for job_id, jp in enumerate(self.params.demand.jobs):
            variant = [v.name for v in self.params.variants].index(jp.variant)
            due = self.params.due_of(jp)
            if jp.release_s == 0:
                self.release(variant, job_id, due, jp.weight)
            else:
                later.append((jp.release_s, job_id, variant, due, jp.weight))
        if later:
            self.env.process(self._timed_releases(sorted(later)))

    def _timed_releases(
        self, releases: list[tuple[float, int, int, float, float]]
    ) -> Generator[simpy.Event, None, None]:
        for at, job_id, variant, due, weight in releases:
            yield self.env.timeout(at - self.env.now)
            self.release(variant, job_id, due, weight)

    def _arrivals(self) -> Generator[simpy.Event, None, None]:
        """Poisson orders at the base rate; a demand dip (factor < 1) keeps each with that probability."""
        rate_per_s = self.params.demand.arrival_rate_per_h / 3600.0
        while True:
            yield self.env.timeout(self._exp() / rate_per_s)
            variant = self._variant(self._u())
            if self._demand_factors and self._keep() >= prod(self._demand_factors):
                continue
            self._order(variant)

    def _surge(self, ev: ScenarioEvent) -> Generator[simpy.Event, None, None]:
        """Extra Poisson orders at (factor - 1) times the base rate for the surge's duration."""
        gen = np.random.default_rng(next(self._surge_seeds))
        gap, pick = exponential(gen), uniform(gen)
        rate_per_s = self.params.demand.arrival_rate_per_h * (ev.factor - 1.0) / 3600.0
        end = self.env.now + ev.duration_s
        while True:
            wait = gap() / rate_per_s
            if self.env.now + wait >= end:
                return
            yield self.env.timeout(wait)
            self._order(self._variant(pick()))

    def _variant(self, u: float) -> int:
        pick = u * self._mix[-1]
        return next(i for i, c in enumerate(self._mix) if pick < c)

    def _order(self, variant: int) -> None:
        self._next_id += 1
        self.release(variant, self._next_id - 1, self.env.now + self.params.demand.due_date_allowance_s)

    def _scenario(self, ev: ScenarioEvent) -> Generator[simpy.Event, None, None]:
        yield self.env.timeout(ev.start_s)
        self._apply(ev, on=True)
        yield self.env.timeout(ev.duration_s)
        self._apply(ev, on=False)

    def _apply(self, ev: ScenarioEvent, on: bool) -> None:
        if ev.kind is ScenarioKind.SUPPLIER_OUTAGE and self.supply is not None:
            if on:
                self.supply.begin_outage()
            else:
                self.supply.end_outage()
        elif ev.kind is ScenarioKind.DEMAND_SURGE and ev.factor > 1.0:
            if on:  # a line without open arrivals refuses a surge at load
                self.env.process(self._surge(ev))
        elif ev.kind is ScenarioKind.DEMAND_SURGE:
            if on:
                self._demand_factors.append(ev.factor)
            else:
                self._demand_factors.remove(ev.factor)
        elif ev.kind is ScenarioKind.PRICE_SPIKE:
            if on:
                self.grid.add_factor(ev.factor)
            else:
                self.grid.remove_factor(ev.factor)
        elif ev.kind is ScenarioKind.BREAKDOWN_WAVE:
            names = set(ev.stations)
            for s in self.stations:
                if not names or s.name in names:
                    s.set_hazard_factor(ev.factor, on)
