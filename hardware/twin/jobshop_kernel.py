"""`JobShopLine`: the twin's deterministic, failure-free job shop as plain arrays, without SimPy.

A loaded job-shop instance runs on the twin as a line in which nothing is random: processing
times are exact, machines never fail or scrap, there are no changeovers, no supply, no scenarios,
a flat tariff, and every job is released at time 0. On such a line the twin's SimPy processes
reduce to a few lists and a heap of operation ends, and this class is that reduction. It follows
the twin event by event, down to the order in which same-instant events run (so queue orders, and
with them FIFO, agree), and derives its KPIs through the same `derive_kpis`.

What it does not model: the instruments. Vibration, bearing temperature and motor current read
NaN (as a dropout) in its frames; every other value, the pending decisions, the job table and the
KPIs are the twin's. `tests/integration/test_jobshop_kernel.py` checks this against `TwinLine`.
"""

from __future__ import annotations

import heapq
import math

import numpy as np

from hardware.counters import Counters, derive_kpis
from hardware.interface import (
    Command,
    Decision,
    DecisionKind,
    Frame,
    Jobs,
    JobStatus,
    Lever,
    LineSpec,
)
from hardware.interface import StationState as State
from hardware.twin.lateness import LatenessBook
from hardware.twin.params import Distribution, Layout, LineParams
from hardware.twin.sensors import INSTRUMENTS, LINE_SENSORS, STATION_SENSORS

_DISPATCH = DecisionKind.DISPATCH
_IDLE, _BUSY = int(State.IDLE), int(State.BUSY)
_QUEUED, _ACTIVE, _DONE = int(JobStatus.QUEUED), int(JobStatus.ACTIVE), int(JobStatus.DONE)


def unsupported(params: LineParams) -> str | None:
    """Why `JobShopLine` cannot run line `params` exactly as the twin would, or None if it can."""
    reasons = []
    if params.layout is not Layout.JOBSHOP:
        reasons.append("it is not a job shop")
    if tuple(params.control.levers) != (Lever.DISPATCH,):
        reasons.append("the agent must own dispatching and nothing else")
    if params.demand.arrival_rate_per_h > 0 or any(j.release_s != 0 for j in params.demand.jobs):
        reasons.append("every job must be released at time 0, with no open arrivals")
    if params.supply is not None or params.scenarios or params.start.warm(bool(params.demand.jobs)):
        reasons.append("it needs no supply, no scenarios and a cold start")
    g = params.grid
    if len(g.tariff) != 1 or g.spike_rate_per_day > 0 or len(g.carbon_kg_per_kwh) != 1:
        reasons.append("it needs a flat tariff without spikes and a flat carbon intensity")
    if params.changeover_time_s is not None and any(any(row) for row in params.changeover_time_s):
        reasons.append("it has changeovers")
    for name, m in params.machines.items():
        exact = m.processing_time_distribution is Distribution.DETERMINISTIC or (
            m.processing_time_distribution is Distribution.GAMMA and m.processing_time_cv == 0
        )
        if not exact or m.failure_rate_base_per_h or m.failure_rate_wear_per_h or m.scrap_probability:
            reasons.append(f"machine {name!r} must be exact (deterministic times, no failures, no scrap)")
    return "; ".join(reasons) or None


