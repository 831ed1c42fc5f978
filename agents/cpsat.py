"""OR-Tools CP-SAT on job-shop instances: the limit line learned and rule schedules are measured against.

`solve_cpsat` finds a schedule of an `Instance` under a wall-clock limit and reports what the
solver proved (optimal, or a lower bound). `CpSatDispatch` is the platform baseline `cpsat`: on a
Scheduling env it solves the line's job set once and dispatches every station in the machine
order of that schedule, so the env replays it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from agents.baseline import Baseline, finite_at_least
from envs.jobshop import Instance
from envs.scheduling import SchedulingTask
from hardware import JobStatus, LineSpec

_ACTIVE = int(JobStatus.ACTIVE)
_SCRAPPED = int(JobStatus.SCRAPPED)  # a scrapped job's later operations never come: no station waits for them


class CpSatError(RuntimeError):
    """CP-SAT found no schedule within its limit (`timed_out`), or the model is invalid."""

    def __init__(self, message: str, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out  # the limit ran out before a first schedule: a result, not a fault


@dataclass(frozen=True)
class CpSatSchedule:
    """A CP-SAT schedule of one instance and what the solver proved about it.

    Attributes:
        starts: start time of each operation, shape (n_jobs, max ops), time units of the instance;
            left-shifted (semi-active) in the solver's machine orders, so no operation could start
            earlier without changing an order. Positions past a job's last operation are 0.
        makespan: the schedule's makespan, time units.
        lower_bound: the best lower bound on the optimum CP-SAT proved, time units.
        status: "OPTIMAL" (proven) or "FEASIBLE".
        wall_s: solver wall-clock time, s.
        cpu_s: processor time this process got while solving, all threads, s (below `wall_s`
            times the workers when the machine is shared).
        deterministic_time: CP-SAT's load-independent measure of the work done (its own units).
    """

    starts: np.ndarray
    makespan: int
    lower_bound: int
    status: str
    wall_s: float
    cpu_s: float
    deterministic_time: float

    @property
    def optimal(self) -> bool:
        """Whether CP-SAT proved this makespan optimal."""
        return self.status == "OPTIMAL"


def solve_cpsat(
    instance: Instance,
    time_limit_s: float,
    workers: int = 1,
    seed: int = 0,
    release: tuple[int, ...] | None = None,
) -> CpSatSchedule:
    """Minimise the makespan of `instance` with CP-SAT.

    Args:
        instance: the job shop.
        time_limit_s: wall-clock limit of the search, s.
        workers: CP-SAT search workers (threads).
        seed: CP-SAT's random seed. With one worker and a limit the search never reaches, the
            result is the same on every run; a binding wall-clock limit can stop it at a
            different point under load.
        release: earliest start of each job (default 0 for all), time units.

    Raises:
        ValueError: a limit, worker count or release vector that is out of range.
        CpSatError: no schedule found within the limit.
    """
    from ortools.sat.python import cp_model  # here, not at the top: it pulls in pandas (0.7 s) for every baseline

    finite_at_least("time_limit_s", time_limit_s, 0.0, strict=True)
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    n = instance.n_jobs
    rel = tuple(release) if release is not None else (0,) * n
    if len(rel) != n or any(r < 0 for r in rel):
        raise ValueError(f"release: expected {n} non-negative start times for {instance.name!r}, got {release!r}")
    horizon = max(rel) + sum(sum(ts) for ts in instance.times)
    model = cp_model.CpModel()
    starts: list[list[Any]] = []
    ends: list[Any] = []
    by_machine: list[list[Any]] = [[] for _ in range(instance.n_machines)]
    for j, (route, times) in enumerate(zip(instance.routes, instance.times, strict=True)):
        job_starts = []
        previous_end: Any = rel[j]
        for k, (machine, t) in enumerate(zip(route, times, strict=True)):
            start = model.new_int_var(0, horizon, f"s{j}_{k}")
            end = model.new_int_var(0, horizon, f"e{j}_{k}")
            by_machine[machine].append(model.new_interval_var(start, t, end, f"o{j}_{k}"))
            model.add(start >= previous_end)
            job_starts.append(start)
            previous_end = end
        starts.append(job_starts)
        ends.append(previous_end)
    for intervals in by_machine:
        model.add_no_overlap(intervals)
    makespan = model.new_int_var(0, horizon, "makespan")
    model.add_max_equality(makespan, ends)
    model.minimize(makespan)
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = float(time_limit_s)
    solver.parameters.num_workers = workers
    solver.parameters.random_seed = seed
    began, cpu_began = time.perf_counter(), time.process_time()
    status = solver.solve(model)
    wall_s, cpu_s = time.perf_counter() - began, time.process_time() - cpu_began
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        raise CpSatError(
            f"instance {instance.name!r}: CP-SAT found no schedule within {time_limit_s} s "
            f"({solver.status_name(status)})",
            timed_out=status == cp_model.UNKNOWN,
        )
    width = max(len(r) for r in instance.routes)
    solved = np.zeros((n, width), dtype=np.int64)
    for j, job_starts in enumerate(starts):
        solved[j, : len(job_starts)] = [solver.value(s) for s in job_starts]
    compact = semi_active(instance, machine_orders(instance, solved), rel)
    return CpSatSchedule(
        starts=compact,
        makespan=schedule_makespan(instance, compact),
        lower_bound=int(solver.best_objective_bound),
        status=solver.status_name(status),
        wall_s=wall_s,
        cpu_s=cpu_s,
        deterministic_time=float(solver.response_proto.deterministic_time),
    )


def machine_orders(instance: Instance, starts: np.ndarray) -> list[list[int]]:
    """Each machine's jobs in the order `starts` runs them (ties by job id), a job once per visit."""
    ops: list[list[tuple[int, int]]] = [[] for _ in range(instance.n_machines)]
    for j, route in enumerate(instance.routes):
        for k, machine in enumerate(route):
            ops[machine].append((int(starts[j, k]), j))
    return [[j for _, j in sorted(m)] for m in ops]


