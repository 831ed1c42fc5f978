"""Take a trained policy to a line over Modbus: shadow mode (read, decide, log, never write) or guarded.

python -m experiments.deploy mode=shadow artifact=outputs/train/Speed/<run>/artifact hardware.port=5020
python -m experiments.deploy mode=guarded arm=true artifact=... hardware.port=5020 guard=plant

Before its first read, the artifact's network must match the SHA-256 in its manifest (and, when
`approved_sha256` is set, be one of those), and its spaces must fit the line's. The network runs on
onnxruntime: nothing here imports torch or stable-baselines3, which an edge box does not have. Each
control step reads a frame, observes, infers, asks the guard (in shadow mode: what it would have
done), writes (guarded mode, armed, only what the guard lets out; nothing but the heartbeat
otherwise) and appends one record to the audit log. A fault (no answer, stale data, a refused
command) is logged and retried; the run resumes by itself when it clears. A command the PLC accepted
from another controller is logged and stops the run (status 1): two controllers would each undo what
the other wrote. So does an audit disk under `audit_min_free_mb` (the step sends nothing): no
command goes out whose record the disk could refuse. Ctrl-C or SIGTERM stops
between steps: the last record is flushed, no command block is half-written, and the PLC's watchdog
hands the line back to its own setpoints once the heartbeat stops.
"""

from __future__ import annotations

import math
import re
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from hydra import compose, initialize_config_module
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from agents.artifact import ArtifactError, PolicyArtifact
from envs.base import Task
from envs.registration import TASKS
from experiments.control_loop import Deployment, PolicyGaveUp, run_deployment
from experiments.errors import INTERRUPTED, ConfigError, positive_number, quiet_pymodbus, whole_number
from experiments.line_config import guard_config, hardware_line, line_definition
from hardware.audit import MODES, AuditError, AuditLog, AuditSpaceLow, short_of_room
from hardware.guard import Guard, GuardConfig, OodStats
from hardware.modbus import AnotherController, IncompatiblePlc, ModbusLine, Role
from hardware.shadow import ShadowLine

_ENV_ONLY = ("start", "warmup_h", "seed", "control_period_s", "scenario", "line")  # env arguments, not the task's
USAGE = "usage: python -m experiments.deploy mode=shadow|guarded artifact=<folder> [key=value ...]"


_SHA256 = re.compile(r"[0-9a-fA-F]{64}")  # a SHA-256 digest in hex
_HANDED_BACK = "the PLC's watchdog hands the line back to its own control"  # after a run that stops on an error


def compose_config(overrides: Sequence[str]) -> DictConfig:
    """The `deploy` config with Hydra overrides applied."""
    with initialize_config_module(config_module="configs", version_base="1.3"):
        return compose(config_name="deploy", overrides=list(overrides))


def approved_hashes(value: Any) -> list[str]:
    """`approved_sha256` as a list of hashes: a list of SHA-256 hex digests, or one digest alone.

    Raises:
        ConfigError: anything else, named with the value (null, a number, a digest of the wrong length).
    """
    given = [value] if isinstance(value, str) else value  # a ListConfig is a Sequence, and prints as a list
    if not isinstance(given, Sequence) or not all(isinstance(h, str) and _SHA256.fullmatch(h) for h in given):
        raise ConfigError(
            "approved_sha256: give the SHA-256 hex digests (64 hex digits) of approved networks as a list "
            f"([] for any network), got {value!r}"
        )
    return [str(h) for h in given]


def verify_artifact(folder: str | Path, approved: Sequence[str]) -> tuple[PolicyArtifact, str]:
    """The artifact in `folder` and its `PolicyArtifact.sha256`, checked against its manifest and the allow-list.

    The hash returned is that of the bytes the artifact was loaded from, the network that runs: a
    second read of the files could hash an artifact an export rewrote in between.

    Raises:
        ConfigError: a missing, malformed or tampered artifact, or a network not on a non-empty allow-list.
    """
    try:
        artifact = PolicyArtifact.load(folder)
    except (FileNotFoundError, ArtifactError) as exc:
        raise ConfigError(f"artifact: {exc}") from exc
    if approved and artifact.sha256 not in {str(a).lower() for a in approved}:
        raise ConfigError(
            f"artifact: {folder} (sha256 {artifact.sha256}) is not in approved_sha256; refused before any read"
        )
    return artifact, artifact.sha256


