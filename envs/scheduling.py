"""Event-driven dispatching: which job a free station starts next."""

from __future__ import annotations

import enum
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from envs.base import LineEnv, Task, delta
from hardware import (
    EVENTFUL_STATES,
    STOPPED_STATES,
    WORKING_STATES,
    Command,
    Decision,
    DecisionKind,
    Dispatch,
    Frame,
    JobStatus,
    Lever,
    Line,
    LineSpec,
    state_mask,
)
from hardware import StationState as State

JOB_FEATURES = 9
_STATION_FEATURES = 5
# columns of a job's features: waits here, queued, in process, finished, ops left, work left,
# next operation's time, due-date slack, changeover needed
JOB_WAITS, JOB_OPS_LEFT, JOB_WORK_LEFT, JOB_NEXT_OP, JOB_SLACK = 0, 4, 5, 6, 7
# station state code -> (working, stopped, idle) indicator rows
_STATE_FEATURES = np.stack(
    [state_mask(WORKING_STATES), state_mask(STOPPED_STATES), state_mask(frozenset({State.IDLE}))], axis=1
).astype(float)
_EVENTFUL = state_mask(EVENTFUL_STATES)  # states that end without the agent: the line moves on by itself
# job status code -> (queued, in process, finished, open) indicator rows
_STATUS_FEATURES = np.zeros((len(JobStatus), 4))
_STATUS_FEATURES[JobStatus.QUEUED, [0, 3]] = 1.0
_STATUS_FEATURES[JobStatus.ACTIVE, [1, 3]] = 1.0
_STATUS_FEATURES[[JobStatus.DONE, JobStatus.SCRAPPED], 2] = 1.0
_STATUS_FEATURES[JobStatus.PENDING, 3] = 1.0
_DISPATCH = DecisionKind.DISPATCH
_FINISHED = int(JobStatus.DONE)
_PENDING = int(JobStatus.PENDING)
# A line that offers no decision and does not finish within this many horizons of line clock (or
# this many advances) is stuck: `_run_to_decision` says so instead of looping forever.
_STALL_HORIZONS = 100
_STALL_ADVANCES = 10_000


class Objective(enum.Enum):
    """What a schedule is judged by."""

    MAKESPAN = "makespan"
    WEIGHTED_TARDINESS = "weighted_tardiness"


