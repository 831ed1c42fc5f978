"""The deployment's control loop: each step reads, decides, asks the guard, writes or not, and logs.

`run_deployment` runs control steps on a `Deployment` that `experiments.deploy.setup` built and
checked. A step that meets a fault (no answer, stale data, a refused command, a policy without a
valid action) is logged with it and writes no setpoint; the loop waits for the line's next tick
in short slices, so a stop request is heard within one, and attaches afresh when the PLC's clock or
counters went back (a restart). A step that finds another controller's command accepted by the PLC
is logged, and then the run stops (`AnotherController`): the PLC's watchdog hands the line back to
its own control.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np

from agents.artifact import PolicyArtifact
from envs.base import Task
from hardware import Command, DecisionKind, Frame
from hardware.audit import AuditLog, AuditRecord, AuditSpaceLow, short_of_room
from hardware.guard import Guard, Verdict
from hardware.modbus import (
    AnotherController,
    CommandNotSent,
    IncompatiblePlc,
    LeverLocal,
    LineRestarted,
    ModbusLine,
    ModbusLineError,
    StaleData,
)
from hardware.shadow import ShadowLine

_SLICES = 20  # a wait for the next tick listens for a stop request this many times per control period
CHECKPOINT_EVERY = 100  # steps between checkpoints of the audit log's write-ahead log


@dataclass
class Deployment:
    """Everything a run needs, checked and connected."""

    mode: str
    artifact: PolicyArtifact
    sha256: str  # `artifact_sha256` of the artifact
    task: Task
    line: ModbusLine  # the connection (read-only in shadow mode)
    view: ShadowLine | ModbusLine  # what the loop reads and writes through
    guard: Guard
    audit: AuditLog
    period_s: float
    retry_s: float
    max_policy_faults: int  # steps in a row without a valid action before the run stops
    audit_min_free_mb: float  # room the audit log's disk must have before a step acts, MB (0: no check)
    decided_at: float | None = None  # line time of the frame the last decision was made on, s
    stepping: bool = False  # a control step is under way: an interrupt now may cut it before it is logged


@dataclass
class Tally:
    """What a run did so far, for the live status line and the summary."""

    steps: int = 0
    interventions: int = 0  # steps whose verdict was not a plain pass
    faults: int = 0  # every fault met: in steps, and in attaching or waiting for a tick (those not logged)
    faulted_steps: int = 0  # steps logged with a fault
    written: int = 0
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=1000))  # the latest steps'
    reattach: bool = False  # the last step met a clock set back: attach afresh before the next
    policy_faults_in_row: int = 0  # steps in a row whose policy gave no valid action
    last_reasons: tuple[str, ...] = ()
    last_error: str | None = None
    staleness_s: float = math.nan

    def line(self, mode: str) -> str:
        """The live status line."""
        lat = np.percentile(self.latencies_ms, [50, 99]) if self.latencies_ms else (math.nan, math.nan)
        reasons = ", ".join(self.last_reasons) or "-"
        fault = f" (last: {self.last_error})" if self.last_error else ""
        return (
            f"{mode} | step {self.steps} | written {self.written} | interventions {self.interventions} (last: "
            f"{reasons}) | faults {self.faults}{fault} | staleness {self.staleness_s:.2f} s | decision p50 "
            f"{lat[0]:.2f} ms p99 {lat[1]:.2f} ms"
        )


def run_deployment(dep: Deployment, stop: threading.Event, steps: int | None, status: TextIO | None,
                   status_every_s: float = 1.0) -> Tally:  # fmt: skip
    """Run control steps until `stop` is set or `steps` are done; every step is in the audit log."""
    tally = Tally()
    shown = -math.inf

    def show() -> None:
        nonlocal shown
        if status is not None and status_every_s > 0 and time.monotonic() - shown >= status_every_s:
            shown = time.monotonic()
            status.write("\r" + tally.line(dep.mode))
            status.flush()

    try:
        frame = _attach(dep, stop, tally, show)
        log_ms: float | None = None  # the last append's latency: none before the run's first record
        while frame is not None and not stop.is_set() and (steps is None or tally.steps < steps):
            dep.stepping = True
            frame, log_ms = control_step(dep, frame, tally, log_ms)
            dep.stepping = False
            if tally.policy_faults_in_row >= dep.max_policy_faults:
                raise PolicyGaveUp(
                    f"the policy gave no valid action for {tally.policy_faults_in_row} steps in a row "
                    f"(max_policy_faults; the last: {tally.last_error}); the run stops, and the PLC's watchdog "
                    "hands the line back to its own control"
                )
            show()
            if (steps is not None and tally.steps >= steps) or stop.is_set():
                break
            if tally.last_error is not None:
                stop.wait(dep.retry_s)  # before the next try; a stop request ends the wait
            if tally.reattach:
                tally.reattach = False
                frame = _attach(dep, stop, tally, show)
                continue
            frame = _wait_tick(dep, frame, stop, tally)
    finally:  # the last status on a line of its own, also before the message of an error that stops the run
        if status is not None:
            status.write("\r" + tally.line(dep.mode) + "\n")
    return tally


def _attach(dep: Deployment, stop: threading.Event, tally: Tally, show: Callable[[], None]) -> Frame | None:
    """Attach to the line, retrying while it does not answer; a PLC that cannot serve the task ends the run.

    Each failed try counts as a fault and shows on the status line with its error: a PLC that is
    not there keeps the run waiting, not silent.

    Raises:
        IncompatiblePlc: the PLC runs another control period or another register map, or keeps a
            lever of the task local at the first attach.
    """
    dep.decided_at = None
    dep.guard.reset()  # after a restart the line's clock starts again: the rate limit counts from what it runs
    while not stop.is_set():
        try:
            return dep.view.reset()
        except IncompatiblePlc:
            raise
        except ModbusLineError as exc:
            tally.faults += 1
            tally.last_error = f"attaching: {type(exc).__name__}: {exc}"
            show()
            stop.wait(dep.retry_s)
    return None


def _wait_tick(dep: Deployment, frame: Frame, stop: threading.Event, tally: Tally) -> Frame:
    """Wait for the line's next control tick in short slices, so that a stop request is heard within one.

    A fault while waiting ends the wait after `retry_s`: the next step then meets the fault too and
    is logged with it, so the audit log shows every attempt, not only the steps that worked.
    """
    if tally.steps % CHECKPOINT_EVERY == 0:
        dep.audit.checkpoint()  # between steps, where it delays no decision
    target = frame.time + dep.period_s
    now = frame
    while not stop.is_set():
        try:
            now = dep.view.advance(max(min(target - now.time, dep.period_s / _SLICES), 1e-3))
        except ModbusLineError:
            tally.faults += 1
            stop.wait(dep.retry_s)
            break
        if now.time >= target or any(d.kind is DecisionKind.TICK for d in now.pending):
            break
    return now


def control_step(dep: Deployment, last: Frame, tally: Tally, log_ms: float | None) -> tuple[Frame, float]:
    """One control step; returns the frame it decided on and the audit append's latency.

    `log_ms` is the previous record's append, the step's `log` stage (None on the run's first step,
    which has no `log` stage: a 0 there was counted as a sample).

    Raises:
        AnotherController: the PLC accepted a command this run did not send (after the step is logged).
        AuditSpaceLow: the audit log's disk had less than `audit_min_free_mb` free when the step was
            to act: nothing went out (no block, no heartbeat); raised after the step is logged, in
            the room kept for it.
    """
    began, t0 = time.time(), time.perf_counter()
    lat: dict[str, float] = {}
    error: str | None = None
    undecided = False  # the policy gave no valid action (a `PolicyFault`)
    frame, obs = last, np.full(dep.artifact.observation_space.shape, np.nan)
    proposed = np.full(len(dep.line.spec.actuators), np.nan)
    verdict: Verdict | None = None
    written: np.ndarray | None = None
    echo: int | None = None
    stopping: AnotherController | AuditSpaceLow | None = None  # ends the run once the step is logged
    status = dep.view.status()
    try:
        frame = dep.view.read()
        status = dep.view.status()  # what the guard decides on, recorded as such
        lat["read"] = _ms(t0)
        if dep.decided_at is not None and frame.time <= dep.decided_at:
            raise StaleData(
                f"line {dep.line.spec.name!r}: the line clock stands at {frame.time:.3f} s, where the last "
                "decision was made: no new data to decide on"
            )
        obs, command = _decide(dep, frame, lat)
        if command.setpoints is not None:
            proposed = np.asarray(command.setpoints, dtype=float)
        t = time.perf_counter()
        verdict = dep.guard.check(proposed, frame, status, time.time(), observation=obs)
        lat["guard"] = _ms(t)
        t = time.perf_counter()
        dep.decided_at = frame.time
        _check_room(dep)
        if _sends(dep, verdict):
            written = verdict.setpoints  # from here on it may have reached the PLC, answered or not
        echo = _act(dep, command, verdict)
        lat["write"] = _ms(t)
    except (ModbusLineError, PolicyFault, AuditSpaceLow) as exc:
        error = f"{type(exc).__name__}: {exc}"
        tally.faults += 1
        if isinstance(exc, PolicyFault):
            obs, undecided = exc.observation, True
        if isinstance(exc, LineRestarted):
            tally.reattach = True  # the PLC's clock or counters went back: attach afresh, count from there
        if isinstance(exc, AnotherController | AuditSpaceLow):
            stopping = exc
        if isinstance(exc, LeverLocal):
            echo = exc.echo  # sent and echoed, a lever's setpoints not taken
        if isinstance(exc, CommandNotSent) or (isinstance(exc, LeverLocal) and exc.echo is None):
            written = None  # refused before any register went out: the PLC got nothing
    _close_latency(lat, t0, log_ms)
    shadow = dep.mode == "shadow"
    record = AuditRecord(
        step=tally.steps,
        wall_time_s=began,
        mode=dep.mode,
        line_time_s=frame.time,
        frame_seq=frame.seq,
        values=frame.values,
        stamps=frame.stamps,
        status={k: v for k, v in dataclasses.asdict(status).items() if k != "active"},
        active=status.active,
        kpis=dataclasses.asdict(frame.kpis),
        observation=np.asarray(obs, dtype=float),
        proposed=proposed,
        verdict="shadow" if shadow else ("block" if verdict is None else verdict.kind),
        reasons=() if verdict is None else verdict.reasons,
        written=None if written is None else written.copy(),
        echo=echo,
        ood=bool(verdict is not None and verdict.ood),
        latency_ms=lat,
        artifact_sha256=dep.sha256,
        error=error,
    )
    log_ms = dep.audit.append(record)
    tally.steps += 1
    tally.faulted_steps += error is not None
    tally.written += written is not None
    tally.interventions += error is None and bool(record.reasons)
    tally.last_reasons, tally.last_error = record.reasons, error
    tally.policy_faults_in_row = tally.policy_faults_in_row + 1 if undecided else 0
    tally.staleness_s = float(frame.time - np.nanmin(frame.stamps)) if len(frame.stamps) else math.nan
    if stopping is not None:
        raise stopping
    if error is None:
        tally.latencies_ms.append(lat["total"])
    return frame, log_ms


class PolicyGaveUp(RuntimeError):
    """The policy gave no valid action for `max_policy_faults` steps in a row: the run stops."""


class PolicyFault(Exception):
    """The policy gave no usable decision: encoding, inference or decoding raised, or its action is invalid.

    The step is logged with the fault (and the observation the policy was given) and writes no
    setpoint: the line keeps its active setpoints, as under a closed gate, and the run goes on to
    the next tick. Nothing the task would put in place of an invalid action (the plant's own
    setting) is written, because no one decided it.
    """

    def __init__(self, message: str, observation: np.ndarray) -> None:
        super().__init__(message)
        self.observation = observation  # what the policy was given (NaN where encoding failed)


def _decide(dep: Deployment, frame: Frame, lat: dict[str, float]) -> tuple[np.ndarray, Command]:
    """The observation of `frame` and the command the policy decodes to; timings go into `lat` (ms).

    Raises:
        PolicyFault: any error of the task's encoding and decoding or of the policy, or an action
            that is not of the task's action space's shape or has a component that is not a valid
            value (not finite, or not one of a discrete space's values): the task would replace
            such a component by the plant's own setting, which no one decided.
    """
    obs = np.full(dep.artifact.observation_space.shape, np.nan)
    try:
        t = time.perf_counter()
        obs = dep.task.observe(frame)
        lat["observe"] = _ms(t)
        t = time.perf_counter()
        action, _ = dep.artifact.predict(obs, deterministic=True)
        lat["infer"] = _ms(t)
        raw, valid = dep.task.parse_action(action)
        if not valid.all():
            bad = np.flatnonzero(~valid.reshape(-1)).tolist()
            raise ValueError(f"action {np.array2string(raw, precision=4)}: components {bad} are not valid actions")
        return obs, dep.task.command(action, frame)
    except Exception as exc:  # a fault of the decision, whatever raised it, is one logged step
        frames = traceback.extract_tb(exc.__traceback__)
        at = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
        raise PolicyFault(f"{type(exc).__name__}{at}: {exc}", np.asarray(obs, dtype=float)) from exc


def _check_room(dep: Deployment) -> None:
    """Act only while the audit log's disk keeps `audit_min_free_mb` free, so that what goes out is recorded.

    A record is a few kB: the reserve holds the step about to be logged many times over, where a
    full disk would refuse the record of a command already sent.

    Raises:
        AuditSpaceLow: less room than the reserve.
    """
    if short := short_of_room(dep.audit.path, dep.audit_min_free_mb):
        raise AuditSpaceLow(f"{short}; nothing was sent this step")


def _sends(dep: Deployment, verdict: Verdict) -> bool:
    """Whether this step writes a command block: guarded mode, a verdict that lets out a change."""
    return dep.mode == "guarded" and verdict.setpoints is not None and not bool(np.isnan(verdict.setpoints).all())


def _act(dep: Deployment, command: Command, verdict: Verdict) -> int | None:
    """Shadow: record the proposal. Guarded: write what the guard lets out, else only the heartbeat.

    Returns:
        The PLC's echo of a written block's sequence number (None when no block was written).
    """
    if isinstance(dep.view, ShadowLine):
        dep.view.write(command)
        return None
    if not _sends(dep, verdict):
        dep.line.heartbeat()  # a closed gate, or nothing to change: the PLC sees the agent alive, nothing else
        return None
    dep.line.write(Command(setpoints=verdict.setpoints, bounds=verdict.bounds))  # on a coarse grid too
    status = dep.line.plc_status
    return None if status is None else status.command_echo


def _close_latency(lat: dict[str, float], t0: float, log_ms: float | None) -> None:
    """Add the `log` stage (the previous record's append; none on a run's first step) and the step's total, ms."""
    if log_ms is not None:
        lat["log"] = log_ms
    lat["total"] = _ms(t0) + (0.0 if log_ms is None else log_ms)


def _ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000.0