def semi_active(instance: Instance, orders: list[list[int]], release: tuple[int, ...] | None = None) -> np.ndarray:
    """Start times when every operation starts as soon as its job and its machine (in `orders`) allow.

    Raises:
        ValueError: `orders` do not hold each job once per visit to the machine, or they deadlock
            (a machine waits for an operation that waits for that machine).
    """
    n = instance.n_jobs
    rel = release if release is not None else (0,) * n
    sequences = machine_operations(instance, orders)
    width = max(len(r) for r in instance.routes)
    starts = np.zeros((n, width), dtype=np.int64)
    job_free = list(rel)
    job_step = [0] * n
    machine_free = [0] * instance.n_machines
    machine_next = [0] * instance.n_machines
    remaining = sum(len(r) for r in instance.routes)
    while remaining:
        progressed = False
        for machine, sequence in enumerate(sequences):
            while machine_next[machine] < len(sequence):
                j, k = sequence[machine_next[machine]]
                if job_step[j] != k:
                    break
                start = max(job_free[j], machine_free[machine])
                starts[j, k] = start
                job_free[j] = machine_free[machine] = start + instance.times[j][k]
                job_step[j] += 1
                machine_next[machine] += 1
                remaining -= 1
                progressed = True
        if not progressed:
            raise ValueError(f"instance {instance.name!r}: the machine orders deadlock")
    return starts


def machine_operations(instance: Instance, orders: list[list[int]]) -> list[list[tuple[int, int]]]:
    """Each machine's operations (job, operation index) in the job order `orders` gives it.

    A job's visits to one machine come in its route's order, so its n-th place in a machine's order
    is its n-th operation on that machine.

    Raises:
        ValueError: a machine's order does not hold each job once per visit to that machine.
    """
    sequences = []
    for machine, order in enumerate(orders):
        visits = [[k for k, m in enumerate(route) if m == machine] for route in instance.routes]
        expected = sorted(j for j, ks in enumerate(visits) for _ in ks)
        if sorted(order) != expected:
            raise ValueError(f"instance {instance.name!r}: machine {machine} order {order} must hold jobs {expected}")
        taken = [0] * instance.n_jobs
        sequence = []
        for j in order:
            sequence.append((j, visits[j][taken[j]]))
            taken[j] += 1
        sequences.append(sequence)
    return sequences


def schedule_makespan(instance: Instance, starts: np.ndarray) -> int:
    """Latest completion of any operation of `starts`, time units."""
    return max(int(starts[j, k]) + t for j, times in enumerate(instance.times) for k, t in enumerate(times))


