"""Dispatching rules for the Scheduling task: FIFO, SPT, LPT, MWKR, MOPNR and EDD."""

from __future__ import annotations

import enum
from typing import Any

import gymnasium as gym
import numpy as np

from agents.baseline import Baseline
from envs.scheduling import JOB_FEATURES, SchedulingTask
from envs.scheduling import JOB_NEXT_OP as NEXT_OP
from envs.scheduling import JOB_OPS_LEFT as OPS_LEFT
from envs.scheduling import JOB_WAITS as WAITS
from envs.scheduling import JOB_WORK_LEFT as WORK_LEFT

# Keys read from the float32 observation tie within one float32 rounding of the best, relative to its
# size: equal work left, summed in another order, may round to neighbouring float32 values; a relative
# test keeps different times apart at any scale (an absolute one merged them next to a very long job).
_OBSERVED_TIE = float(np.finfo(np.float32).eps)


class Rule(enum.Enum):
    """A priority rule: which waiting job a free station starts."""

    FIFO = "fifo"  # first in queue
    SPT = "spt"  # shortest next operation
    LPT = "lpt"  # longest next operation
    MWKR = "mwkr"  # most work remaining
    MOPNR = "mopnr"  # most operations remaining
    EDD = "edd"  # earliest due date


class DispatchRule(Baseline):
    """A priority dispatching rule over the jobs waiting at the deciding station.

    It only picks jobs whose waits-here flag is set, never waits, and breaks ties by the lowest
    job id. With no job waiting (only after the episode ended) it answers the wait action.
    Every rule but FIFO decides from the observation. Arrival order is not observed, so FIFO asks
    the env it was built for what the line's own rule takes now (`task.line_rule(env.frame)`, the
    first job in the deciding station's queue, ties of arrival in the order of the env's
    decisions): it ignores the observation it is given, answers for that env's current state
    only, and so predicts for a batch of one.

    EDD ranks by the jobs' due dates, which it reads from the line's spec: the observation's
    slack is clipped to [-1, 1] and so cannot order due dates more than the job set's total work
    apart. The other rules' keys come from the observation, where keys within one float32
    rounding of each other (relative to their size) tie.

    Args:
        env: a Scheduling env.
        rule: a `Rule` or its name: "fifo", "spt", "lpt", "mwkr", "mopnr" or "edd".
    """

    tasks = (SchedulingTask,)
    task: SchedulingTask

    def __init__(self, env: gym.Env[Any, Any], rule: str | Rule = "spt") -> None:
        super().__init__(env)
        try:
            self.rule = Rule(rule)
        except ValueError:
            names = ", ".join(r.value for r in Rule)
            raise ValueError(f"rule {rule!r} is unknown; choose one of {names}") from None
        self.n_jobs = self.task.n_jobs
        self._due = np.array([job.due_s for job in self.task.spec.jobs])
        self._tie = 0.0 if self.rule is Rule.EDD else _OBSERVED_TIE

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Job ids for a batch of observations (the wait action where no job waits)."""
        if self.rule is Rule.FIFO:
            return self._fifo(len(obs))
        jobs = obs[:, : self.n_jobs * JOB_FEATURES].reshape(len(obs), self.n_jobs, JOB_FEATURES)
        waiting = jobs[:, :, WAITS] > 0.5
        key = np.where(waiting, self._key(jobs), np.inf)
        best = key.min(axis=1, keepdims=True)
        first = np.argmax(key <= best + self._tie * np.abs(best), axis=1)  # the lowest id among the best
        return np.where(waiting.any(axis=1), first, self.n_jobs)

    def _key(self, jobs: np.ndarray) -> np.ndarray:
        """Priority of each job, lower first."""
        if self.rule is Rule.SPT:
            return jobs[:, :, NEXT_OP]
        if self.rule is Rule.LPT:
            return -jobs[:, :, NEXT_OP]
        if self.rule is Rule.MWKR:
            return -jobs[:, :, WORK_LEFT]
        if self.rule is Rule.MOPNR:
            return -jobs[:, :, OPS_LEFT]
        return np.broadcast_to(self._due, jobs.shape[:2])  # EDD

    def _fifo(self, n: int) -> np.ndarray:
        if n != 1:
            raise ValueError(f"observation: FIFO reads its one env's queue, so it predicts one at a time, got {n}")
        return np.array([self.task.line_rule(self.env.frame)])
