"""The simulated plant: one SimPy environment holding the stations, jobs, grid, store and scenarios.

A `Plant` lives for one episode. `TwinLine` builds a fresh one at every reset, runs it with
`run_until` and reads its counters into frames.
"""

from __future__ import annotations

from collections.abc import Generator
from itertools import accumulate
from math import prod

import numpy as np
import simpy
from simpy.core import StopSimulation

from hardware.interface import JobStatus, Lever
from hardware.twin.grid import Grid
from hardware.twin.params import LineParams, ScenarioEvent, ScenarioKind
from hardware.twin.rng import exponential, uniform
from hardware.twin.station import Station
from hardware.twin.supply import Supply


class Job:
    """One part travelling its variant's route; `step` indexes the next operation."""

    __slots__ = ("arrived_s", "due_s", "id", "load", "material", "route", "step", "times", "variant", "weight")

    def __init__(
        self, job_id: int, variant: int, params: LineParams, arrived_s: float, due_s: float, weight: float
    ) -> None:
        v = params.variants[variant]
        self.id = job_id
        self.variant = variant
        self.route = params.route_of(variant)
        self.times = v.processing_time_s
        self.load = v.load
        self.material = v.material_units
        self.step = 0
        self.arrived_s = arrived_s
        self.due_s = due_s
        self.weight = weight


class Plant:
    """All runtime state of one simulated episode."""

    def __init__(self, params: LineParams, seed: np.random.SeedSequence, levers: frozenset[Lever]) -> None:
        self.env = simpy.Environment()
        self.params = params
        self.agent_dispatch = Lever.DISPATCH in levers
        ss_stations, ss_demand, ss_grid, ss_supply, self.sensor_seed = seed.spawn(5)
        n_var = len(params.variants)
        self.changeover_s = params.changeover_time_s or tuple((0.0,) * n_var for _ in range(n_var))
        self.total_power_kw = 0.0
        self._energy_t = 0.0
        self.energy_kwh = 0.0
        self.energy_cost = 0.0
        self.co2_kg = 0.0
        self.repair_cost = 0.0
        self.preventive_cost = 0.0
        self.stockouts = 0
        self.stockout_time_s = 0.0
        self.jobs_released = 0
        self.good_parts = 0
        self.scrap_parts = 0
        self.departures = 0
        self.flow_time_sum_s = 0.0
        self.tardiness_s = 0.0  # of departed jobs; open jobs are added in `tardiness`
        self.weighted_tardiness_s = 0.0
        self.tardy_jobs = 0
        self.last_completion_s = 0.0
        self.wip = 0
        self._wip_area = 0.0
        self._wip_t = 0.0
        self.jobs: dict[int, Job] = {}
        self.n_static = len(params.demand.jobs)
        self.job_step = np.zeros(self.n_static, dtype=np.int64)
        self.job_status = np.zeros(self.n_static, dtype=np.int8)
        self._next_id = self.n_static
        self._static_left = self.n_static
        self._demand_factors: list[float] = []
        self._stop: simpy.Event | None = None
        self._deadline: simpy.Event | None = None
        self.grid = Grid(self.env, params.grid, np.random.default_rng(ss_grid), self.integrate_energy_now)
        self.supply = (
            Supply(
                self.env,
                params.supply,
                np.random.default_rng(ss_supply),
                self._on_delivery,
                auto_reorder=Lever.REORDER not in levers,
            )
            if params.supply is not None
            else None
        )
        self.stations = [
            Station(self, i, sp, params.machines[sp.machine], np.random.default_rng(ss))
            for i, (sp, ss) in enumerate(zip(params.stations, ss_stations.spawn(len(params.stations)), strict=True))
        ]
        self.total_power_kw = sum(s.power_kw for s in self.stations)
        demand_gen = np.random.default_rng(ss_demand)
        self._exp = exponential(demand_gen)
        self._u = uniform(demand_gen)
        self._mix = list(accumulate(v.mix for v in params.variants))
        self._release_static_jobs()
        if params.demand.arrival_rate_per_h > 0:
            self.env.process(self._arrivals())
        for ev in params.scenarios:
            self.env.process(self._scenario(ev))

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

    def power_changed(self) -> None:
        """Recompute the line's total power after a station changed its draw."""
        self.total_power_kw = sum(s.power_kw for s in self.stations)

    def wip_mean(self) -> float:
        """Time-average number of jobs in the system since time 0."""
        now = self.env.now
        area = self._wip_area + self.wip * (now - self._wip_t)
        return area / now if now > 0 else float(self.wip)

    def take_material(self, job: Job) -> bool:
        """Consume `job`'s raw material from the store; False if the store cannot supply it."""
        return self.supply is None or self.supply.take(job.material)

    def tardiness(self) -> tuple[float, float]:
        """Lateness summed over jobs, departed or still open, as of now: (plain, weighted), s."""
        now = self.env.now
        plain, weighted = self.tardiness_s, self.weighted_tardiness_s
        for job in self.jobs.values():
            if now > job.due_s:
                plain += now - job.due_s
                weighted += job.weight * (now - job.due_s)
        return plain, weighted

    def mark(self, job: Job, status: JobStatus) -> None:
        """Record where a job of the fixed job set is (other jobs are not tracked)."""
        if job.id < self.n_static:
            self.job_status[job.id] = status
            self.job_step[job.id] = job.step

    def release(self, variant: int, job_id: int, due_s: float, weight: float = 1.0) -> None:
        """Bring a new job into the system at its route's first station."""
        job = Job(job_id, variant, self.params, self.env.now, due_s, weight)
        self.jobs[job_id] = job
        self.mark(job, JobStatus.QUEUED)
        self.jobs_released += 1
        self._count_wip(+1)
        self.stations[job.route[0]].enqueue(job)

    def depart(self, job: Job, good: bool) -> None:
        """Take `job` out of the system, finished (`good`) or scrapped."""
        now = self.env.now
        del self.jobs[job.id]
        self._count_wip(-1)
        self.departures += 1
        self.flow_time_sum_s += now - job.arrived_s
        self.last_completion_s = now
        if job.id < self.n_static:
            self.mark(job, JobStatus.DONE if good else JobStatus.SCRAPPED)
            self._static_left -= 1
            if self._static_left == 0 and self.params.demand.arrival_rate_per_h == 0:
                self.halt()  # the job set is complete: nothing more will happen on this line
        late = now - job.due_s
        if late > 0:
            self.tardiness_s += late
            self.weighted_tardiness_s += job.weight * late
            self.tardy_jobs += 1
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
        allowance = self.params.demand.due_date_allowance_s
        later = []
        for job_id, jp in enumerate(self.params.demand.jobs):
            variant = [v.name for v in self.params.variants].index(jp.variant)
            due = jp.due_s if jp.due_s is not None else jp.release_s + allowance
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
        demand = self.params.demand
        surge_bound = prod(max(1.0, ev.factor) for ev in self.params.scenarios if ev.kind is ScenarioKind.DEMAND_SURGE)
        rate_bound_per_s = demand.arrival_rate_per_h * surge_bound / 3600.0
        total_mix = self._mix[-1]
        while True:
            yield self.env.timeout(self._exp() / rate_bound_per_s)
            if self._u() * surge_bound >= prod(self._demand_factors):
                continue  # thinning: this candidate arrival falls outside the current rate
            pick = self._u() * total_mix
            variant = next(i for i, c in enumerate(self._mix) if pick < c)
            self._next_id += 1
            self.release(variant, self._next_id - 1, self.env.now + demand.due_date_allowance_s)

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