def instance_from_spec(spec: LineSpec) -> tuple[Instance, tuple[int, ...]]:
    """The job shop a line's fixed job set describes (mean times at nominal speed), and its release times.

    Changeovers, buffers, breakdowns and stochastic times are outside the model: on a line that has
    them, the CP-SAT schedule is a plan on mean times, not a guarantee.

    Raises:
        ValueError: the line has no fixed job set, or a time that is not a whole number of seconds.
    """
    if not spec.jobs:
        raise ValueError(f"line {spec.name!r}: CP-SAT needs a fixed job set, and this line has none")

    def whole(value: float, what: str) -> int:
        if value != round(value):
            raise ValueError(f"line {spec.name!r}: {what} = {value} s is not a whole number of seconds")
        return round(value)

    times = tuple(
        tuple(whole(t, f"job {j} operation {k} time") for k, t in enumerate(job.times_s))
        for j, job in enumerate(spec.jobs)
    )
    release = tuple(whole(job.release_s, f"job {j} release") for j, job in enumerate(spec.jobs))
    routes = tuple(tuple(job.route) for job in spec.jobs)
    return Instance(spec.name, len(spec.stations), routes, times), release


class CpSatDispatch(Baseline):
    """Dispatch every station in the machine order of a CP-SAT schedule of the line's job set.

    The line's job set (routes, mean times, release times; see `instance_from_spec`) is solved
    once, at the first decision, and every episode replays that plan: a free station starts the
    next job of its planned order once that job waits there (a scrapped job drops out of the
    order: it will not come). With `hold_for_plan` it waits for that job otherwise, so on a
    deterministic line (a job-shop instance) the env's makespan is exactly the schedule's.
    Without it, or where waiting would stall the line (a station blocked by a full buffer), it
    starts the waiting job that comes first in its planned order: the plan as a priority rule,
    which never leaves a station idle while jobs wait, for lines whose times, changeovers and
    buffers the plan does not model. It reads the deciding station, its queue and the jobs'
    progress from the env's frame, so, like FIFO, it predicts one observation at a time.

    Args:
        env: a Scheduling env.
        time_limit_s: CP-SAT wall-clock limit, s.
        workers: CP-SAT search workers.
        seed: CP-SAT random seed.
        hold_for_plan: keep a station idle until its planned next job arrives.
    """

    tasks = (SchedulingTask,)
    task: SchedulingTask

    def __init__(
        self,
        env: gym.Env[Any, Any],
        time_limit_s: float = 10.0,
        workers: int = 1,
        seed: int = 0,
        hold_for_plan: bool = True,
    ) -> None:
        super().__init__(env)
        self.time_limit_s = finite_at_least("time_limit_s", time_limit_s, 0.0, strict=True)
        if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
            raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        if not isinstance(hold_for_plan, bool):
            raise ValueError(f"hold_for_plan must be true or false, got {hold_for_plan!r}")
        self.workers, self.seed, self.hold_for_plan = workers, seed, hold_for_plan
        self.instance, self.release = instance_from_spec(self.task.spec)
        self.schedule: CpSatSchedule | None = None
        self._sequences: list[list[tuple[int, int]]] = []

    def plan(self) -> CpSatSchedule:
        """The CP-SAT schedule this baseline follows (solved on the first call)."""
        if self.schedule is None:
            self.schedule = solve_cpsat(self.instance, self.time_limit_s, self.workers, self.seed, self.release)
            self._sequences = machine_operations(self.instance, machine_orders(self.instance, self.schedule.starts))
        return self.schedule

    def act(self, obs: np.ndarray) -> np.ndarray:
        """The deciding station's planned next job if it waits there; else wait, or the first planned job waiting."""
        if len(obs) != 1:
            raise ValueError(
                f"observation: CP-SAT dispatch reads its one env's frame, so it predicts one at a time, got {len(obs)}"
            )
        self.plan()
        frame = self.env.frame
        decision = self.task.decision(frame)
        wait = self.task.n_jobs
        if decision is None or decision.station is None or frame.jobs is None:
            return np.array([wait])
        waiting = set(decision.jobs)
        jobs = frame.jobs
        pending = [j for j, k in self._sequences[decision.station] if not self._started(j, k, jobs.step, jobs.status)]
        if pending and pending[0] in waiting:
            return np.array([pending[0]])
        if self.hold_for_plan and self.task.mask(frame)[wait]:
            return np.array([wait])
        return np.array([next(j for j in pending if j in waiting)])

    @staticmethod
    def _started(job: int, k: int, step: np.ndarray, status: np.ndarray) -> bool:
        """Whether operation `k` of `job` is no longer to come: started (in process or done), or the job scrapped."""
        return bool(step[job] > k or status[job] == _SCRAPPED or (step[job] == k and status[job] == _ACTIVE))