class SchedulingTask(Task):
    """Dispatching on a line with a fixed job set (a job-shop instance or an order book).

    ## Description
    Whenever a station is free and jobs wait in its queue, the agent picks which job it starts
    (`info["station"]` names the station). Every other lever follows the line's own rules.

    ## Action Space
    `Discrete(n_jobs + 1)`. Action `j < n_jobs` starts job `j`'s next operation on the station
    (jobs numbered in instance-file / order-book order); action `n_jobs` waits: the station stays
    idle and is asked again at the next event. `action_masks()` marks the valid actions: the jobs
    waiting there, and waiting whenever the line will move on without this station: another
    station still has an open decision at this instant, a job was dispatched at this instant, a
    station processes, changes over, warms up or is under repair, or a job is still to be released
    (a station blocked by a full buffer does not count). So when every open decision at an
    instant waits, the last one cannot, and a valid action never stalls the line. On a
    deterministic line this makes every semi-active schedule, and with it every optimal makespan
    schedule, reachable through valid actions: each operation of such a schedule starts when its
    job's or its machine's previous operation ends, an instant at which the line asks that machine
    again (`tests/integration/test_scheduling_reachability.py` checks it exhaustively on small
    instances). An invalid action is never executed: the line's default rule (FIFO, see
    `line_rule`) decides instead and `info["invalid_action"]` is True.

    ## Observation Space
    `Box(-1, 1, (9 n_jobs + 5 n_stations + 1,), float32)`. Per job: waits at this station, queued,
    in process, finished, operations left, remaining work, next operation's time, due-date slack
    and whether starting it here needs a changeover. Per station: working, stopped, idle, is this
    station, queue length. Last, the clock. Times are scaled by the job set's total work.

    ## Rewards
    `makespan` (default): minus the line-clock time elapsed during the step, so the episode sum is
    minus the makespan. `weighted_tardiness`: minus the increase of weighted tardiness, so the sum
    is minus the schedule's total weighted tardiness.

    ## Starting State
    All jobs released at their release times; the first decision at time 0 on instances.

    ## Episode End
    Terminates when every job is finished or scrapped; `info["makespan"]` then holds the makespan.
    A line that neither offers a decision nor finishes for 100 times the job set's total work of
    line clock raises a `RuntimeError` naming the line and the time.

    ## Arguments
    `line` (shipped line name, file path or `Line`; default `flow5_orders`), `instance` (a shipped
    job-shop instance such as `"ft06"`, an instance file path or a loaded `Instance`; replaces `line`), `scenario`,
    `objective` (`makespan` or `weighted_tardiness`).

    ## Version History
    v0: initial version.
    """

    levers: ClassVar[frozenset[Lever]] = frozenset({Lever.DISPATCH})

    def __init__(self, spec: LineSpec, objective: str = "makespan") -> None:
        super().__init__(spec)
        if not spec.jobs or spec.open_arrivals:
            raise ValueError(
                f"Scheduling needs a line with a fixed job set and no open arrivals; {spec.name!r} is not "
                "(flow5_orders is one; or give a job-shop instance, e.g. instance=ft06)"
            )
        try:
            self.objective = Objective(objective)
        except ValueError:
            options = ", ".join(o.value for o in Objective)
            raise ValueError(f"objective {objective!r} is unknown; choose one of {options}") from None
        jobs = spec.jobs
        n, m = len(jobs), len(spec.stations)
        self.n_jobs = n
        n_ops = np.array([len(j.route) for j in jobs])
        width = int(n_ops.max())
        times = np.zeros((n, width + 1))
        for i, j in enumerate(jobs):
            times[i, : len(j.times_s)] = j.times_s
        suffix = np.cumsum(times[:, ::-1], axis=1)[:, ::-1]  # work left from each step on
        self._variant = np.array([j.variant for j in jobs], dtype=float)
        self._scale_work = float(suffix[:, 0].max())
        self._horizon = float(suffix[:, 0].sum())
        self._inv_horizon, self._inv_jobs = 1.0 / self._horizon, 1.0 / n
        # rows of the job-feature table by (job, step, status), flattened: see `_job_features`
        self._job_table = self._job_features(n_ops, times, suffix, np.array([j.due_s for j in jobs])).reshape(-1, 8)
        self._job_rows = np.arange(n) * times.shape[1] * len(JobStatus)
        self._state_idx = np.array([spec.sensor_index(f"{s}.state") for s in spec.stations])
        self._setup_idx = np.array([spec.sensor_index(f"{s}.setup_variant") for s in spec.stations])
        names = {x.name for x in spec.sensors}
        store = ("line.stock_units", "line.on_order_units")
        self._stock_idx = [spec.sensor_index(n) for n in store] if set(store) <= names else []
        self._queue_idx = np.array([spec.sensor_index(f"{s}.queue_parts") for s in spec.stations])
        self._obs = np.zeros(n * JOB_FEATURES + m * _STATION_FEATURES + 1, dtype=np.float32)
        self._job_buf = self._obs[: n * JOB_FEATURES].reshape(n, JOB_FEATURES)
        self._station_buf = self._obs[n * JOB_FEATURES : -1].reshape(m, _STATION_FEATURES)
        self.observation_space = gym.spaces.Box(-1.0, 1.0, self._obs.shape, np.float32)
        self.action_space = gym.spaces.Discrete(n + 1)
        self._declined: set[int] = set()
        self._dispatched_now = False  # a dispatch at this instant: its station is about to work
        self._mask_key: tuple[int, int] = (-1, -1)  # (frame seq, stations settled) the cached mask is for
        self._mask = np.zeros(n + 1, dtype=bool)
        self._done_key, self._done = -1, False  # frame seq the cached `terminated` answer is for

    def _job_features(self, n_ops: np.ndarray, times: np.ndarray, suffix: np.ndarray, due: np.ndarray) -> np.ndarray:
        """Table [job, step, status] of the job features that do not depend on the clock.

        Columns: queued, in process, finished, operations left, work left, next operation's time
        (all scaled), (due date - work left) / horizon, and whether the job is open (not done).
        """
        n, steps = times.shape
        status = _STATUS_FEATURES[None, None, :, :]
        table = np.zeros((n, steps, len(JobStatus), 8))
        table[..., 0:3] = status[..., :3]
        table[..., 7] = status[..., 3]
        step = np.arange(steps)[None, :]
        per_step = [
            np.maximum(n_ops[:, None] - step, 0) / (steps - 1),
            suffix / self._scale_work,
            times / float(times.max()),
            (due[:, None] - suffix) * self._inv_horizon,
        ]
        for col, values in zip((3, 4, 5, 6), per_step, strict=True):
            table[..., col] = values[:, :, None]
        return table

    @property
    def horizon_s(self) -> float:
        """Time scale of the observation's slack and clock: the job set's total work, s."""
        return self._horizon

    @property
    def work_scale_s(self) -> float:
        """Scale of the observation's remaining work: the largest job's total work, s."""
        return self._scale_work

    def decision(self, frame: Frame) -> Decision | None:
        """The dispatch decision the agent is asked now, or None when the episode is over."""
        for d in frame.pending:
            if d.kind is _DISPATCH and d.station not in self._declined:
                return d
        return None

    def line_rule(self, frame: Frame) -> int:
        """The action the line's own rule (FIFO) takes on `frame`: the first job in the deciding station's queue.

        The wait action when no decision is open (the episode is over). Jobs that reached a station
        at the same instant queue in the order the operations that sent them were started, which
        in the env is the order of its decisions: a whole run of this rule can differ from the
        line's own FIFO run where such ties occur (ft06: 65 against 61; la01: both 772).
        """
        d = self.decision(frame)
        return self.n_jobs if d is None or not d.jobs else d.jobs[0]

    def mask(self, frame: Frame) -> np.ndarray:
        """Valid actions on `frame`: the jobs waiting at the decision's station, and waiting if the line moves on."""
        key = (frame.seq, len(self._declined))
        if self._mask_key != key:
            valid = np.zeros(self.n_jobs + 1, dtype=bool)
            d = self.decision(frame)
            if d is not None:
                valid[list(d.jobs)] = True
                valid[self.n_jobs] = self._can_wait(frame, d)
            self._mask_key, self._mask = key, valid
        return self._mask.copy()

    def start(self, line: Line, frame: Frame) -> Frame:
        """Run to the first decision."""
        self._declined = set()
        self._dispatched_now = False
        return frame if self.decision(frame) is not None or self.terminated(frame) else self._run_to_decision(line)

    def command(self, action: Any, frame: Frame) -> Command:
        """Dispatch the chosen job, or decline (wait); an invalid action falls back to the line's rule."""
        d = self.decision(frame)
        if d is None:
            raise RuntimeError("step() after the episode ended; call reset()")
        a = self.parse_discrete(action)
        if a is None or not self.mask(frame)[a]:
            self.mark_invalid()
            a = self.line_rule(frame)
        station = int(d.station)  # type: ignore[arg-type]  # a dispatch decision names its station
        self._declined.add(station)  # settled for this instant, by a dispatch or by waiting
        if a == self.n_jobs:
            return Command()
        self._dispatched_now = True
        return Command(dispatch=(Dispatch(station, a),))

    def advance(self, line: Line, frame: Frame) -> Frame:
        """Offer the next open decision at this instant, or run the line to the next one."""
        return line.read() if self.decision(frame) is not None else self._run_to_decision(line)

    def terminated(self, frame: Frame) -> bool:
        """All jobs finished or scrapped."""
        if self._done_key != frame.seq:
            self._done_key = frame.seq
            self._done = frame.jobs is not None and int(frame.jobs.status.min()) >= _FINISHED
        return self._done

    def reward(self, before: Frame, after: Frame) -> tuple[float, dict[str, float]]:
        """Minus elapsed schedule time, or minus added weighted tardiness."""
        if self.objective is Objective.MAKESPAN:
            r = -(self._clock(after) - self._clock(before))
        else:
            r = -delta(before.kpis, after.kpis, "weighted_tardiness_s")
        return r, {f"reward/{self.objective.value}": r}

    def info(self, frame: Frame) -> dict[str, Any]:
        """The station deciding now; at the end, the makespan."""
        d = self.decision(frame)
        info: dict[str, Any] = {"station": None if d is None else d.station}
        if self.terminated(frame):
            info["makespan"] = frame.kpis.last_completion_s
        return info

    def observe(self, frame: Frame) -> np.ndarray:
        """Per-job and per-station features, then the clock."""
        jobs = frame.jobs
        if jobs is None:
            raise ValueError(f"line {self.spec.name!r} sent a frame without job status")
        d = self.decision(frame)
        station = -1 if d is None or d.station is None else d.station
        features = self._job_table.take(self._job_rows + jobs.step * len(JobStatus) + jobs.status, axis=0)
        clock = frame.time * self._inv_horizon
        slack = features[:, 6]  # (due - work left) / horizon, then the slack itself
        slack -= clock
        np.maximum(slack, -1.0, out=slack)
        np.minimum(slack, 1.0, out=slack)
        slack *= features[:, 7]  # open jobs only
        values = frame.values
        setup = values[self._setup_idx[station]] if station >= 0 else -1.0
        features[:, 7] = self._variant != setup if setup >= 0 else 0.0  # changeover needed here
        job = self._job_buf
        job[:, 1:] = features
        job[:, JOB_WAITS] = 0.0
        if station >= 0:
            job[list(d.jobs), JOB_WAITS] = 1.0  # type: ignore[union-attr]  # station >= 0: a decision is open
        st = self._station_buf
        st[:, 0:3] = _STATE_FEATURES.take(values.take(self._state_idx).astype(np.intp), axis=0)
        st[:, 3] = 0.0
        if station >= 0:
            st[station, 3] = 1.0
        st[:, 4] = np.minimum(values.take(self._queue_idx) * self._inv_jobs, 1.0)
        self._obs[-1] = min(clock, 1.0)
        return self._obs.copy()

    def _can_wait(self, frame: Frame, asked: Decision) -> bool:
        """Whether the line will move on without the station `asked` now.

        It does while another station still has an open decision at this instant, a job was
        dispatched at this instant, a station is in a state that ends by itself, a job is still
        to be released, or raw material is on order (its delivery arrives by itself). A blocked
        station does not count: it waits for a queue that only a dispatch can empty.
        """
        if self._dispatched_now or (self._stock_idx and frame.values[self._stock_idx[1]] > 0):
            return True
        for d in frame.pending:
            if d.kind is _DISPATCH and d.station != asked.station and d.station not in self._declined:
                return True
        jobs = frame.jobs
        if jobs is not None and bool((jobs.status == _PENDING).any()):
            return True
        return bool(_EVENTFUL[frame.values[self._state_idx].astype(np.intp)].any())

    def _clock(self, frame: Frame) -> float:
        return frame.kpis.last_completion_s if self.terminated(frame) else frame.time

    def _run_to_decision(self, line: Line) -> Frame:
        """Advance the line until it offers a decision or finishes; a line that does neither is an error.

        The line is given `_STALL_HORIZONS` times the job set's work from the last moment it had
        raw material on its way (a delivery the line waits for may take longer than the work), and
        at most `_STALL_ADVANCES` advances in all.
        """
        frame = line.read()
        give_up_s = frame.time + _STALL_HORIZONS * self._horizon
        for _ in range(_STALL_ADVANCES):
            frame = line.advance(self._horizon)
            self._declined = set()  # an event happened: every free station is asked again
            self._dispatched_now = False
            if self.decision(frame) is not None or self.terminated(frame):
                return frame
            if self._stock_idx and frame.values[self._stock_idx[1]] > 0:
                give_up_s = frame.time + _STALL_HORIZONS * self._horizon  # material on its way: waiting is progress
            if frame.time > give_up_s:
                break
        store = (
            f"; the raw-material store holds {frame.values[self._stock_idx[0]]:g} units with "
            f"{frame.values[self._stock_idx[1]]:g} on order"
            if self._stock_idx
            else ""
        )
        raise RuntimeError(
            f"line {self.spec.name!r} is stuck at line clock {frame.time:.0f} s: it neither offered a dispatch "
            f"decision nor finished the job set within {_STALL_HORIZONS} times its {self._horizon:.0f} s of work "
            f"(or {_STALL_ADVANCES} advances){store}"
        )


class SchedulingEnv(LineEnv):
    """`LineEnv` with `action_masks()` for sb3-contrib's MaskablePPO."""

    task: SchedulingTask

    def action_masks(self) -> np.ndarray:
        """Boolean mask of the valid actions now."""
        return self.task.mask(self.frame)
