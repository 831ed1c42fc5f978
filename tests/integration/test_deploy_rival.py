"""A guarded, armed deployment that finds another controller writing to its PLC, on loopback.

Two controllers on one line would each undo what the other wrote. The deployment sees the other's
command in the PLC's echo, logs the step with it, writes nothing more and stops with status 1; the
PLC's watchdog then hands the line back to its own control.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from envs.registration import TASKS
from hardware import Command
from hardware.audit import read_runs
from hardware.modbus.connect import modbus_line
from tests.artifacts import speed_artifact
from tests.integration.test_deploy import DEFINITION, deploy, free_plc
from tests.integration.test_deploy_faults import records, wait_for

BOUND_STEPS = 300  # a run that never noticed the other controller ends here (30 s of wall time) and fails


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return speed_artifact(tmp_path_factory.mktemp("artifact") / "artifact")


def test_another_controllers_command_stops_the_run_and_the_line_goes_back_to_its_own_control(
    artifact, tmp_path, capsys
):
    audit = tmp_path / "audit.sqlite"
    with free_plc(watchdog_s=0.3) as plc:
        cls, _, period, _ = TASKS["Speed"]
        rival = modbus_line(DEFINITION, cls.levers, period, port=plc.port)
        sent: list[int] = []

        def other_controller() -> None:
            wait_for(lambda: sum(r.written is not None for r in records(audit)) >= 2, "no writes before the rival")
            rival.reset()
            rival.write(Command(setpoints=np.array([a.default for a in rival.spec.actuators])))
            sent.append(plc.command_echo)

        thread = threading.Thread(target=other_controller)
        thread.start()
        try:
            status = deploy(
                artifact, plc.port, audit, "mode=guarded", "arm=true", "retry_s=0.01", f"steps={BOUND_STEPS}"
            )
        finally:
            thread.join(20.0)
            rival.close()
        assert status == 1
        wait_for(lambda: not plc.agent_in_control, "the PLC's watchdog did not take the line back")
    err = capsys.readouterr().err
    assert f"the PLC accepted command {sent[0]}, which this client did not send" in err
    assert "another controller writes to line 'flow5'; the run stops" in err
    (run,) = read_runs(audit)
    *before, last = run.records
    assert len(run.records) < BOUND_STEPS
    assert (last.error or "").startswith("AnotherController: ")
    assert last.written is None
    assert all(r.error is None for r in before)
    assert sum(r.written is not None for r in before) >= 2
