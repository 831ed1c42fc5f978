"""One station of the twin: its machine's state, health, energy and thermal state, and its process.

A station takes a job from its input queue (FIFO, or the job the agent dispatched), changes over
if the variant differs from the last one, processes it at the speed setpoint (failing and being
repaired on the way if its cumulative hazard runs out), may scrap it, and hands it to the next
station's queue, blocking while that queue is full. A new order whose route starts at a station
with a full buffer waits in the line's order backlog; a place that frees goes to whoever has
waited longest for it, a station blocked upstream or an order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator, Sequence
from math import exp, prod
from typing import Protocol

import numpy as np
import simpy

from hardware.interface import JobStatus
from hardware.interface import StationMode as Mode
from hardware.interface import StationState as State
from hardware.twin.job import Job
from hardware.twin.params import Distribution, MachineParams, StationParams
from hardware.twin.rng import exponential, uniform, unit_duration

# Module-level aliases: an Enum member looked up through its class costs a slow __getattr__ on 3.11.
OFF, STANDBY, WARMUP, IDLE, BUSY, BLOCKED, CHANGEOVER, DOWN, MAINTENANCE = tuple(State)
MODE_OFF, MODE_STANDBY, RUN = tuple(Mode)
_RESTING = (OFF, STANDBY)  # states a machine must warm up from before it runs
_QUEUED, _ACTIVE = JobStatus.QUEUED, JobStatus.ACTIVE


class Floor(Protocol):
    """What a station sees of the plant around it: the clock, its neighbours and the shared accounts."""

    env: simpy.Environment
    agent_dispatch: bool  # whether the agent picks each job (else FIFO, the line's rule)
    total_power_kw: float
    state_time_s: list[float]  # closed intervals per state, summed over stations
    ops: int
    ideal_busy_s: float
    scrapped_ops: int
    failures: int
    maintenances: int
    repair_cost: float
    preventive_cost: float
    health_consumed: float
    health_restored: float
    stockouts: int
    stockout_time_s: float

    @property
    def stations(self) -> Sequence[Station]:
        """Every station of the line, by index."""

    @property
    def changeover_s(self) -> Sequence[Sequence[float]]:
        """Changeover time, s, [from variant][to variant]."""

    def halt(self) -> None:
        """End the current run at this instant: a decision for the agent came up."""

    def integrate_energy(self, now: float) -> None:
        """Account the line's energy up to `now`, before a power change."""

    def take_material(self, job: Job) -> bool:
        """Consume the job's raw material; False when the store cannot supply it."""

    def mark(self, job: Job, status: JobStatus) -> None:
        """Record where a job of the fixed job set is."""

    def depart(self, job: Job, good: bool) -> None:
        """Take a finished or scrapped job out of the system."""

    def offer_open_decisions(self, finished: Station) -> None:
        """Re-offer stations left idle with work waiting, after `finished` ended an operation."""


