"""A guarded, armed deployment against a virtual PLC that misbehaves, on loopback.

For every fault, alone or together: the loop does not crash, nothing is written while the fault
lasts (the guard closes its gates or the fieldbus gives nothing to act on), the PLC's watchdog or
the guard takes over, every step is in the audit log, and writing resumes by itself once the fault
clears. Everything that was ever written lies within the plant's guard limits.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from experiments.deploy import compose_config, run_deployment, setup
from hardware.audit import AuditRecord, read_runs
from hardware.interface import Lever
from hardware.modbus import Fault, FaultKind, StatusBit, VirtualPLC
from tests.artifacts import speed_artifact
from tests.integration.test_deploy import PLANT_SPEED, free_plc

Action = Callable[[VirtualPLC], None]
DETECT_S = 0.5  # the client's and the guard's heartbeat timeouts are 0.4 s: a frozen PLC shows within this
RESTART_S = 0.8  # how long a restarting PLC is down (it comes back under local control)


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return speed_artifact(tmp_path_factory.mktemp("artifact") / "artifact")


@dataclass
class Outcome:
    """What the PLC and the audit log saw around a fault."""

    records: list[AuditRecord]
    began: float  # wall time the fault was injected
    ended: float  # wall time it ended (cleared, or a restarted PLC back)
    accepted_during: int  # commands the PLC accepted while the fault lasted, once found out
    tripped: bool  # the PLC's watchdog tripped at some point during the fault
    local: bool  # the PLC took the levers for its own rules at some point during the fault
    crash: BaseException | None

    def during(self) -> list[AuditRecord]:
        """Steps once the fault was found out (a frozen heartbeat or clock takes its timeout to show)."""
        return [r for r in self.records if self.began + DETECT_S < r.wall_time_s < self.ended]

    def after(self) -> list[AuditRecord]:
        """Steps once the fault was cleared."""
        return [r for r in self.records if r.wall_time_s > self.ended]


def run_fault(artifact: Path, tmp_path: Path, inject: Action, clear: Action, lasts_s: float | None = None) -> Outcome:
    """Run a guarded deployment, inject a fault, watch the PLC for 1.2 s, clear it, wait for writes again.

    `lasts_s`: a fault that ends by itself (a restart) after this long; else it lasts until cleared.
    """
    audit = tmp_path / "audit.sqlite"
    with free_plc(watchdog_s=0.6) as plc:
        cfg = compose_config(
            [f"artifact={artifact}", f"hardware.port={plc.port}", f"audit={audit}", "mode=guarded", "arm=true",
             "hardware.timeout_s=0.2", "hardware.read_retries=0", "hardware.echo_timeout_s=0.3",
             "hardware.heartbeat_timeout_s=0.4", "hardware.heartbeat_every_s=0.1", "guard.heartbeat_timeout_s=0.4",
             "guard.max_status_age_s=0.5", "retry_s=0.05", "status_every_s=0"]
        )  # fmt: skip
        dep = setup(cfg)
        stop = threading.Event()
        crash: list[BaseException] = []

        def loop() -> None:
            try:
                run_deployment(dep, stop, None, None)
            except BaseException as exc:
                crash.append(exc)

        thread = threading.Thread(target=loop)
        thread.start()
        try:
            wait_for(lambda: sum(r.written is not None for r in records(audit)) >= 3, "no writes before the fault")
            accepted, handovers = plc.accepted_commands, plc.handovers
            began = time.time()
            inject(plc)
            tripped = local = False
            end = time.monotonic() + 1.2
            while time.monotonic() < end:
                tripped = tripped or StatusBit.WD_TRIPPED in plc.status
                local = local or plc.handovers > handovers  # a restarted PLC's local control may last one scan
                if time.time() < began + DETECT_S:
                    accepted = plc.accepted_commands
                time.sleep(0.02)
            accepted_during = plc.accepted_commands - accepted if lasts_s is None else 0
            clear(plc)
            cleared = time.time()
            ended = cleared if lasts_s is None else began + lasts_s
            wait_for(
                lambda: sum(r.written is not None and r.wall_time_s > cleared for r in records(audit)) >= 2,
                "writing did not resume after the fault cleared",
                timeout_s=15.0,
            )
        finally:
            stop.set()
            thread.join(10.0)
            dep.audit.close()
            dep.view.close()
    assert not thread.is_alive(), "the loop did not stop"
    return Outcome(records(audit), began, ended, accepted_during, tripped, local, crash[0] if crash else None)


def records(audit: Path) -> list[AuditRecord]:
    return [rec for run in read_runs(audit) for rec in run.records] if audit.exists() else []


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    end = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < end, what
        time.sleep(0.05)


def fault(kind: FaultKind, **params: Any) -> Action:
    return lambda plc: plc.inject(Fault(kind, **params))


def clear_faults(plc: VirtualPLC) -> None:
    plc.clear()


def operator(**inputs: bool) -> Action:
    return lambda plc: plc.set_operator(**inputs)


def lever(which: Lever, remote: bool) -> Action:
    return lambda plc: plc.hand_lever(which, remote)


def both(*actions: Action) -> Action:
    def act(plc: VirtualPLC) -> None:
        for action in actions:
            action(plc)

    return act


ALL_CLEAR = both(clear_faults, operator(remote=True, permissive=True, estop=False))

# fault, how it ends, what the records during it show, whether the PLC's watchdog (not only the guard) takes over
CASES: dict[str, tuple[Action, Action, str, bool]] = {
    "stops answering": (fault(FaultKind.STOP_ANSWERING), clear_faults, "no answer", True),
    "exception responses": (fault(FaultKind.EXCEPTION, code=4), clear_faults, "exception response 4", True),
    "latency spike past the deadline": (fault(FaultKind.LATE, delay_s=0.5), clear_faults, "no answer", True),
    "frozen heartbeat": (fault(FaultKind.FROZEN_HEARTBEAT), clear_faults, "heartbeat", False),  # a stuck PLC
    "stale timestamps": (fault(FaultKind.STALE_FRAMES), clear_faults, "line clock st", True),
    "NaN sensor": (fault(FaultKind.NAN_SENSOR, sensor="cut.state"), clear_faults, "gate:nan:cut.state", False),
    "out-of-range sensor": (
        fault(FaultKind.NAN_SENSOR, sensor="press.bearing_temp_c", value=900.0),
        clear_faults,
        "gate:range:press.bearing_temp_c",
        False,
    ),
    "REMOTE dropped": (operator(remote=False), operator(remote=True), "gate:remote_off", False),
    "e-stop pressed mid-run": (operator(estop=True), operator(estop=False), "gate:estop", False),
    "a lever taken local": (lever(Lever.SPEED, False), lever(Lever.SPEED, True), "gate:lever_local:speed", False),
    "PLC restarted": (fault(FaultKind.RESTART, down_s=RESTART_S), lambda plc: None, "", True),
    "faults together": (
        both(
            fault(FaultKind.NAN_SENSOR, sensor="cut.state"),
            fault(FaultKind.NAN_SENSOR, sensor="weld.bearing_temp_c", value=-50.0),
            operator(permissive=False),
            operator(estop=True),
        ),
        ALL_CLEAR,
        "gate:permissive_off",
        False,
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_a_fault_stops_the_writes_and_the_run_resumes_when_it_clears(artifact, tmp_path, case):
    inject, clear, shown, watchdog = CASES[case]
    out = run_fault(artifact, tmp_path, inject, clear, RESTART_S if case == "PLC restarted" else None)
    assert out.crash is None, f"the loop crashed: {out.crash!r}"
    steps = [r.step for r in out.records]
    assert steps == list(range(len(steps))), "a step is missing from the audit log"
    during = out.during()
    assert during, "no step was logged while the fault lasted"
    assert all(r.written is None for r in during), "something was written while the fault lasted"
    assert out.accepted_during == 0
    if shown:
        said = [(r.error or "") + " " + " ".join(r.reasons) for r in during]
        assert any(shown in s for s in said), f"no step shows {shown!r}: {said[:3]}"
    if watchdog:
        assert out.tripped or out.local, "the PLC's watchdog never took over"
    else:
        assert all(r.verdict == "block" for r in during)
    assert out.after(), "no step after the fault cleared"
    for r in out.records:
        if r.written is not None:
            speeds = r.written[~np.isnan(r.written)]
            assert ((speeds >= PLANT_SPEED[0] - 1e-9) & (speeds <= PLANT_SPEED[1] + 1e-9)).all()


def test_a_stop_request_ends_the_wait_after_a_faulted_step_at_once(artifact, tmp_path):
    """Ctrl-C or SIGTERM stops between steps: the wait of `retry_s` after a fault listens for it."""
    audit = tmp_path / "audit.sqlite"
    with free_plc() as plc:
        cfg = compose_config(
            [f"artifact={artifact}", f"hardware.port={plc.port}", f"audit={audit}", "mode=shadow",
             "hardware.timeout_s=0.2", "hardware.read_retries=0", "retry_s=5", "status_every_s=0"]
        )  # fmt: skip
        dep = setup(cfg)
        stop = threading.Event()
        thread = threading.Thread(target=run_deployment, args=(dep, stop, None, None))
        thread.start()
        try:
            wait_for(lambda: len(records(audit)) >= 2, "no steps before the fault")
            plc.inject(Fault(FaultKind.EXCEPTION, code=4))
            wait_for(lambda: any(r.error for r in records(audit)), "no step met the fault", timeout_s=15.0)
            asked = time.monotonic()
            stop.set()
            thread.join(10.0)
            assert not thread.is_alive(), "the loop did not stop"
            assert time.monotonic() - asked < 2.0
        finally:
            stop.set()
            thread.join()
            dep.audit.close()
            dep.view.close()