def setup(cfg: DictConfig) -> Deployment:
    """Check the config and the artifact, build the task, the line, the guard and the audit log.

    Raises:
        ConfigError: a wrong mode, an unarmed guarded run, a bad artifact, a task without setpoints,
            spaces that do not fit, a hardware or guard config that cannot be built, a guarded
            run whose status-age deadline is not inside the control period, or a run setting
            (`steps`, `retry_s`, `status_every_s`, `audit_min_free_mb`, `max_policy_faults`) that is
            not a number of its kind; all checked before the audit log is opened.
        AuditSpaceLow: the audit log's disk has less than `audit_min_free_mb` free.
    """
    if cfg.mode not in MODES:
        raise ConfigError(f"mode: must be one of {', '.join(MODES)}, got {cfg.mode!r}")
    if cfg.steps is not None:
        whole_number("steps", cfg.steps)
    max_policy_faults = whole_number("max_policy_faults", cfg.max_policy_faults)
    positive_number("retry_s", cfg.retry_s)  # 0 would hammer a PLC that does not answer
    if cfg.status_every_s != 0:
        positive_number("status_every_s", cfg.status_every_s)
    if cfg.audit_min_free_mb != 0:
        positive_number("audit_min_free_mb", cfg.audit_min_free_mb)
    if cfg.mode == "guarded" and cfg.arm is not True:
        raise ConfigError("arm: guarded mode writes to the line; start it with arm=true once the shadow report is read")
    if cfg.mode == "guarded" and not cfg.guard.get("_target_"):
        raise ConfigError("guard: guarded mode writes through a guard; choose one (guard=plant), not guard=none")
    artifact, sha = verify_artifact(cfg.artifact, approved_hashes(cfg.approved_sha256))
    run_cfg = OmegaConf.create(artifact.manifest.get("config") or {})
    name = OmegaConf.select(run_cfg, "task.name")
    if name not in TASKS or TASKS[name][2] is None:
        raise ConfigError(
            f"artifact: task {name!r} is not a setpoint task; deploy runs {[t for t, v in TASKS.items() if v[2]]}"
        )
    task_cls, _, default_period, _ = TASKS[name]
    kwargs: dict[str, Any] = OmegaConf.to_container(run_cfg.task.get("kwargs", {}), resolve=True)  # type: ignore[assignment]
    period = float(kwargs.get("control_period_s") or cast(float, default_period))
    definition = line_definition(run_cfg.line)
    line = hardware_line(
        cfg.hardware,
        definition,
        task_cls.levers,
        period,
        read_only=cfg.mode == "shadow",
        keep_blocks=False,
    )
    if not isinstance(line, ModbusLine):
        raise ConfigError(f"hardware={cfg.hardware.get('name')}: deploy runs over Modbus; choose hardware=modbus")
    task = task_cls(line.spec, **{k: v for k, v in kwargs.items() if k not in _ENV_ONLY})
    _check_spaces(artifact, task)
    guard = checked_guard(cfg, line, definition, artifact, period)
    view: ShadowLine | ModbusLine = ShadowLine(line) if cfg.mode == "shadow" else line
    meta = {
        "mode": cfg.mode,
        "line": line.spec.name,
        "definition": definition,
        "task": name,
        "levers": sorted(lv.value for lv in task_cls.levers),
        "control_period_s": period,
        "sensors": [s.name for s in line.spec.sensors],
        "actuators": [{"name": a.name, "unit": a.unit, "low": a.low, "high": a.high} for a in line.spec.actuators],
        "artifact": str(Path(cfg.artifact).resolve()),
        "artifact_sha256": sha,
        "guard": OmegaConf.to_container(cfg.guard, resolve=True),
        "hardware": OmegaConf.to_container(cfg.hardware, resolve=True),
        "started_at_s": time.time(),
    }
    # a missing folder is AuditLog's error to name
    if Path(cfg.audit).parent.is_dir() and (short := short_of_room(cfg.audit, cfg.audit_min_free_mb)):
        raise AuditSpaceLow(f"{short}; free some room or put the log on another disk (audit=...)")
    audit = AuditLog(cfg.audit, meta)
    return Deployment(
        cfg.mode,
        artifact,
        sha,
        task,
        line,
        view,
        guard,
        audit,
        period,
        float(cfg.retry_s),
        max_policy_faults,
        float(cfg.audit_min_free_mb),
    )