class Station:
    """Runtime state and SimPy process of one station."""

    def __init__(
        self,
        plant: Floor,
        index: int,
        params: StationParams,
        machine: MachineParams,
        gen: np.random.Generator,
    ) -> None:
        self.plant = plant
        self.env = plant.env
        self.index = index
        self.name = params.name
        self.m = machine
        self.capacity = params.buffer_capacity_parts
        self.queue: list[Job] = []
        # waiting for a buffer place, longest first: stations blocked upstream (their wake-up) and new orders
        self.space_waiters: deque[simpy.Event | Job] = deque()
        self.promised = 0  # places freed for a woken upstream station whose part has not yet arrived
        self.assigned: Job | None = None
        self.wake: simpy.Event | None = None
        self.state = IDLE
        self.since = 0.0
        self.time_in_state = [0.0] * len(State)
        self._power_by_state = [getattr(machine.power_kw, s.name.lower()) for s in State]
        self._busy_kw = machine.power_kw.busy
        self._power_exponent = machine.busy_power_speed_exponent
        sensing = machine.sensors
        self._inv_tau = 1.0 / sensing.temperature_time_constant_s
        self._ambient_c = sensing.temperature_ambient_c
        self._rise_busy_c = sensing.temperature_rise_busy_c
        self._rise_wear_c = sensing.temperature_rise_wear_c
        self.power_kw = self._power_by_state[IDLE]
        self.mode = RUN
        self.speed_setpoint = 1.0
        self.speed = 1.0
        self.load = 1.0
        self.maintain_requested = False
        self.health = 1.0
        self.hazard_factors: list[float] = []
        self.hazard_factor = 1.0
        self.last_variant: int | None = None
        self.last_maintenance_s = 0.0
        self.stockout_since: float | None = None
        gens = gen.spawn(5)
        self._proc = unit_duration(gens[0], machine.processing_time_distribution, machine.processing_time_cv)
        self._exp = exponential(gens[1])
        self._repair = unit_duration(gens[2], Distribution.GAMMA, machine.repair_time_cv)
        self._pm = unit_duration(gens[3], Distribution.GAMMA, machine.maintenance_time_cv)
        self._u = uniform(gens[4])
        self.cum_hazard = 0.0
        self.hazard_threshold = self._exp()
        self.temperature_c = machine.sensors.temperature_ambient_c
        self.temperature_target_c = self.temperature_c
        self._warming_towards: Mode | None = None  # the mode a warm-up in progress heads for
        self._runner = self.env.process(self._run())

    def set_state(self, new: State) -> None:
        """Enter state `new` now, closing the time, energy and thermal accounts of the old one."""
        now = self.env.now
        plant = self.plant
        plant.integrate_energy(now)
        dt = now - self.since
        self.time_in_state[self.state] += dt
        plant.state_time_s[self.state] += dt
        target = self.temperature_target_c
        self.temperature_c = target + (self.temperature_c - target) * exp(-dt * self._inv_tau)
        self.state = new
        self.since = now
        before_kw = self.power_kw
        if new is BUSY:
            speed = self.speed
            self.power_kw = self._busy_kw * speed**self._power_exponent
            self.temperature_target_c = (
                self._ambient_c + self._rise_busy_c * speed * self.load + self._rise_wear_c * (1.0 - self.health)
            )
        else:
            self.power_kw = self._power_by_state[new]
            self.temperature_target_c = self._ambient_c
        plant.total_power_kw += self.power_kw - before_kw

    def temperature_at(self, t: float) -> float:
        """Bearing temperature at time `t` >= the last state change, degC (first-order response)."""
        target = self.temperature_target_c
        return target + (self.temperature_c - target) * exp(-(t - self.since) * self._inv_tau)

    def enqueue(self, job: Job) -> None:
        """Put `job` in the input queue and wake the station if it waits for work."""
        self.queue.append(job)
        if self.state == IDLE and self.mode == RUN and self.plant.agent_dispatch:
            self.plant.halt()
        self.poke()

    def admit(self, job: Job) -> None:
        """Take a new order into the input buffer, or into the order backlog behind those waiting for a place."""
        if self.space_waiters or self.full():
            self.space_waiters.append(job)
        else:
            self.enqueue(job)

    def full(self) -> bool:
        """Whether the input buffer has no free place (a place promised to a woken upstream station is not free)."""
        return self.capacity is not None and len(self.queue) + self.promised >= self.capacity

    def poke(self) -> None:
        """Wake the process if it waits for work, a dispatch, material or a mode; end a warm-up the mode cancels."""
        if self._warming_towards is not None and self._cancels(self._warming_towards):
            self._warming_towards = None
            self._runner.interrupt()
            return
        if self.wake is not None and not self.wake.triggered:
            self.wake.succeed()

    def open_for_dispatch(self, mode: Mode | None = None, maintain_requested: bool | None = None) -> bool:
        """Whether the agent owes this station a dispatch now, or would with `mode` and `maintain_requested` set."""
        return bool(
            self.queue
            and self.state is IDLE
            and self.assigned is None
            and (self.mode if mode is None else mode) is RUN
            and not (self.maintain_requested if maintain_requested is None else maintain_requested)
        )

    def set_hazard_factor(self, factor: float, on: bool) -> None:
        """Start (`on`) or end a scenario's multiplication of the failure hazard."""
        if on:
            self.hazard_factors.append(factor)
        else:
            self.hazard_factors.remove(factor)
        self.hazard_factor = prod(self.hazard_factors)

    def _wait(self) -> simpy.Event:
        self.wake = self.env.event()
        return self.wake

    def _run(self) -> Generator[simpy.Event, None, None]:
        plant = self.plant
        while True:
            if self.maintain_requested:
                yield from self._maintain()
                continue
            if self.mode != RUN or self.state in _RESTING:  # resting, or to warm up before it runs
                yield from self._rest()
                continue
            job = self.assigned if plant.agent_dispatch else (self.queue[0] if self.queue else None)
            if job is None:
                if self.state != IDLE:
                    if plant.agent_dispatch and self.queue:
                        plant.halt()
                    self.set_state(IDLE)
                yield self._wait()
                continue
            if job.step == 0 and not plant.take_material(job):
                self._hold_for_material()
                yield self._wait()
                continue
            self._take(job)
            if self.last_variant is not None and self.last_variant != job.variant:
                yield from self._changeover(job.variant)
            self.last_variant = job.variant
            yield from self._process(job)
            if plant.agent_dispatch:  # before handing on, which may block this station for long
                plant.offer_open_decisions(self)
            blocked_by = self._hand_on(job)
            if blocked_by is not None:
                yield from self._wait_for_space(job, blocked_by)

    def _take(self, job: Job) -> None:
        """Take `job` out of the queue to work on it, freeing a buffer place."""
        self._end_stockout()
        self.assigned = None
        self.queue.remove(job)
        self.plant.mark(job, _ACTIVE)
        if self.space_waiters:
            waiter = self.space_waiters.popleft()
            if isinstance(waiter, Job):  # an order from the backlog; this station is about to work: no wake-up
                self.queue.append(waiter)
            else:  # the place is the woken station's: a part handed on later in this instant cannot take it
                self.promised += 1
                waiter.succeed()

    def _rest(self) -> Generator[simpy.Event, None, None]:
        """Off or standby as commanded; a cold machine pays the full warm-up whichever way it wakes."""
        self._end_stockout()
        m = self.m
        cold_part_s = max(0.0, m.warmup_from_off_s - m.warmup_from_standby_s)  # off to standby
        if self.mode is MODE_OFF:
            if self.state is not OFF:
                self.set_state(OFF)
        elif self.state is OFF:  # standby from cold: the first part of a cold start
            self.set_state(WARMUP)
            if not (yield from self._warm_up(cold_part_s, MODE_STANDBY)):
                return  # switched off while warming: the loop switches it off now
            self.set_state(STANDBY)
            if self.mode is not RUN:
                return  # the loop looks at the mode again
        elif self.state is not STANDBY:
            self.set_state(STANDBY)
        if self.mode is not RUN:
            yield self._wait()
        if self.mode is RUN:
            cold = self.state is OFF  # woken in off straight to run: the whole cold start
            self.set_state(WARMUP)
            began = self.env.now
            if not (yield from self._warm_up(m.warmup_from_off_s if cold else m.warmup_from_standby_s, RUN)):
                left = began + cold_part_s - self.env.now if cold else 0.0
                if self.mode is MODE_STANDBY and left > 0 and (yield from self._warm_up(left, MODE_STANDBY)):
                    self.set_state(STANDBY)  # standby needs the cold part of the start: it finished that
                return  # the loop puts it where its mode says now
            self.set_state(IDLE)
            if self.plant.agent_dispatch and self.queue:
                self.plant.halt()

    def _warm_up(self, duration_s: float, towards: Mode) -> Generator[simpy.Event, None, bool]:
        """Warm up for `duration_s` towards mode `towards`; False once a mode that cancels it is set (`poke`).

        A warm-up has no part in it to finish: a machine told to rest (off, an E-stop; standby on
        the way to run) stops warming at once and pays the warm-up power only for the time it
        warmed. One timeout, as if nothing could cancel it: a warm-up ends in its place among the
        events of its instant (a control tick), whether or not its mode could have changed.
        """
        end = self.env.now + duration_s
        self._warming_towards = towards
        try:
            yield self.env.timeout(duration_s)
            return True
        except simpy.Interrupt:
            if not self._cancels(towards):  # the mode came back before the interrupt arrived: warm on
                return (yield from self._warm_up(end - self.env.now, towards))
            return False
        finally:
            self._warming_towards = None

    def _cancels(self, towards: Mode) -> bool:
        """Whether the mode now set cancels a warm-up towards `towards`."""
        return self.mode is MODE_OFF or (self.mode is MODE_STANDBY and towards is RUN)

    def _end_stockout(self) -> None:
        """The station no longer waits for material: it took a job, or it rests or is maintained instead."""
        if self.stockout_since is not None:
            self.plant.stockout_time_s += self.env.now - self.stockout_since
            self.stockout_since = None

    def _hold_for_material(self) -> None:
        if self.stockout_since is None:
            self.stockout_since = self.env.now
            self.plant.stockouts += 1
        if self.state != IDLE:
            self.set_state(IDLE)

    def _changeover(self, variant: int) -> Generator[simpy.Event, None, None]:
        duration = self.plant.changeover_s[self.last_variant][variant]  # type: ignore[index]
        if duration > 0:
            self.set_state(CHANGEOVER)
            yield self.env.timeout(duration)

    def _process(self, job: Job) -> Generator[simpy.Event, None, None]:
        m = self.m
        self.speed = self.speed_setpoint
        self.load = job.load
        mean_s = job.times[job.step]
        remaining = mean_s / self.speed * self._proc()
        wear_per_s = m.wear_per_busy_h / 3600.0 * self.speed**m.wear_speed_exponent * job.load
        self.set_state(BUSY)
        while True:
            rate = (
                self.hazard_factor
                * (m.failure_rate_base_per_h + m.failure_rate_wear_per_h * (1.0 - self.health) ** m.failure_wear_shape)
                / 3600.0
            )
            to_failure = (self.hazard_threshold - self.cum_hazard) / rate if rate > 0 else float("inf")
            step = min(remaining, to_failure)
            yield self.env.timeout(step)
            self.cum_hazard += rate * step
            worn = min(self.health, wear_per_s * step)
            self.health -= worn
            self.plant.health_consumed += worn
            remaining -= step
            if to_failure >= step + remaining:
                break
            yield from self._repair_after_failure()
            self.set_state(BUSY)
        self.plant.ops += 1
        self.plant.ideal_busy_s += mean_s

    def _hand_on(self, job: Job) -> Station | None:
        """Scrap, finish or pass on a processed job; the next station if its buffer is full."""
        m = self.m
        p_scrap = (
            m.scrap_probability * self.speed**m.scrap_speed_exponent * (1.0 + m.scrap_wear_gain * (1.0 - self.health))
        )
        if self._u() < p_scrap:
            self.plant.scrapped_ops += 1
            self.plant.depart(job, good=False)
            return None
        job.step += 1
        if job.step == len(job.route):
            self.plant.depart(job, good=True)
            return None
        nxt = self.plant.stations[job.route[job.step]]
        if nxt.full():
            return nxt
        self.plant.mark(job, _QUEUED)
        nxt.enqueue(job)
        return None

    def _wait_for_space(self, job: Job, nxt: Station) -> Generator[simpy.Event, None, None]:
        """Hold a finished job (blocked) until the next station's buffer gives it a place, then pass it on."""
        self.set_state(BLOCKED)
        space = self.env.event()
        nxt.space_waiters.append(space)
        yield space
        nxt.promised -= 1
        self.plant.mark(job, _QUEUED)
        nxt.enqueue(job)

    def _repair_after_failure(self) -> Generator[simpy.Event, None, None]:
        self.plant.failures += 1
        self.plant.repair_cost += self.m.repair_cost
        self.set_state(DOWN)
        yield self.env.timeout(self.m.repair_time_mean_s * self._repair())
        self._renew()

    def _maintain(self) -> Generator[simpy.Event, None, None]:
        """Preventive maintenance; a machine maintained from off or standby comes out as cold as it went in."""
        self._end_stockout()
        self.maintain_requested = False
        self.plant.maintenances += 1
        self.plant.preventive_cost += self.m.maintenance_cost
        before = self.state
        if before is WARMUP:  # a warm-up its mode cancelled: it rests as that mode says (`_rest`)
            before = OFF if self.mode is MODE_OFF else STANDBY
        self.set_state(MAINTENANCE)
        yield self.env.timeout(self.m.maintenance_time_mean_s * self._pm())
        self._renew()
        self.set_state(before if before in _RESTING else IDLE)
        if self.plant.agent_dispatch and self.queue:
            self.plant.halt()

    def _renew(self) -> None:
        self.maintain_requested = False  # a request made before a failure is met by its repair
        self.plant.health_restored += 1.0 - self.health
        self.health = 1.0
        self.cum_hazard = 0.0
        self.hazard_threshold = self._exp()
        self.last_maintenance_s = self.env.now
