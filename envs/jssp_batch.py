"""Vectorised job-shop schedule building for a batch of instances times samples (numpy).

A learned dispatcher builds a schedule one operation at a time: at each step every unfinished job
offers its next operation, which starts at max(job ready, machine ready) (appended to its machine,
so every semi-active schedule, and with it an optimal one, is reachable). `ScheduleBuilder` runs
that for many rollouts at once and describes every candidate by the features a policy scores it
by. Time is in the instance's own unit (Taillard: dimensionless processing times).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from envs.jobshop import Instance, ScheduleError


class ActionSet(enum.Enum):
    """Which unfinished jobs' next operations a policy may choose from at a step.

    `ALL`: every one. `ACTIVE`: those that can start before the earliest completion of any
    candidate (a superset of Giffler and Thompson's conflict set: it still holds the next operation
    of every active schedule, so an optimal one stays reachable). `NON_DELAY`: those that can start
    at the earliest start of any candidate, the event-driven dispatching of the platform's
    Scheduling env (dispatching rules; optima may be unreachable).
    """

    ALL = "all"
    ACTIVE = "active"
    NON_DELAY = "non_delay"


# Per-candidate features (`ScheduleBuilder.observe`): u is the instance's mean processing time,
# LB the schedule's current makespan lower bound; est/ect: the operation's earliest start/completion.
FEATURES = (
    "time/u",  # processing time
    "(est - earliest est)/u",  # how far after the schedule's frontier it would start
    "(job ready - machine ready)/u",  # > 0: idle it leaves on the machine; < 0: the job waits
    "(ect - earliest ect)/u",
    "starts before the earliest ect",  # in the active set
    "makespan increase/u",  # max(0, ect - current makespan)
    "(next machine ready - ect)/u",  # how long the job would wait at its next machine
    "job work left/(u * operations per job)",
    "job operations left/operations per job",
    "(est + job work left)/LB",  # the job's completion bound if it starts now (1: on the critical path)
    "(machine ready + machine load left)/LB",
    "(est + machine load left)/LB",  # the machine's completion bound if it starts this now
    "machine load left/(u * jobs)",
    "candidates on the same machine/jobs",
    "LB/initial LB",
    "fraction of operations scheduled",
)
N_FEATURES = len(FEATURES)

# Per-operation features of an instance (`InstanceBatch.operation_features`), fixed before any
# decision: u is the instance's mean processing time, LB its makespan lower bound.
OPERATION_FEATURES = (
    "time/u",
    "position in the job/operations per job",
    "job work from this operation on/(u * operations per job)",
    "job work from this operation on/LB",
    "machine load/(u * jobs)",
    "machine load/LB",
    "job work/LB",
)
N_OPERATION_FEATURES = len(OPERATION_FEATURES)

# Per-machine features of a schedule under construction (`ScheduleBuilder.observe_machines`): u and
# LB as for the candidates; the frontier is the earliest start of any candidate.
MACHINE_FEATURES = (
    "(machine ready - earliest est)/u",  # how far past the frontier the machine is booked
    "machine load left/(u * jobs)",
    "(machine ready + machine load left)/LB",  # the machine's completion bound
    "jobs whose next operation needs it/jobs",
    "operations left on it/jobs",
)
N_MACHINE_FEATURES = len(MACHINE_FEATURES)


@dataclass(frozen=True)
class InstanceBatch:
    """Job-shop instances of one size: machine and processing time of each operation.

    Attributes:
        routes: int64 array (instances, jobs, operations), the machine of each operation.
        times: float64 array (instances, jobs, operations), processing times (> 0).
        n_machines: number of machines.
    """

    routes: np.ndarray
    times: np.ndarray
    n_machines: int

    def __post_init__(self) -> None:
        if self.routes.ndim != 3 or self.routes.shape != self.times.shape:
            raise ScheduleError(
                f"routes {self.routes.shape} and times {self.times.shape} must both be (instances, jobs, operations)"
            )
        if self.routes.size and (self.routes.min() < 0 or self.routes.max() >= self.n_machines):
            raise ScheduleError(f"routes name a machine outside 0..{self.n_machines - 1}")
        if self.times.size and not self.times.min() > 0:
            raise ScheduleError(f"times must be > 0, got a minimum of {self.times.min()}")

    @classmethod
    def of(cls, instances: Sequence[Instance]) -> InstanceBatch:
        """Stack instances of one size (jobs x operations, machines) into a batch."""
        if not instances:
            raise ScheduleError("instances: need at least one")
        shapes = {(i.n_jobs, *{len(r) for r in i.routes}, i.n_machines) for i in instances}
        if len(shapes) != 1 or len(next(iter(shapes))) != 3:
            names = ", ".join(i.name for i in instances)
            raise ScheduleError(f"instances {names}: need one size and the same number of operations per job")
        routes = np.array([i.routes for i in instances], dtype=np.int64)
        times = np.array([i.times for i in instances], dtype=np.float64)
        return cls(routes, times, instances[0].n_machines)

    def __len__(self) -> int:
        return len(self.routes)

    @property
    def n_jobs(self) -> int:
        """Jobs per instance."""
        return int(self.routes.shape[1])

    @property
    def n_operations(self) -> int:
        """Operations per job."""
        return int(self.routes.shape[2])

    def machine_loads(self) -> np.ndarray:
        """Total processing time per machine, (instances, machines)."""
        loads = np.zeros((len(self), self.n_machines))
        np.add.at(loads, (np.arange(len(self))[:, None, None], self.routes), self.times)
        return loads

    def lower_bound(self) -> np.ndarray:
        """Makespan lower bound per instance: the longest job or the most loaded machine."""
        return self._lower_bound_from(self.machine_loads())

    def _lower_bound_from(self, loads: np.ndarray) -> np.ndarray:
        return np.maximum(self.times.sum(axis=2).max(axis=1), loads.max(axis=1))

    def operation_features(self) -> np.ndarray:
        """Float32 (instances, jobs, operations, N_OPERATION_FEATURES): what each operation is, before scheduling."""
        n, j, o = self.routes.shape
        u = self.times.mean(axis=(1, 2))[:, None, None]
        loads = self.machine_loads()
        bound = self._lower_bound_from(loads)[:, None, None]
        load = np.take_along_axis(loads, self.routes.reshape(n, j * o), axis=1).reshape(n, j, o)
        work_on = np.flip(np.cumsum(np.flip(self.times, axis=2), axis=2), axis=2)
        f = np.empty((n, j, o, N_OPERATION_FEATURES), dtype=np.float32)
        f[..., 0] = self.times / u
        f[..., 1] = np.arange(o) / o
        f[..., 2] = work_on / (u * o)
        f[..., 3] = work_on / bound
        f[..., 4] = load / (u * j)
        f[..., 5] = load / bound
        f[..., 6] = work_on[:, :, :1] / bound
        return f


def generate_instances(
    n: int, n_jobs: int, n_machines: int, seed: int | np.random.Generator, time_low: int = 1, time_high: int = 99
) -> InstanceBatch:
    """Random instances after Taillard: each job visits every machine once in a random order.

    Processing times are whole numbers drawn uniformly from `time_low` to `time_high` inclusive.
    """
    if n < 1 or n_jobs < 1 or n_machines < 1:
        raise ScheduleError(f"n, n_jobs, n_machines must be >= 1, got {n}, {n_jobs}, {n_machines}")
    if not 1 <= time_low <= time_high:
        raise ScheduleError(f"need 1 <= time_low <= time_high, got {time_low}, {time_high}")
    rng = np.random.default_rng(seed)
    routes = np.argsort(rng.random((n, n_jobs, n_machines)), axis=2)
    times = rng.integers(time_low, time_high + 1, size=(n, n_jobs, n_machines)).astype(np.float64)
    return InstanceBatch(routes, times, n_machines)


_Candidates = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


class ScheduleBuilder:
    """Builds schedules for `samples` rollouts of each instance of a batch, one operation a step.

    Rollout `r` schedules instance `r // samples`. Every step schedules exactly one operation per
    rollout, so all rollouts finish together after jobs x operations steps. Call `observe` for the
    candidates' features and the valid-action mask, then `step` with one job per rollout.
    """

    def __init__(self, batch: InstanceBatch, samples: int = 1, action_set: ActionSet | str = ActionSet.ACTIVE) -> None:
        if samples < 1:
            raise ScheduleError(f"samples must be >= 1, got {samples}")
        try:
            self.action_set = ActionSet(action_set)
        except ValueError:
            names = ", ".join(a.value for a in ActionSet)
            raise ScheduleError(f"action_set {action_set!r} is unknown; choose one of {names}") from None
        self.batch = batch
        self.samples = samples
        n, j, o, m = len(batch) * samples, batch.n_jobs, batch.n_operations, batch.n_machines
        self.n_rollouts, self.n_jobs, self.n_ops, self.n_machines = n, j, o, m
        self.routes = np.repeat(batch.routes.reshape(len(batch), j * o), samples, axis=0)
        self.times = np.repeat(batch.times.reshape(len(batch), j * o), samples, axis=0)
        # the machine after each operation (-1 after the last), for the wait at the next machine
        nxt = np.concatenate([batch.routes[:, :, 1:], np.full((len(batch), j, 1), -1)], axis=2)
        self.next_routes = np.repeat(nxt.reshape(len(batch), j * o), samples, axis=0)
        self.mean_time = np.repeat(batch.times.mean(axis=(1, 2)), samples)
        self.initial_bound = np.repeat(batch.lower_bound(), samples)
        self._rows = np.arange(n)
        self._job_base = np.arange(j) * o
        self.job_ready = np.zeros((n, j))
        self.machine_ready = np.zeros((n, m + 1))  # column m: a sentinel for "no next machine"
        self.next_op = np.zeros((n, j), dtype=np.int64)
        self.work_left = self.times.reshape(n, j, o).sum(axis=2)
        self.load_left = np.zeros((n, m + 1))
        np.add.at(self.load_left, (self._rows[:, None], self.routes), self.times)
        self.starts = np.zeros((n, j, o))
        self.makespan = np.zeros(n)
        self.steps_done = 0
        self._cache: tuple[int, _Candidates] | None = None
        # operations of each job from each position on, per machine: (rollouts, jobs, operations + 1, machines)
        on_machine = np.eye(m, dtype=np.float32)[self.routes.reshape(n, j, o)]
        suffix = np.flip(np.cumsum(np.flip(on_machine, axis=2), axis=2), axis=2)
        self._route_suffix = np.concatenate([suffix, np.zeros((n, j, 1, m), dtype=np.float32)], axis=2)

    @property
    def n_steps(self) -> int:
        """Steps to a complete schedule: one per operation."""
        return self.n_jobs * self.n_ops

    @property
    def done(self) -> bool:
        """Whether every rollout holds a complete schedule."""
        return self.steps_done >= self.n_steps

    def _candidates(self) -> _Candidates:
        """Per job: unfinished, flat operation index, machine, processing time, earliest start.

        Computed once per step: `mask`, `observe` and `observe_machines` of one state share it.
        """
        if self._cache is None or self._cache[0] != self.steps_done:
            self._cache = (self.steps_done, self._compute_candidates())
        return self._cache[1]

    def _compute_candidates(self) -> _Candidates:
        open_ = self.next_op < self.n_ops
        flat = self._job_base + np.minimum(self.next_op, self.n_ops - 1)
        machine = np.take_along_axis(self.routes, flat, axis=1)
        time = np.where(open_, np.take_along_axis(self.times, flat, axis=1), 0.0)
        est = np.maximum(self.job_ready, np.take_along_axis(self.machine_ready, machine, axis=1))
        return open_, flat, machine, time, est

    def mask(self) -> np.ndarray:
        """Valid actions, bool (rollouts, jobs)."""
        open_, _, _, time, est = self._candidates()
        return self._mask(open_, time, est)

    def _mask(self, open_: np.ndarray, time: np.ndarray, est: np.ndarray) -> np.ndarray:
        if self.action_set is ActionSet.ALL:
            return open_.copy()
        if self.action_set is ActionSet.ACTIVE:
            first_end = np.where(open_, est + time, np.inf).min(axis=1, keepdims=True)
            return open_ & (est < first_end)
        first_start = np.where(open_, est, np.inf).min(axis=1, keepdims=True)
        return open_ & (est <= first_start)

    def observe(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Describe every job's next operation.

        Returns:
            features float32 (rollouts, jobs, N_FEATURES), the valid-action mask bool (rollouts,
            jobs), and the machine of each job's next operation int64 (rollouts, jobs), -1 for a
            finished job.
        """
        open_, flat, machine, time, est = self._candidates()
        n, j = open_.shape
        u = self.mean_time[:, None]
        ready_m = np.take_along_axis(self.machine_ready, machine, axis=1)
        load_m = np.take_along_axis(self.load_left, machine, axis=1)
        ect = est + time
        inf = np.where(open_, 0.0, np.inf)
        first_start = (est + inf).min(axis=1, keepdims=True)
        first_end = (ect + inf).min(axis=1, keepdims=True)
        job_bound = np.where(open_, est + self.work_left, 0.0)
        bound = self._bound(job_bound)
        next_m = np.take_along_axis(self.next_routes, flat, axis=1)
        next_m = np.where(next_m < 0, self.n_machines, next_m)
        next_wait = np.where(next_m < self.n_machines, np.take_along_axis(self.machine_ready, next_m, axis=1) - ect, 0)
        same = (machine[:, :, None] == machine[:, None, :]) & open_[:, None, :]
        f = np.empty((n, j, N_FEATURES), dtype=np.float32)
        f[..., 0] = time / u
        f[..., 1] = (est - first_start) / u
        f[..., 2] = (self.job_ready - ready_m) / u
        f[..., 3] = (ect - first_end) / u
        f[..., 4] = est < first_end
        f[..., 5] = np.maximum(ect - self.makespan[:, None], 0.0) / u
        f[..., 6] = next_wait / u
        f[..., 7] = self.work_left / (u * self.n_ops)
        f[..., 8] = (self.n_ops - self.next_op) / self.n_ops
        f[..., 9] = job_bound / bound
        f[..., 10] = (ready_m + load_m) / bound
        f[..., 11] = (est + load_m) / bound
        f[..., 12] = load_m / (u * j)
        f[..., 13] = same.sum(axis=2) / j
        f[..., 14] = bound / self.initial_bound[:, None]
        f[..., 15] = self.steps_done / self.n_steps
        f[~open_] = 0.0
        return f, self._mask(open_, time, est), np.where(open_, machine, -1)

    def _bound(self, job_bound: np.ndarray) -> np.ndarray:
        """The schedule's current makespan lower bound (rollouts, 1), given each open job's completion bound."""
        machine_bound = self.machine_ready[:, :-1] + self.load_left[:, :-1]
        return np.maximum.reduce([self.makespan, job_bound.max(axis=1), machine_bound.max(axis=1)])[:, None]

    def observe_machines(self) -> tuple[np.ndarray, np.ndarray]:
        """Describe every machine, and where each job still goes.

        Returns:
            machine features float32 (rollouts, machines, N_MACHINE_FEATURES), and each job's
            remaining route as weights over the machines float32 (rollouts, jobs, machines): each of
            its unscheduled operations weighs 1/(its operations left) on its machine (0 for a
            finished job).
        """
        open_, _, machine, _, est = self._candidates()
        j, m = self.n_jobs, self.n_machines
        u = self.mean_time[:, None]
        bound = self._bound(np.where(open_, est + self.work_left, 0.0))
        first_start = np.where(open_, est, np.inf).min(axis=1, keepdims=True)
        ops_on = np.take_along_axis(self._route_suffix, self.next_op[:, :, None, None], axis=2)[:, :, 0]
        route_left = (ops_on / np.maximum(self.n_ops - self.next_op, 1)[:, :, None]).astype(np.float32)
        ops_left = ops_on.sum(axis=1)
        slot = self._rows[:, None] * (m + 1) + np.where(open_, machine, m)
        queued = np.bincount(slot.ravel(), minlength=self.n_rollouts * (m + 1)).reshape(self.n_rollouts, m + 1)
        ready = self.machine_ready[:, :-1]
        f = np.empty((self.n_rollouts, m, N_MACHINE_FEATURES), dtype=np.float32)
        f[..., 0] = (ready - first_start) / u
        f[..., 1] = self.load_left[:, :-1] / (u * j)
        f[..., 2] = (ready + self.load_left[:, :-1]) / bound
        f[..., 3] = queued[:, :-1] / j
        f[..., 4] = ops_left / j
        return f, route_left

    def step(self, jobs: np.ndarray) -> None:
        """Schedule the next operation of job `jobs[r]` in every rollout r at its earliest start."""
        jobs = np.asarray(jobs, dtype=np.int64)
        if self.done:
            raise ScheduleError("step(): every schedule is already complete")
        if jobs.shape != (self.n_rollouts,) or jobs.min() < 0 or jobs.max() >= self.n_jobs:
            raise ScheduleError(f"jobs: need {self.n_rollouts} job ids in 0..{self.n_jobs - 1}, got shape {jobs.shape}")
        r = self._rows
        op = self.next_op[r, jobs]
        if (op >= self.n_ops).any():
            raise ScheduleError(f"jobs: rollout {int(np.argmax(op >= self.n_ops))} chose a finished job")
        flat = self._job_base[jobs] + op
        machine, time = self.routes[r, flat], self.times[r, flat]
        start = np.maximum(self.job_ready[r, jobs], self.machine_ready[r, machine])
        end = start + time
        self.starts[r, jobs, op] = start
        self.job_ready[r, jobs] = end
        self.machine_ready[r, machine] = end
        self.next_op[r, jobs] += 1
        self.work_left[r, jobs] -= time
        self.load_left[r, machine] -= time
        np.maximum(self.makespan, end, out=self.makespan)
        self.steps_done += 1
