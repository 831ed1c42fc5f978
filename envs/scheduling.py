"""Event-driven dispatching: which job a free station starts next."""

from __future__ import annotations

import enum
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from envs.base import LineEnv, Task, delta
from hardware import Command, Decision, DecisionKind, Dispatch, Frame, JobStatus, Lever, Line, LineSpec
from hardware.twin import State

_JOB_FEATURES = 9
_STATION_FEATURES = 5
_WORKING = np.array([State.WARMUP, State.BUSY, State.BLOCKED, State.CHANGEOVER], dtype=float)
_STOPPED = np.array([State.DOWN, State.MAINTENANCE, State.OFF, State.STANDBY], dtype=float)


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
    idle and the decision comes back at the next event, so every semi-active schedule is
    reachable. `action_masks()` marks the valid actions (the jobs waiting there, and waiting while
    any job is still in process or unreleased). An invalid action is never executed: the line's
    default rule (FIFO) decides instead and `info["invalid_action"]` is True.

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

    ## Arguments
    `line` (shipped line name, file path or `Line`; default `flow5_orders`), `instance` (a shipped
    job-shop instance such as `"ft06"` or an instance file path; replaces `line`), `scenario`,
    `objective` (`makespan` or `weighted_tardiness`).

    ## Version History
    v0: initial version.
    """

    levers: ClassVar[frozenset[Lever]] = frozenset({Lever.DISPATCH})

    def __init__(self, spec: LineSpec, objective: str = "makespan") -> None:
        super().__init__(spec)
        if not spec.jobs or spec.open_arrivals:
            raise ValueError(f"Scheduling needs a line with a fixed job set and no open arrivals; {spec.name!r} is not")
        try:
            self.objective = Objective(objective)
        except ValueError:
            options = ", ".join(o.value for o in Objective)
            raise ValueError(f"objective {objective!r} is unknown; choose one of {options}") from None
        jobs = spec.jobs
        n, m = len(jobs), len(spec.stations)
        self.n_jobs = n
        self._rows = np.arange(n)
        self._n_ops = np.array([len(j.route) for j in jobs])
        width = int(self._n_ops.max())
        times = np.zeros((n, width + 1))
        for i, j in enumerate(jobs):
            times[i, : len(j.times_s)] = j.times_s
        self._times = times
        self._suffix = np.cumsum(times[:, ::-1], axis=1)[:, ::-1]  # work left from each step on
        self._variant = np.array([j.variant for j in jobs], dtype=float)
        self._due = np.array([j.due_s for j in jobs])
        self._scale_ops = float(width)
        self._scale_work = float(self._suffix[:, 0].max())
        self._scale_op = float(times.max())
        self._horizon = float(self._suffix[:, 0].sum())
        self._state_idx = np.array([spec.sensor_index(f"{s}.state") for s in spec.stations])
        self._setup_idx = np.array([spec.sensor_index(f"{s}.setup_variant") for s in spec.stations])
        self._queue_idx = np.array([spec.sensor_index(f"{s}.queue_parts") for s in spec.stations])
        self._station_rows = np.arange(m)
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (n * _JOB_FEATURES + m * _STATION_FEATURES + 1,), np.float32)
        self.action_space = gym.spaces.Discrete(n + 1)
        self._declined: set[int] = set()
        self._invalid = False

    def decision(self, frame: Frame) -> Decision | None:
        """The dispatch decision the agent is asked now, or None when the episode is over."""
        for d in frame.pending:
            if d.kind is DecisionKind.DISPATCH and d.station not in self._declined:
                return d
        return None

    def mask(self, frame: Frame) -> np.ndarray:
        """Valid actions on `frame`: the jobs waiting at the decision's station, and waiting if it can end."""
        valid = np.zeros(self.n_jobs + 1, dtype=bool)
        d = self.decision(frame)
        if d is not None:
            valid[list(d.jobs)] = True
            valid[self.n_jobs] = self._can_wait(frame)
        return valid

    def start(self, line: Line, frame: Frame) -> Frame:
        """Run to the first decision."""
        self._declined = set()
        return self._to_decision(line, frame)

    def command(self, action: Any, frame: Frame) -> Command:
        """Dispatch the chosen job, or decline (wait); an invalid action falls back to FIFO."""
        d = self.decision(frame)
        if d is None:
            raise RuntimeError("step() after the episode ended; call reset()")
        a = int(action)
        self._invalid = not self.mask(frame)[a] if 0 <= a <= self.n_jobs else True
        if self._invalid:
            a = d.jobs[0]
        if a == self.n_jobs:
            self._declined.add(d.station if d.station is not None else -1)
            return Command()
        return Command(dispatch=(Dispatch(d.station if d.station is not None else -1, a),))

    def advance(self, line: Line, frame: Frame) -> Frame:
        """Offer the next open decision at this instant, or run the line to the next one."""
        now = line.read()
        return now if self.decision(now) is not None else self._to_decision(line, now)

    def terminated(self, frame: Frame) -> bool:
        """All jobs finished or scrapped."""
        return bool(frame.jobs is not None and (frame.jobs.status >= JobStatus.DONE).all())

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
        info: dict[str, Any] = {"station": None if d is None else d.station, "invalid_action": self._invalid}
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
        step = np.minimum(jobs.step, self._n_ops)
        status = jobs.status
        here = np.zeros(self.n_jobs)
        if d is not None:
            here[list(d.jobs)] = 1.0
        left = self._suffix[self._rows, step]
        open_job = status < JobStatus.DONE
        setup = frame.values[self._setup_idx[station]] if station >= 0 else -1.0
        job_part = np.stack(
            [
                here,
                status == JobStatus.QUEUED,
                status == JobStatus.ACTIVE,
                ~open_job,
                (self._n_ops - step) / self._scale_ops,
                left / self._scale_work,
                self._times[self._rows, step] / self._scale_op,
                np.where(open_job, np.clip((self._due - frame.time - left) / self._horizon, -1.0, 1.0), 0.0),
                (setup >= 0) & (self._variant != setup),
            ],
            axis=1,
        )
        state = frame.values[self._state_idx]
        station_part = np.stack(
            [
                np.isin(state, _WORKING),
                np.isin(state, _STOPPED),
                state == State.IDLE,
                self._station_rows == station,
                np.minimum(frame.values[self._queue_idx] / self.n_jobs, 1.0),
            ],
            axis=1,
        )
        clock = min(frame.time / self._horizon, 1.0)
        return np.concatenate([job_part.ravel(), station_part.ravel(), [clock]]).astype(np.float32)

    def _can_wait(self, frame: Frame) -> bool:
        jobs = frame.jobs
        return jobs is not None and bool(((jobs.status == JobStatus.ACTIVE) | (jobs.status == JobStatus.PENDING)).any())

    def _clock(self, frame: Frame) -> float:
        return frame.kpis.last_completion_s if self.terminated(frame) else frame.time

    def _to_decision(self, line: Line, frame: Frame) -> Frame:
        while self.decision(frame) is None and not self.terminated(frame):
            frame = line.advance(self._horizon)
            self._declined = set()  # an event happened: every free station is asked again
        return frame


class SchedulingEnv(LineEnv):
    """`LineEnv` with `action_masks()` for sb3-contrib's MaskablePPO."""

    task: SchedulingTask

    def action_masks(self) -> np.ndarray:
        """Boolean mask of the valid actions now."""
        return self.task.mask(self.frame)
