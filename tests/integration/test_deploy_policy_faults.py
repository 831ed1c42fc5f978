"""A guarded, armed deployment whose policy fails, on loopback: nothing it did not decide reaches the line.

A policy that returns NaN, raises, or returns the wrong shape gets a `PolicyFault` step in the
audit log (with the observation it was given), writes no setpoint, and the run goes on; the
task's stand-in for an invalid action (the plant's own setting) is never written.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from omegaconf import OmegaConf

from agents.artifact import PolicyArtifact
from experiments import deploy
from experiments.control_loop import Deployment, PolicyGaveUp
from experiments.deploy import compose_config, main, run_deployment, setup
from experiments.errors import ConfigError
from experiments.line_config import guard_config
from experiments.shadow_report import write_shadow_report
from hardware.audit import read_runs
from tests.artifacts import speed_artifact
from tests.integration.test_deploy import DEFINITION, free_plc
from tests.integration.test_deploy_faults import wait_for

STEPS = 6
GOOD_STEPS = 2  # the policy that goes bad decides these first


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return speed_artifact(tmp_path_factory.mktemp("artifact") / "artifact")


def guarded(artifact: Path, port: int, audit: Path, *extra: str) -> Deployment:
    """A guarded, armed deployment of `artifact` on the PLC at `port`, retrying fast, showing no status line."""
    overrides = [f"artifact={artifact}", f"hardware.port={port}", f"audit={audit}", "mode=guarded", "arm=true",
                 "retry_s=0.01", "status_every_s=0", *extra]  # fmt: skip
    return setup(compose_config(overrides))


def failing(kind: str, predict: Any) -> Any:
    """A `predict` that fails the way `kind` says (after `GOOD_STEPS` good decisions for "goes bad")."""
    calls = [0]

    def fake(obs: np.ndarray, deterministic: bool = True) -> tuple[np.ndarray, None]:
        calls[0] += 1
        action, _ = predict(obs, deterministic=deterministic)
        if kind == "raises":
            raise RuntimeError("onnxruntime: invalid input")
        if kind == "wrong shape":
            return action[:3], None
        if kind == "goes bad" and calls[0] <= GOOD_STEPS:
            return action, None
        return np.where(np.arange(action.size) % 2 == 0, np.nan, action).astype(action.dtype), None

    return fake


@pytest.mark.parametrize("kind", ["NaN", "raises", "wrong shape", "goes bad"])
def test_a_policy_without_a_valid_action_writes_nothing_and_the_run_goes_on(artifact, tmp_path, kind):
    audit = tmp_path / "audit.sqlite"
    with free_plc() as plc:
        dep = guarded(artifact, plc.port, audit)
        dep.artifact.predict = failing(kind, dep.artifact.predict)  # type: ignore[method-assign]
        try:
            tally = run_deployment(dep, threading.Event(), STEPS, None)
        finally:
            dep.audit.close()
            dep.view.close()
        accepted = plc.accepted_commands
    (run,) = read_runs(audit)
    assert [r.step for r in run.records] == list(range(STEPS))
    good = GOOD_STEPS if kind == "goes bad" else 0
    assert all(r.error is None for r in run.records[:good])
    faults = run.records[good:]
    assert all(r.error is not None and r.error.startswith("PolicyFault: ") for r in faults)
    assert all(r.written is None and r.verdict == "block" and np.isnan(r.proposed).all() for r in faults)
    assert all(np.isfinite(r.observation).all() for r in faults)  # what the policy was given is kept
    invalid = "components [0, 2, 4] are not valid actions"
    expected = {"NaN": invalid, "raises": "RuntimeError at test_deploy_policy_faults.py:",
                "wrong shape": "got shape (3,)", "goes bad": invalid}  # fmt: skip
    assert all(expected[kind] in r.error for r in faults)
    assert tally.faults == STEPS - good
    assert accepted == sum(r.written is not None for r in run.records) == tally.written
    assert (kind == "goes bad") == (tally.written > 0)


def test_a_guard_entry_that_names_no_actuator_of_the_line_is_refused():
    group = OmegaConf.create(
        {"_target_": "hardware.guard.GuardConfig", "limits": {"*.sped": [0.6, 1.1], "*.speed": [0.6, 1.1]}}
    )
    with pytest.raises(
        ConfigError, match=r"guard: limits\.\*\.sped match nothing on line 'flow5' \(its actuators: cut\.speed"
    ):
        guard_config(group, DEFINITION)
    assert guard_config(group.copy(), None) is not None  # without the line nothing can be matched
    del group.limits["*.sped"]
    assert guard_config(group, DEFINITION) is not None


def test_a_policy_that_keeps_failing_stops_the_run_and_the_line_goes_back_to_its_own_control(
    artifact, tmp_path, capsys
):
    audit = tmp_path / "audit.sqlite"
    with free_plc(watchdog_s=0.3) as plc:
        dep = guarded(artifact, plc.port, audit, "max_policy_faults=3")
        dep.artifact.predict = failing("goes bad", dep.artifact.predict)  # type: ignore[method-assign]
        try:
            with pytest.raises(PolicyGaveUp, match=r"no valid action for 3 steps in a row .*components \[0, 2, 4\]"):
                run_deployment(dep, threading.Event(), None, None)
        finally:
            dep.audit.close()
            dep.view.close()
        wait_for(lambda: not plc.agent_in_control, "the PLC's watchdog did not take the line back")
    (run,) = read_runs(audit)
    assert [r.error is None for r in run.records] == [True] * GOOD_STEPS + [False] * 3


def test_a_run_the_policy_gave_up_on_prints_its_chain_head_and_is_reported(artifact, tmp_path, capsys, monkeypatch):
    """The runs an auditor reads first: the head to check the log against, and a report without a replay."""

    def raises(self: Any, obs: np.ndarray, deterministic: bool = True) -> None:
        raise RuntimeError("onnxruntime: invalid input")

    monkeypatch.setattr(PolicyArtifact, "predict", raises)
    audit = tmp_path / "audit.sqlite"
    with free_plc() as plc:
        code = main([f"artifact={artifact}", f"hardware.port={plc.port}", f"audit={audit}", "mode=shadow",
                     "retry_s=0.01", "status_every_s=0", "max_policy_faults=3"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 1
    assert "error: the policy gave no valid action" in err
    (run,) = read_runs(audit)
    assert len(run.records) == 3
    assert f"shadow run stopped; audit log {audit.resolve()}, run 1, hash chain head {run.head};" in out
    report = write_shadow_report(audit, tmp_path / "report", replay_seeds=1)["report"].read_text()
    assert "Not run: every step of this run met a fault, none decided." in report
    assert "are not compared. No step of this run decided (each met a fault)." in report  # why its table is empty
    assert "Steps that met a fault: 3 of 3 (100.0%)." in report


def test_a_run_that_ends_in_an_unexpected_error_still_prints_its_chain_head(artifact, tmp_path, capsys, monkeypatch):
    """A bug mid-run ends in its traceback, after the head of the run it left in the log."""
    real = deploy.run_deployment

    def buggy(dep: Any, stop: threading.Event, steps: int | None, out: Any, every_s: float) -> None:
        real(dep, stop, 2, out, every_s)
        raise RuntimeError("a bug")

    monkeypatch.setattr(deploy, "run_deployment", buggy)
    audit = tmp_path / "audit.sqlite"
    with free_plc() as plc, pytest.raises(RuntimeError, match="a bug"):
        main([f"artifact={artifact}", f"hardware.port={plc.port}", f"audit={audit}", "mode=shadow",
              "retry_s=0.01", "status_every_s=0"])  # fmt: skip
    (run,) = read_runs(audit)
    assert len(run.records) == 2
    assert (
        f"shadow run stopped; audit log {audit.resolve()}, run 1, hash chain head {run.head};"
        in capsys.readouterr().out
    )


def test_a_command_refused_before_it_went_out_is_logged_as_not_written(artifact, tmp_path):
    """A block no register value can carry (a coarse grid inside tight bounds) was logged as written and counted."""
    audit = tmp_path / "audit.sqlite"
    with free_plc() as plc:
        dep = guarded(artifact, plc.port, audit)
        image = dep.line._command

        def no_register_value(*args: Any) -> list[int]:
            raise ValueError("no uint32 value of a.speed's register lies inside [1, 1]")

        image.setpoint_registers = no_register_value  # type: ignore[method-assign]
        try:
            tally = run_deployment(dep, threading.Event(), 3, None)
        finally:
            dep.audit.close()
            dep.view.close()
        accepted = plc.accepted_commands
    (run,) = read_runs(audit)
    assert all(r.error is not None and r.error.startswith("CommandNotSent: ") for r in run.records)
    assert all("command not sent" in r.error for r in run.records)
    assert all(r.written is None and r.verdict in ("pass", "clip") for r in run.records)
    assert accepted == tally.written == 0
