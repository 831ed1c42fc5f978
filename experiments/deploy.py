"""Take a trained policy to a line over Modbus: shadow mode (read, decide, log, never write) or guarded.

python -m experiments.deploy mode=shadow artifact=outputs/train/Speed/<run>/artifact hardware.port=5020
python -m experiments.deploy mode=guarded arm=true artifact=... hardware.port=5020 guard=plant

Before its first read, the artifact's network must match the SHA-256 in its manifest (and, when
`approved_sha256` is set, be one of those), and its spaces must fit the line's. The network runs on
onnxruntime: nothing here imports torch or stable-baselines3, which an edge box does not have. Each
control step reads a frame, observes, infers, asks the guard (in shadow mode: what it would have
done), writes (guarded mode, armed, only what the guard lets out; nothing but the heartbeat
otherwise) and appends one record to the audit log. A fault (no answer, stale data, a refused
command) is logged and retried; the run resumes by itself when it clears. Ctrl-C or SIGTERM stops
between steps: the last record is flushed, no command block is half-written, and the PLC's watchdog
hands the line back to its own setpoints once the heartbeat stops.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, cast

import numpy as np
from hydra import compose, initialize_config_module
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from agents.artifact import MANIFEST_FILE, NETWORK_FILE, ArtifactError, PolicyArtifact
from envs.base import Task
from envs.registration import TASKS
from experiments.errors import ConfigError
from experiments.line_config import guard_config, hardware_line, line_definition
from hardware import Command, DecisionKind, Frame
from hardware.audit import MODES, AuditError, AuditLog, AuditRecord
from hardware.guard import Guard, GuardConfig, OodStats, Verdict
from hardware.modbus import ClockWentBack, IncompatiblePlc, ModbusLine, ModbusLineError, StaleData
from hardware.shadow import ShadowLine

_SLICES = 20  # a wait for the next tick listens for a stop request this many times per control period
CHECKPOINT_EVERY = 100  # steps between checkpoints of the audit log's write-ahead log
_ENV_ONLY = ("start", "warmup_h", "seed", "control_period_s", "scenario", "line")  # env arguments, not the task's
USAGE = "usage: python -m experiments.deploy mode=shadow|guarded artifact=<folder> [key=value ...]"


def compose_config(overrides: Sequence[str]) -> DictConfig:
    """The `deploy` config with Hydra overrides applied."""
    with initialize_config_module(config_module="configs", version_base="1.3"):
        return compose(config_name="deploy", overrides=list(overrides))


def verify_artifact(folder: str | Path, approved: Sequence[str]) -> PolicyArtifact:
    """The artifact in `folder`: its network checked against its manifest, the whole against the allow-list.

    Raises:
        ConfigError: a missing, malformed or tampered artifact, or a network not on a non-empty allow-list.
    """
    try:
        artifact = PolicyArtifact.load(folder)
    except (FileNotFoundError, ArtifactError) as exc:
        raise ConfigError(f"artifact: {exc}") from exc
    sha = artifact_sha256(folder)
    if approved and sha not in {str(a).lower() for a in approved}:
        raise ConfigError(f"artifact: {folder} (sha256 {sha}) is not in approved_sha256; refused before any read")
    return artifact


def artifact_sha256(folder: str | Path) -> str:
    """The SHA-256 that pins an artifact whole: of its network followed by its manifest, bytes as stored.

    The manifest counts as much as the network: it holds the line definition (the actuators' hard
    limits), the task and the observation statistics the policy's inputs are scaled by.
    """
    digest = hashlib.sha256()
    for name in (NETWORK_FILE, MANIFEST_FILE):
        digest.update((Path(folder) / name).read_bytes())
    return digest.hexdigest()


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
    decided_at: float | None = None  # line time of the frame the last decision was made on, s


def setup(cfg: DictConfig) -> Deployment:
    """Check the config and the artifact, build the task, the line, the guard and the audit log.

    Raises:
        ConfigError: a wrong mode, an unarmed guarded run, a bad artifact, a task without setpoints,
            spaces that do not fit, or a hardware or guard config that cannot be built.
    """
    if cfg.mode not in MODES:
        raise ConfigError(f"mode: must be one of {', '.join(MODES)}, got {cfg.mode!r}")
    if cfg.mode == "guarded" and cfg.arm is not True:
        raise ConfigError("arm: guarded mode writes to the line; start it with arm=true once the shadow report is read")
    if cfg.mode == "guarded" and not cfg.guard.get("_target_"):
        raise ConfigError("guard: guarded mode writes through a guard; choose one (guard=plant), not guard=none")
    artifact = verify_artifact(cfg.artifact, list(cfg.approved_sha256))
    run_cfg = OmegaConf.create(artifact.manifest.get("config") or {})
    name = OmegaConf.select(run_cfg, "task.name")
    if name not in TASKS or TASKS[name][2] is None:
        raise ConfigError(
            f"artifact: task {name!r} is not a setpoint task; deploy runs {[t for t, v in TASKS.items() if v[2]]}"
        )
    task_cls, _, default_period, _ = TASKS[name]
    kwargs: dict[str, Any] = OmegaConf.to_container(run_cfg.task.get("kwargs", {}), resolve=True)  # type: ignore[assignment]
    period = float(kwargs.get("control_period_s") or cast(float, default_period))
    line = hardware_line(
        cfg.hardware,
        line_definition(run_cfg.line),
        task_cls.levers,
        period,
        read_only=cfg.mode == "shadow",
        keep_blocks=False,
    )
    if not isinstance(line, ModbusLine):
        raise ConfigError(f"hardware={cfg.hardware.get('name')}: deploy runs over Modbus; choose hardware=modbus")
    task = task_cls(line.spec, **{k: v for k, v in kwargs.items() if k not in _ENV_ONLY})
    _check_spaces(artifact, task)
    config = guard_config(cfg.guard, line_definition(run_cfg.line)) or GuardConfig()
    try:  # guard=none still gates on the spec's limits and the operator's bits
        guard = Guard(line.spec, config, OodStats.from_manifest(artifact.manifest))
    except ValueError as exc:
        raise ConfigError(f"guard: {exc}") from exc
    view: ShadowLine | ModbusLine = ShadowLine(line) if cfg.mode == "shadow" else line
    meta = {
        "mode": cfg.mode,
        "line": line.spec.name,
        "definition": line_definition(run_cfg.line),
        "task": name,
        "levers": sorted(lv.value for lv in task_cls.levers),
        "control_period_s": period,
        "sensors": [s.name for s in line.spec.sensors],
        "actuators": [{"name": a.name, "unit": a.unit, "low": a.low, "high": a.high} for a in line.spec.actuators],
        "artifact": str(Path(cfg.artifact).resolve()),
        "artifact_sha256": artifact_sha256(cfg.artifact),
        "guard": OmegaConf.to_container(cfg.guard, resolve=True),
        "hardware": OmegaConf.to_container(cfg.hardware, resolve=True),
        "started_at_s": time.time(),
    }
    audit = AuditLog(cfg.audit, meta)
    return Deployment(
        cfg.mode, artifact, artifact_sha256(cfg.artifact), task, line, view, guard, audit, period, float(cfg.retry_s)
    )


def _check_spaces(artifact: PolicyArtifact, task: Task) -> None:
    try:
        artifact.check_fits(task.observation_space, task.action_space)
    except ArtifactError as exc:
        raise ConfigError(f"artifact: {exc}") from exc


@dataclass
class Tally:
    """What a run did so far, for the live status line and the summary."""

    steps: int = 0
    interventions: int = 0  # steps whose verdict was not a plain pass
    faults: int = 0
    written: int = 0
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=1000))  # the latest steps'
    reattach: bool = False  # the last step met a clock set back: attach afresh before the next
    last_reasons: tuple[str, ...] = ()
    staleness_s: float = math.nan

    def line(self, mode: str) -> str:
        """The live status line."""
        lat = np.percentile(self.latencies_ms, [50, 99]) if self.latencies_ms else (math.nan, math.nan)
        reasons = ", ".join(self.last_reasons) or "-"
        return (
            f"{mode} | step {self.steps} | written {self.written} | interventions {self.interventions} (last: "
            f"{reasons}) | faults {self.faults} | staleness {self.staleness_s:.2f} s | decision p50 {lat[0]:.2f} "
            f"ms p99 {lat[1]:.2f} ms"
        )


def run_deployment(dep: Deployment, stop: threading.Event, steps: int | None, status: TextIO | None,
                   status_every_s: float = 1.0) -> Tally:  # fmt: skip
    """Run control steps until `stop` is set or `steps` are done; every step is in the audit log."""
    tally = Tally()
    frame = _attach(dep, stop, tally)
    shown = 0.0
    log_ms = 0.0
    while frame is not None and not stop.is_set() and (steps is None or tally.steps < steps):
        frame, log_ms = control_step(dep, frame, tally, log_ms)
        if status is not None and status_every_s > 0 and time.monotonic() - shown >= status_every_s:
            shown = time.monotonic()
            status.write("\r" + tally.line(dep.mode))
            status.flush()
        if (steps is not None and tally.steps >= steps) or stop.is_set():
            break
        if tally.reattach:
            tally.reattach = False
            frame = _attach(dep, stop, tally)
            continue
        frame = _wait_tick(dep, frame, stop, tally)
    if status is not None:
        status.write("\r" + tally.line(dep.mode) + "\n")
    return tally


def _attach(dep: Deployment, stop: threading.Event, tally: Tally) -> Frame | None:
    """Attach to the line, retrying while it does not answer; a PLC that cannot serve the task ends the run.

    Raises:
        IncompatiblePlc: the PLC runs another control period or keeps a lever of the task local.
    """
    dep.decided_at = None
    dep.guard.reset()  # a PLC attached afresh (restarted, its clock set back): rates count from its setpoints
    while not stop.is_set():
        try:
            return dep.view.reset()
        except IncompatiblePlc:
            raise
        except ModbusLineError:
            tally.faults += 1
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


def control_step(dep: Deployment, last: Frame, tally: Tally, log_ms: float) -> tuple[Frame, float]:
    """One control step; returns the frame it decided on and the audit append's latency."""
    began, t0 = time.time(), time.perf_counter()
    lat: dict[str, float] = {}
    error: str | None = None
    frame, obs = last, np.full(dep.artifact.observation_space.shape, np.nan)
    proposed = np.full(len(dep.line.spec.actuators), np.nan)
    verdict: Verdict | None = None
    written: np.ndarray | None = None
    echo: int | None = None
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
        if _sends(dep, verdict):
            written = verdict.setpoints  # from here on it may have reached the PLC, answered or not
        echo = _act(dep, command, verdict)
        lat["write"] = _ms(t)
    except (ModbusLineError, PolicyFault) as exc:
        error = f"{type(exc).__name__}: {exc}"
        tally.faults += 1
        if isinstance(exc, PolicyFault):
            obs = exc.observation
        if isinstance(exc, ClockWentBack):
            tally.reattach = True  # the line's clock was set back: attach afresh, decide on the new clock
    lat["log"] = log_ms
    lat["total"] = _ms(t0) + log_ms
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
    tally.written += written is not None
    tally.interventions += error is None and bool(record.reasons)
    tally.last_reasons = record.reasons
    tally.staleness_s = float(frame.time - np.nanmin(frame.stamps)) if len(frame.stamps) else math.nan
    if error is None:
        tally.latencies_ms.append(lat["total"])
    else:
        time.sleep(dep.retry_s)
    return frame, log_ms


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
        raise PolicyFault(f"{type(exc).__name__}: {exc}", np.asarray(obs, dtype=float)) from exc


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
    dep.line.write(Command(setpoints=verdict.setpoints))
    status = dep.line.plc_status
    return None if status is None else status.command_echo


def _ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000.0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: `key=value` overrides of `configs/deploy.yaml`; 0 on a clean stop, 2 on a config error."""
    args = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in args):
        print(USAGE)
        return 0
    stop = threading.Event()
    try:
        cfg = compose_config(args)
        dep = setup(cfg)
    except (ConfigError, OmegaConfBaseException, HydraException, AuditError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    handlers = {}
    if threading.current_thread() is threading.main_thread():

        def request_stop(signum: int, _frame: object) -> None:
            stop.set()  # between steps: no command block is cut; a second Ctrl-C interrupts at once
            signal.signal(signal.SIGINT, signal.default_int_handler)

        handlers = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    tally = None
    try:
        tally = run_deployment(dep, stop, cfg.steps, sys.stderr, float(cfg.status_every_s))
    except KeyboardInterrupt:
        pass
    except IncompatiblePlc as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        dep.audit.close()
        dep.view.close()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    done = "stopped" if tally is None else f"{tally.steps} steps, {tally.written} written, {tally.faults} faults"
    print(f"{dep.mode} run {done}; audit log {Path(cfg.audit).resolve()}; artifact sha256 {dep.sha256}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