def checked_guard(
    cfg: DictConfig, line: ModbusLine, definition: dict[str, Any], artifact: PolicyArtifact, period_s: float
) -> Guard:
    """The guard the config names, checked for this run.

    Raises:
        ConfigError: a guard config that cannot be built, a guarded run's status-age deadline not
            inside the control period, an out-of-distribution gate asked of an artifact without
            observation statistics (it would be off without a word), or a guarded run's rate limit
            on a setpoint the register map does not read back.
    """
    config = guard_config(cfg.guard, definition) or GuardConfig()
    if cfg.mode == "guarded":
        _check_deadline(config, period_s)
    ood = OodStats.from_manifest(artifact.manifest)
    if config.ood_z is not None and ood is None:
        raise ConfigError(
            f"guard.ood_z: {config.ood_z:g} asks for the out-of-distribution gate, but the artifact carries no "
            "observation statistics (trained with normalize.obs=false); set guard.ood_z=null to deploy without it"
        )
    try:  # guard=none still gates on the spec's limits and the operator's bits
        guard = Guard(line.spec, config, ood)
    except ValueError as exc:
        raise ConfigError(f"guard: {exc}") from exc
    blind = [
        a.name
        for a, rate in zip(line.spec.actuators, guard.rules.rate, strict=True)
        if not math.isnan(rate) and line.map.get(Role.ACTIVE, a.name) is None
    ]
    if cfg.mode == "guarded" and blind:
        raise ConfigError(
            f"guard.rate_per_s: register map {line.map.source} reads back no active setpoint of {blind}: the rate "
            "limit would count from the guard's own output, not from what the line runs; add their active registers"
        )
    return guard


def _check_deadline(config: GuardConfig, period_s: float) -> None:
    """A guarded run writes only decisions made on a status younger than the control period.

    Raises:
        ConfigError: `guard.max_status_age_s` is null (a decision of any age would be written) or
            not below the control period (it would act on a line that has moved on a tick).
    """
    age = config.max_status_age_s
    if age is None or not age < period_s:
        raise ConfigError(
            f"guard.max_status_age_s: {'null' if age is None else f'{age:g} s'} lets a decision older than the "
            f"control period ({period_s:g} s) "
            f"be written; guarded mode needs a deadline well inside it (e.g. {min(2.0, period_s / 10):g})"
        )


def _check_spaces(artifact: PolicyArtifact, task: Task) -> None:
    try:
        artifact.check_fits(task.observation_space, task.action_space)
    except ArtifactError as exc:
        raise ConfigError(f"artifact: {exc}") from exc


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: `key=value` overrides of `configs/deploy.yaml`.

    Returns 0 on a clean stop, `INTERRUPTED` (130) after a second Ctrl-C (its message says whether it
    cut a step short), 1 when the policy gave no valid action for `max_policy_faults` steps in a row,
    another controller's command reached the PLC, the audit log's disk fell under its reserve
    (`audit_min_free_mb`) or the log refused a record, 2 on a config error, a PLC that cannot serve
    the task or an audit disk under its reserve at the start.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in args):
        print(USAGE)
        return 0
    stop = threading.Event()
    quiet_pymodbus()
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
    tally, code, error = None, 0, None
    try:
        tally = run_deployment(dep, stop, cfg.steps, sys.stderr, float(cfg.status_every_s))
    except KeyboardInterrupt:  # a second Ctrl-C: a step under way was cut wherever it stood
        sent = ", and its command may have reached the PLC" if dep.mode == "guarded" else ""
        code, error = (
            INTERRUPTED,
            (
                f"interrupted within a step (a second Ctrl-C): that step is not in the audit log{sent}; the hash "
                "chain head below may be a record behind the log's (python -m experiments.report reads it)"
                if dep.stepping
                else "interrupted between steps (a second Ctrl-C): every step is in the audit log, and the hash "
                "chain head below is the log's"
            ),
        )
    except IncompatiblePlc as exc:
        code, error = 2, str(exc)
    except PolicyGaveUp as exc:
        code, error = 1, str(exc)
    except (AnotherController, AuditSpaceLow) as exc:  # before AuditError: the step was logged, nothing sent
        code, error = 1, f"{exc}; the run stops, and {_HANDED_BACK}"
    except AuditError as exc:  # a step that cannot be logged is not run: no control without its record
        code, error = 1, f"{exc}; the run stops (the step's command, if any, went out unlogged), and {_HANDED_BACK}"
    finally:  # an exception nobody expects (a bug) goes on after it, its run's head printed all the same
        dep.audit.close()
        dep.view.close()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        if error is not None:
            print(f"error: {error}", file=sys.stderr)
        done = (
            "stopped"
            if tally is None
            else f"{tally.steps} steps, {tally.written} written, {tally.faults} faults "
            f"({tally.faulted_steps} in logged steps, the others attaching or waiting for a tick)"
        )
        print(  # on every stop once the run is in the log: the head an auditor checks the log against
            f"{dep.mode} run {done}; audit log {Path(cfg.audit).resolve()}, run {dep.audit.run}, "
            f"hash chain head {dep.audit.head}; artifact sha256 {dep.sha256}"
        )
    return code


if __name__ == "__main__":
    sys.exit(main())