class JobShopLine:
    """A deterministic, failure-free job shop behind the `Line` interface; same frames as the twin's.

    Args:
        params: the line definition; `unsupported(params)` must be None.
        spec: the twin's spec of that line (`TwinLine(params).spec`), which this line serves unchanged.
    """

    def __init__(self, params: LineParams, spec: LineSpec) -> None:
        reason = unsupported(params)
        if reason is not None:
            raise ValueError(f"line {params.name!r} cannot run on JobShopLine: {reason}")
        self.spec = spec
        self.params = params
        self._n_stations = m = len(params.stations)
        jobs = spec.jobs
        self._routes = [j.route for j in jobs]
        self._times = [j.times_s for j in jobs]
        self._variant = [j.variant for j in jobs]
        self._lengths = [len(j.route) for j in jobs]
        machines = [params.machines[s.machine] for s in params.stations]
        self._idle_kw = [mc.power_kw.idle for mc in machines]
        self._busy_kw = [mc.power_kw.busy for mc in machines]
        loads = [params.variants[j.variant].load for j in jobs]
        # health worn per s of work, per station and job (speed 1, so the speed factor is 1)
        self._wear = [[mc.wear_per_busy_h / 3600.0 * load for load in loads] for mc in machines]
        self._price = params.grid.tariff[0].price_per_kwh
        self._carbon = params.grid.carbon_kg_per_kwh[0]
        # readings that never change (speed 1, instruments not modelled, no store, flat tariff), and
        # where the others go
        stride = len(STATION_SENSORS)
        self._n_values = m * stride + len(LINE_SENSORS)
        at = {name: np.arange(m) * stride + STATION_SENSORS.index(name) for name in STATION_SENSORS}
        line_at = {name: m * stride + LINE_SENSORS.index(name) for name in LINE_SENSORS}
        self._template = np.zeros(self._n_values)
        self._template[at["speed_ratio"]] = 1.0
        for name in INSTRUMENTS:
            self._template[at[name]] = np.nan
        self._template[line_at["price_per_kwh"]] = self._price
        self._template[line_at["carbon_kg_per_kwh"]] = self._carbon
        self._state_at, self._setup_at, self._queue_at = at["state"], at["setup_variant"], at["queue_parts"]
        self._hours_at, self._wip_at = at["since_maintenance_h"], line_at["wip_parts"]
        self._seq = 0
        self._live = False
        self._frame: Frame | None = None
        self._measured: Frame | None = None

    def reset(self, seed: int | None = None) -> Frame:
        """Start a new episode at time 0 with every job queued at its first station (`seed` changes nothing)."""
        m, n = self._n_stations, len(self._routes)
        self._now = 0.0
        self._queue: list[list[int]] = [[] for _ in range(m)]
        self._assigned = [-1] * m
        self._state = [_IDLE] * m
        self._since = [0.0] * m
        self._last_variant = [-1] * m
        self._health = [1.0] * m
        self._ends: list[tuple[float, int, int, int]] = []  # (end s, event order, station, job)
        self._order = 0  # creation order of the twin's SimPy events, which breaks ties at one instant
        self._initialised = False  # the stations' processes first run at the first advance
        self._woken: list[int] = []  # stations whose wake-up is due before the next run's dispatches
        self._poked: list[int] = []  # stations woken by a dispatch, in order
        self._step = np.zeros(n, dtype=np.int64)
        self._status = np.zeros(n, dtype=np.int8)
        self._power_kw = sum(self._idle_kw)
        self._energy_t = 0.0
        self._energy_kwh = self._energy_cost = self._co2_kg = 0.0
        self._state_time = [0.0] * len(State)
        self._ops = 0
        self._ideal_busy_s = 0.0
        self._health_consumed = 0.0
        self._done = 0
        self._flow_time_s = 0.0
        self._wip = 0
        self._wip_area = 0.0
        self._wip_t = 0.0
        self._last_completion_s = 0.0
        self._lateness = LatenessBook()
        for job, spec in enumerate(self.spec.jobs):
            self._lateness.open(job, spec.due_s, spec.weight)
            self._status[job] = _QUEUED
            self._wip += 1
            self._queue[self._routes[job][0]].append(job)
        self._live = True
        return self._new_frame(measure=True)

    def write(self, command: Command) -> None:
        """Dispatch jobs, as the twin does: all or nothing, every dispatch checked before any takes effect.

        Raises:
            ValueError: a setpoint (this line has no actuators), a station that is not free for a
                dispatch (or dispatched twice), or a job that does not wait there.
        """
        self._check_live()
        if command.setpoints is not None and len(command.setpoints):
            raise ValueError(f"setpoints: line {self.spec.name!r} has no actuators, got {command.setpoints}")
        open_now = self._open_stations()
        chosen: dict[int, int] = {}
        for d in command.dispatch:
            s, job = d.station, d.job
            if not 0 <= s < self._n_stations:
                raise ValueError(f"dispatch: no station {s} (line has {self._n_stations})")
            name = self.spec.stations[s]
            if s not in open_now:
                raise ValueError(
                    f"dispatch: station {name!r} is not free for a dispatch now (state {State(self._state[s]).name})"
                )
            if job not in self._queue[s]:
                raise ValueError(f"dispatch: job {job} does not wait at station {name!r} (queue {self._queue[s]})")
            if s in chosen:
                raise ValueError(f"dispatch: station {name!r} is dispatched twice in one command")
            chosen[s] = job
        for s, job in chosen.items():
            self._assigned[s] = job
            self._status[job] = _ACTIVE
            if s not in self._woken:
                self._poked.append(s)
        self._frame = None

    def advance(self, dt: float) -> Frame:
        """Run up to `dt` s; return early once an operation's end leaves a dispatch decision open."""
        self._check_live()
        if not (dt > 0 and math.isfinite(dt)):
            raise ValueError(f"advance(dt): dt must be a positive finite number of seconds, got {dt!r}")
        now = self._now
        t_end = now + dt
        deadline = (t_end, self._order)
        self._order += 1
        starting = self._woken + self._poked if self._initialised else range(self._n_stations)
        self._initialised = True
        for s in starting:
            if self._assigned[s] >= 0:
                self._start(s)
        self._woken, self._poked = [], []
        ends = self._ends
        halted_at = None
        while ends and ends[0][:2] < deadline and (halted_at is None or ends[0][0] == halted_at):
            end, _, s, job = heapq.heappop(ends)
            self._now = end
            if self._finish(s, job) and halted_at is None:
                halted_at = end
        self._now = t_end if halted_at is None else halted_at
        self._integrate_energy()
        return self._new_frame(measure=True)

    def read(self) -> Frame:
        """Return the latest frame; after a dispatch, the same readings with the new decisions and job table."""
        self._check_live()
        return self._frame if self._frame is not None else self._new_frame(measure=False)

    def close(self) -> None:
        """Drop the episode."""
        self._live = False
        self._frame = self._measured = None

    def _check_live(self) -> None:
        if not self._live:
            raise RuntimeError(f"line {self.spec.name!r}: call reset() before using it")

    def _open_stations(self) -> list[int]:
        """The stations waiting for a dispatch decision, in order (the twin's `Station.open_for_dispatch`).

        One pass over the lists, no call per station: it runs at every frame and every finish.
        """
        queue, state, assigned = self._queue, self._state, self._assigned
        return [s for s in range(self._n_stations) if queue[s] and state[s] == _IDLE and assigned[s] < 0]

    def _set_state(self, s: int, new: int) -> None:
        """The twin's `Station.set_state`: close the old state's time and energy, then change power."""
        self._integrate_energy()
        self._state_time[self._state[s]] += self._now - self._since[s]
        before = self._busy_kw[s] if self._state[s] == _BUSY else self._idle_kw[s]
        self._state[s] = new
        self._since[s] = self._now
        self._power_kw += (self._busy_kw[s] if new == _BUSY else self._idle_kw[s]) - before

    def _integrate_energy(self) -> None:
        dt = self._now - self._energy_t
        if dt > 0:
            kwh = self._power_kw * dt / 3600.0
            self._energy_kwh += kwh
            self._energy_cost += kwh * self._price
            self._co2_kg += kwh * self._carbon
            self._energy_t = self._now

    def _start(self, s: int) -> None:
        """The dispatched job leaves the queue and its operation starts now."""
        job = self._assigned[s]
        self._assigned[s] = -1
        self._queue[s].remove(job)
        self._last_variant[s] = self._variant[job]
        self._set_state(s, _BUSY)
        heapq.heappush(self._ends, (self._now + self._times[job][self._step[job]], self._order, s, job))
        self._order += 1

    def _finish(self, s: int, job: int) -> bool:
        """An operation ends now: wear, hand the job on or let it depart; True if the twin halts here."""
        step = int(self._step[job])
        worked = self._times[job][step]
        worn = min(self._health[s], self._wear[s][job] * worked)
        self._health[s] -= worn
        self._health_consumed += worn
        self._ops += 1
        self._ideal_busy_s += worked
        halt = any(k != s for k in self._open_stations())
        step += 1
        self._step[job] = step
        if step == self._lengths[job]:
            halt = self._depart(job) or halt
        else:
            nxt = self._routes[job][step]
            self._status[job] = _QUEUED
            self._queue[nxt].append(job)
            if self._state[nxt] == _IDLE:
                halt = True
                if nxt not in self._woken:
                    self._woken.append(nxt)
        if self._queue[s]:
            halt = True
        self._set_state(s, _IDLE)
        return halt

    def _depart(self, job: int) -> bool:
        """A job finished its route; True when it was the last one (the twin then halts)."""
        now = self._now
        self._wip_area += self._wip * (now - self._wip_t)
        self._wip_t = now
        self._wip -= 1
        self._done += 1
        self._flow_time_s += now
        self._last_completion_s = now
        self._status[job] = _DONE
        spec = self.spec.jobs[job]
        self._lateness.close(job, spec.due_s, spec.weight, now)
        return self._done == len(self._routes)

    def _new_frame(self, measure: bool) -> Frame:
        open_now = self._open_stations()
        pending = tuple([Decision(_DISPATCH, s, tuple(self._queue[s])) for s in open_now])
        self._seq += 1
        jobs = Jobs(self._step.copy(), self._status.copy())
        if measure or self._measured is None:
            counters = self._counters()
            kpis = derive_kpis(counters, self._now, self._n_stations)
            frame = Frame(self._now, self._seq, *self._readings(), pending, kpis, jobs, counters)
            self._measured = frame
        else:
            old = self._measured
            frame = Frame(old.time, self._seq, old.values, old.stamps, pending, old.kpis, jobs, old.counters)
        self._frame = frame
        return frame

    def _readings(self) -> tuple[np.ndarray, np.ndarray]:
        now = self._now
        values = self._template.copy()
        values[self._state_at] = self._state
        values[self._setup_at] = self._last_variant
        values[self._queue_at] = [len(q) for q in self._queue]
        values[self._hours_at] = now / 3600.0
        values[self._wip_at] = self._wip
        return values, np.full(self._n_values, now)

    def _counters(self) -> Counters:
        now = self._now
        times = list(self._state_time)
        for s in range(self._n_stations):
            times[self._state[s]] += now - self._since[s]
        tardiness, weighted = self._lateness.totals(now)
        done = self._done
        return Counters(
            jobs_released=len(self._routes),
            jobs_done=done,
            good_parts=done,
            flow_time_sum_s=self._flow_time_s,
            wip_area_part_s=self._wip_area + self._wip * (now - self._wip_t),
            energy_kwh=self._energy_kwh,
            energy_cost=self._energy_cost,
            co2_kg=self._co2_kg,
            state_time_s=tuple(times),
            operations=self._ops,
            ideal_busy_s=self._ideal_busy_s,
            tardiness_s=tardiness,
            weighted_tardiness_s=weighted,
            tardy_jobs=self._lateness.tardy_jobs,
            health_consumed=self._health_consumed,
            wip_parts=self._wip,
            last_completion_s=self._last_completion_s,
        )
