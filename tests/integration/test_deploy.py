"""`python -m experiments.deploy` against the virtual PLC on loopback.

Shadow writes nothing, guarded writes only what the guard lets out, a tampered or unknown artifact
never reads, an edge box needs neither torch nor stable-baselines3, SIGTERM stops cleanly.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from agents.artifact import PolicyArtifact
from envs.lines import resolve_line
from envs.registration import START_DEFAULT, TASKS
from experiments import control_loop
from experiments.deploy import checked_guard, compose_config, main, verify_artifact
from experiments.errors import ConfigError
from experiments.shadow_evidence import latency
from experiments.shadow_report import write_shadow_report
from hardware.audit import AuditError, AuditLog, AuditRecord, read_runs
from hardware.interface import Lever
from hardware.modbus import ModbusLine, RegisterMap, Role, StatusBit, VirtualPLC, default_map, setpoint_spec
from hardware.twin import TwinLine
from tests.artifacts import speed_artifact
from tests.lines import FLOW5, REPO

DEFINITION = yaml.safe_load(FLOW5.read_text())
PLANT_SPEED = (0.6, 1.1)  # configs/guard/plant.yaml


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return speed_artifact(tmp_path_factory.mktemp("artifact") / "artifact")


def free_plc(seed: int = 0, definition: dict[str, Any] = DEFINITION, **options: Any) -> VirtualPLC:
    """A free-running virtual PLC of flow5 handing over the speed lever: a 60 s period in 0.1 s of wall time."""
    cls, _, period, _ = TASKS["Speed"]
    twin = resolve_line(definition, cls.levers, period, None, seed, start_default=START_DEFAULT)
    assert isinstance(twin, TwinLine)
    twin.reset(seed=seed)
    full = setpoint_spec(definition, period)
    options = {"mode": "free", "time_factor": 600.0, "publish_s": 0.02, "watchdog_s": 2.0, **options}
    return VirtualPLC(twin, default_map(full), full, **options)


def copy_artifact(artifact: Path, folder: Path) -> Path:
    """A copy of the artifact's files in `folder`, to tamper with."""
    folder.mkdir()
    for f in artifact.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    return folder


def deploy(artifact: Path, port: int, audit: Path, *extra: str) -> int:
    return main([f"artifact={artifact}", f"hardware.port={port}", f"audit={audit}", "status_every_s=0", *extra])


def test_a_shadow_run_writes_nothing_and_logs_every_step_and_the_report_renders(artifact, tmp_path, capsys):
    audit = tmp_path / "audit.sqlite"
    # frames 0.08 s apart (12 s of line time): a loaded machine's reads do not tear on every retry
    with free_plc(time_factor=150.0, publish_s=0.08) as plc:
        assert deploy(artifact, plc.port, audit, "mode=shadow", "steps=12") == 0
        assert plc.accepted_commands == 0
        assert plc.command_echo == 0
        assert not plc.agent_in_control  # the PLC never saw the agent: not even a heartbeat
    (run,) = read_runs(audit)
    assert [r.step for r in run.records] == list(range(12))
    assert f"run 1, hash chain head {run.head};" in capsys.readouterr().out  # to keep apart from the log
    assert {r.mode for r in run.records} == {"shadow"}
    assert {r.verdict for r in run.records} == {"shadow"}
    assert all(r.written is None and r.error is None for r in run.records)
    assert all(np.isfinite(r.proposed).all() for r in run.records)  # the policy proposed a speed per station
    np.testing.assert_allclose(run.records[-1].active, 1.0)  # the line ran its own setpoints
    gaps = np.diff([r.line_time_s for r in run.records])
    assert (gaps > 0).all()  # every decision on newer data
    # a tick apart, +- a frame; the median, because a loaded machine may read one frame late or skip a tick
    assert np.median(gaps) == pytest.approx(60.0, abs=15.0)
    pinned = hashlib.sha256((artifact / "policy.onnx").read_bytes() + (artifact / "manifest.json").read_bytes())
    assert run.meta["artifact_sha256"] == pinned.hexdigest() == run.records[0].artifact_sha256
    paths = write_shadow_report(audit, tmp_path / "report", replay_seeds=2)
    text = paths["report"].read_text()
    for section in ("agreement", "intervention", "latency", "counterfactual"):
        assert section in text.lower()
    assert all(p.is_file() for p in paths.values())


def test_a_guarded_run_writes_only_what_the_guard_lets_out(artifact, tmp_path):
    audit = tmp_path / "audit.sqlite"
    with free_plc() as plc:
        assert deploy(artifact, plc.port, audit, "mode=guarded", "arm=true", "steps=12") == 0
        accepted = plc.accepted_commands
        final = plc.active
    (run,) = read_runs(audit)
    written = [r for r in run.records if r.written is not None]
    assert written, "the guard let nothing out"
    assert accepted == len(written)
    for r in written:
        speeds = r.written[~np.isnan(r.written)]
        assert ((speeds >= PLANT_SPEED[0] - 1e-9) & (speeds <= PLANT_SPEED[1] + 1e-9)).all()
        assert r.verdict in ("pass", "clip")
        assert r.echo is not None
    assert [r.step for r in run.records] == list(range(12))
    last = next(r for r in reversed(run.records) if r.written is not None)
    for name, value in zip(run.meta["actuators"], last.written, strict=True):
        if not np.isnan(value):
            assert final[name["name"]] == pytest.approx(value, rel=1e-6)


def test_a_lever_kept_local_stops_a_guarded_run_at_attach_and_a_shadow_run_watches_anyway(artifact, tmp_path, capsys):
    with free_plc() as plc:
        plc.hand_lever(Lever.SPEED, remote=False)  # the operator has not handed the speeds over
        assert deploy(artifact, plc.port, tmp_path / "g.sqlite", "mode=guarded", "arm=true", "steps=3") == 2
        assert "the PLC keeps levers ['speed'] local (remote: [])" in capsys.readouterr().err
        assert plc.accepted_commands == 0
        assert deploy(artifact, plc.port, tmp_path / "s.sqlite", "mode=shadow", "steps=3") == 0
    (run,) = read_runs(tmp_path / "s.sqlite")
    assert all("gate:lever_local:speed" in r.reasons for r in run.records)  # what the guard would have done
    assert all(r.status["local_levers"] == ["speed"] for r in run.records)


def test_a_guarded_run_must_be_armed(artifact, tmp_path, capsys):
    assert deploy(artifact, 1, tmp_path / "a.sqlite", "mode=guarded") == 2
    assert "arm: guarded mode writes to the line" in capsys.readouterr().err
    assert not (tmp_path / "a.sqlite").exists()


@pytest.mark.parametrize(("age", "shown"), [("null", "null"), ("60.0", "60 s"), ("75", "75 s")])
def test_a_guarded_run_needs_a_status_age_deadline_inside_the_control_period(artifact, tmp_path, capsys, age, shown):
    audit = tmp_path / "a.sqlite"
    assert deploy(artifact, 1, audit, "mode=guarded", "arm=true", f"guard.max_status_age_s={age}") == 2
    err = capsys.readouterr().err
    assert f"guard.max_status_age_s: {shown} lets a decision older than the control period (60 s) be written" in err
    assert not audit.exists()


@pytest.mark.parametrize("value", ["null", "5", "[abc]", f"[{'0f' * 31}]"])
def test_an_allow_list_that_is_no_list_of_digests_is_refused_naming_it(artifact, tmp_path, capsys, value):
    assert deploy(artifact, 1, tmp_path / "a.sqlite", f"approved_sha256={value}") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: approved_sha256: give the SHA-256 hex digests (64 hex digits) of approved networks")
    assert not (tmp_path / "a.sqlite").exists()


@pytest.mark.parametrize(("value", "named"), [("0", "0"), ("abc", "'abc'")])
def test_a_bad_max_policy_faults_is_refused_before_the_log_is_opened(artifact, tmp_path, capsys, value, named):
    """It was checked after: the log kept an empty run no head was printed for, and its writer lock stayed held."""
    assert deploy(artifact, 1, tmp_path / "a.sqlite", f"max_policy_faults={value}") == 2
    assert capsys.readouterr().err == f"error: max_policy_faults: must be a positive whole number, got {named}\n"
    assert not (tmp_path / "a.sqlite").exists()


def test_a_second_deploy_on_a_log_another_run_writes_is_refused_in_one_line(artifact, tmp_path, capsys):
    audit = tmp_path / "a.sqlite"
    with free_plc() as plc, AuditLog(audit, {"writer": "the other run"}):
        assert deploy(artifact, plc.port, audit, "steps=1") == 2  # both appended and exited 0 before
    err = capsys.readouterr().err
    assert err.startswith(f"error: audit log {audit}: another run is appending to it (it holds a.sqlite.writer)")
    assert err.count("\n") == 1
    assert [r.meta for r in read_runs(audit)] == [{"writer": "the other run"}]


def test_a_tampered_or_unapproved_artifact_is_refused_before_any_read(artifact, tmp_path, capsys):
    tampered = copy_artifact(artifact, tmp_path / "tampered")
    network = bytearray((tampered / "policy.onnx").read_bytes())
    network[-1] ^= 0xFF
    (tampered / "policy.onnx").write_bytes(bytes(network))
    with free_plc() as plc:
        assert deploy(tampered, plc.port, tmp_path / "a.sqlite") == 2
        assert "sha256 mismatch" in capsys.readouterr().err
        sha = hashlib.sha256((artifact / "policy.onnx").read_bytes() + (artifact / "manifest.json").read_bytes())
        assert deploy(artifact, plc.port, tmp_path / "a.sqlite", f"approved_sha256=[{'0f' * 32}]") == 2
        assert f"(sha256 {sha.hexdigest()}) is not in approved_sha256" in capsys.readouterr().err
    assert not (tmp_path / "a.sqlite").exists()
    with free_plc() as plc:
        approved = f"approved_sha256=[{sha.hexdigest()}]"
        assert deploy(artifact, plc.port, tmp_path / "b.sqlite", approved, "steps=2") == 0
        alone = f"approved_sha256={sha.hexdigest()}"  # one digest without brackets: split into characters before
        assert deploy(artifact, plc.port, tmp_path / "alone.sqlite", alone, "steps=1") == 0
        manifest = json.loads((tampered / "manifest.json").read_text())
        (tampered / "policy.onnx").write_bytes((artifact / "policy.onnx").read_bytes())  # the network is intact ...
        manifest["config"]["line"]["machines"]["press"]["speed_max_ratio"] = 3.0  # ... the limits are not
        (tampered / "manifest.json").write_text(json.dumps(manifest))
        assert deploy(tampered, plc.port, tmp_path / "c.sqlite", approved) == 2
        assert "is not in approved_sha256" in capsys.readouterr().err
    assert not (tmp_path / "c.sqlite").exists()


def interrupted_on_call(fn: Callable[..., Any], n: int) -> Callable[..., Any]:
    """`fn`, but its `n`-th call raises KeyboardInterrupt (a second Ctrl-C) instead of running."""
    calls = 0

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == n:
            raise KeyboardInterrupt
        return fn(*args, **kwargs)

    return wrapped


def test_a_second_ctrl_c_within_a_step_says_the_step_is_not_logged_and_exits_130(
    artifact, tmp_path, monkeypatch, capsys
):
    """It exited 0 without a word, though the step it cut is missing from the log and its command may be out."""
    monkeypatch.setattr(control_loop, "control_step", interrupted_on_call(control_loop.control_step, 3))
    with free_plc() as plc:
        assert deploy(artifact, plc.port, tmp_path / "a.sqlite", "mode=guarded", "arm=true", "steps=12") == 130
    err = capsys.readouterr().err
    assert "error: interrupted within a step (a second Ctrl-C): that step is not in the audit log, and its " in err
    assert "command may have reached the PLC" in err
    (run,) = read_runs(tmp_path / "a.sqlite")
    assert len(run.records) == 2


def test_a_second_ctrl_c_between_steps_says_every_step_is_logged(artifact, tmp_path, monkeypatch, capsys):
    """Where a run spends its time, waiting for the tick: it said a step was cut, unlogged, its command maybe out."""
    monkeypatch.setattr(control_loop, "_wait_tick", interrupted_on_call(control_loop._wait_tick, 2))
    audit = tmp_path / "a.sqlite"
    with free_plc() as plc:
        assert deploy(artifact, plc.port, audit, "mode=guarded", "arm=true", "steps=12") == 130
        accepted = plc.accepted_commands
    out, err = capsys.readouterr()
    (run,) = read_runs(audit)
    assert len(run.records) == 2
    assert accepted == sum(r.written is not None for r in run.records)  # every command that went out is logged
    assert "error: interrupted between steps (a second Ctrl-C): every step is in the audit log" in err
    assert "not in the audit log" not in err
    assert f"hash chain head {run.head};" in out


def test_the_hash_approved_and_recorded_is_that_of_the_bytes_that_run(artifact, tmp_path, monkeypatch):
    """It was a second read of the files after loading: an export rewriting them in between was approved unseen."""
    folder = copy_artifact(artifact, tmp_path / "rewritten")
    loaded = hashlib.sha256((folder / "policy.onnx").read_bytes() + (folder / "manifest.json").read_bytes())
    load = PolicyArtifact.load

    def load_then_rewrite(path: Path) -> PolicyArtifact:
        policy = load(path)
        manifest = json.loads((folder / "manifest.json").read_text())
        manifest["config"]["line"]["machines"]["press"]["speed_max_ratio"] = 3.0  # other limits, after the load
        (folder / "manifest.json").write_text(json.dumps(manifest))
        return policy

    monkeypatch.setattr(PolicyArtifact, "load", load_then_rewrite)
    rewritten = hashlib.sha256((folder / "policy.onnx").read_bytes() + (folder / "manifest.json").read_bytes())
    assert verify_artifact(folder, [])[1] == loaded.hexdigest()
    with pytest.raises(ConfigError, match="is not in approved_sha256"):
        verify_artifact(folder, [rewritten.hexdigest()])


def test_an_artifact_of_another_task_does_not_fit_the_line(artifact, tmp_path, capsys):
    other = copy_artifact(artifact, tmp_path / "other")
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["config"]["task"]["name"] = "Energy"
    (other / "manifest.json").write_text(json.dumps(manifest))
    assert deploy(other, 1, tmp_path / "a.sqlite") == 2
    assert "does not fit" in capsys.readouterr().err


BLOCKER = """
import importlib.abc, runpy, sys
class Edge(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "stable_baselines3", "sb3_contrib"):
            raise ImportError(f"an edge box has no {name}")
sys.meta_path.insert(0, Edge())
sys.argv = ["experiments.deploy", *sys.argv[1:]]
runpy.run_module("experiments.deploy", run_name="__main__", alter_sys=True)
"""


def start_deploy(artifact: Path, port: int, audit: Path, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = [f"artifact={artifact}", f"hardware.port={port}", f"audit={audit}", "status_every_s=0", *extra]
    return subprocess.Popen(
        [sys.executable, "-c", BLOCKER, *args], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def test_deploy_runs_on_an_edge_box_without_torch_or_stable_baselines3(artifact, tmp_path):
    audit = tmp_path / "audit.sqlite"
    with free_plc() as plc:
        proc = start_deploy(artifact, plc.port, audit, "mode=shadow", "steps=3")
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "shadow run 3 steps" in out
    (run,) = read_runs(audit)
    assert len(run.records) == 3


def test_sigterm_stops_a_guarded_run_between_steps_with_every_record_whole(artifact, tmp_path):
    audit = tmp_path / "audit.sqlite"
    with free_plc() as plc:
        proc = start_deploy(artifact, plc.port, audit, "mode=guarded", "arm=true")
        deadline = time.monotonic() + 30.0
        while not audit.exists() or sum(len(r.records) for r in read_runs(audit)) < 5:
            assert time.monotonic() < deadline, "the run wrote no records"
            assert proc.poll() is None, proc.communicate()[1]
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
        accepted = plc.accepted_commands
    assert proc.returncode == 0, err
    (run,) = read_runs(audit)
    assert [r.step for r in run.records] == list(range(len(run.records)))
    assert accepted == sum(r.written is not None for r in run.records)  # no block was cut short
    assert "guarded run" in out


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("steps=abc", "steps: must be a positive whole number, got 'abc'"),
        ("steps=-3", "steps: must be a positive whole number, got -3"),
        ("steps=2.7", "steps: must be a positive whole number, got 2.7"),
        ("retry_s=-1", "retry_s: must be a positive number, got -1"),
        ("retry_s=0", "retry_s: must be a positive number, got 0"),
        ("status_every_s=abc", "status_every_s: must be a positive number, got 'abc'"),
        ("audit_min_free_mb=-5", "audit_min_free_mb: must be a positive number, got -5"),
        ("hardware.port=99999", "port must be a TCP port, 1 to 65535, got 99999"),
    ],
)
def test_a_run_setting_that_is_not_a_number_of_its_kind_is_refused_before_any_read(
    artifact, tmp_path, capsys, setting, message
):
    """`steps=2.7` ran 3 steps, `retry_s=-1` spun against a dead PLC, port 99999 retried forever."""
    audit = tmp_path / "a.sqlite"
    assert main([f"artifact={artifact}", f"audit={audit}", "status_every_s=0", setting]) == 2
    assert message in capsys.readouterr().err
    assert not audit.exists()


def test_a_shadow_run_never_writes_its_heartbeat_while_it_waits_for_a_tick(artifact, tmp_path):
    """Waits of 0.15 s between reads (3 s ticks), a heartbeat due every 0.02 s: a writable connection would beat.

    An agent heartbeat arms the PLC's watchdog, which trips 2 s after the last one: a watchdog that
    never trips saw none.
    """
    with free_plc(time_factor=20.0) as plc:
        audit = tmp_path / "audit.sqlite"
        assert deploy(artifact, plc.port, audit, "mode=shadow", "steps=2", "hardware.heartbeat_every_s=0.02") == 0
        time.sleep(2.5)
        assert StatusBit.WD_TRIPPED not in plc.status
        assert (plc.accepted_commands, plc.handovers) == (0, 0)


def test_a_record_the_audit_log_refuses_stops_the_run_with_status_1(artifact, tmp_path, capsys, monkeypatch):
    """A full disk: the third append fails; the run stops there with one line, the two before kept."""
    append = AuditLog.append
    calls = []

    def fail_third(log: AuditLog, record: AuditRecord) -> float:
        calls.append(record.step)
        if len(calls) == 3:
            raise AuditError(f"audit log {log.path}: step {record.step} not appended: database or disk is full")
        return append(log, record)

    monkeypatch.setattr(AuditLog, "append", fail_third)
    audit = tmp_path / "audit.sqlite"
    with free_plc() as plc:
        assert deploy(artifact, plc.port, audit, "mode=shadow", "steps=6") == 1
    assert "step 2 not appended: database or disk is full; the run stops" in capsys.readouterr().err
    assert calls == [0, 1, 2]
    (run,) = read_runs(audit)
    assert [r.step for r in run.records] == [0, 1]


def test_a_guarded_run_whose_audit_disk_runs_low_stops_before_a_command_it_might_not_record(
    artifact, tmp_path, capsys, monkeypatch
):
    """Room under the reserve from step 3 on: step 3 sends nothing and is logged; the run stops with status 1.

    Before the reserve, a full disk refused the record of a command that had already gone out.
    """
    room = iter([500.0, 500.0, 500.0, 500.0, 20.0])  # at the start, then before steps 0-3
    monkeypatch.setattr("hardware.audit.free_mb", lambda folder: next(room))
    audit = tmp_path / "audit.sqlite"
    with free_plc() as plc:
        assert deploy(artifact, plc.port, audit, "mode=guarded", "arm=true", "steps=8") == 1
        accepted = plc.accepted_commands
    err = capsys.readouterr().err
    assert "20.0 MB free on its disk, under audit_min_free_mb=64; nothing was sent this step; the run stops" in err
    assert "ms\nerror: audit log " in err  # after the last status line, on a line of its own
    (run,) = read_runs(audit)
    assert [r.step for r in run.records] == [0, 1, 2, 3]
    assert accepted == sum(r.written is not None for r in run.records) > 0  # every command sent is recorded
    last = run.records[-1]
    assert (last.written, last.echo) == (None, None)
    assert str(last.error).startswith("AuditSpaceLow: audit log ")
    assert np.isfinite(last.proposed).all()  # decided and judged, then held back


def test_an_audit_disk_under_its_reserve_is_refused_at_the_start_and_the_check_can_be_turned_off(
    artifact, tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr("hardware.audit.free_mb", lambda folder: 10.0)
    audit = tmp_path / "audit.sqlite"
    assert deploy(artifact, 1, audit, "mode=shadow", "steps=2") == 2
    assert f"error: audit log {audit}: 10.0 MB free on its disk, under audit_min_free_mb=64;" in capsys.readouterr().err
    assert not audit.exists()  # no run opened in the log
    with free_plc() as plc:
        assert deploy(artifact, plc.port, audit, "mode=shadow", "steps=2", "audit_min_free_mb=0") == 0
    assert [r.error for r in read_runs(audit)[0].records] == [None, None]


def test_a_plc_running_another_line_is_named_at_the_attach_and_stops_the_run_with_status_2(artifact, tmp_path, capsys):
    """A three-station line behind the PLC: the flow5 policy's reads were refused and retried for ever, silently."""
    three = copy.deepcopy(DEFINITION)
    three["name"], three["stations"] = "flow3", three["stations"][:3]
    for variant in three["variants"]:
        variant["processing_time_s"] = variant["processing_time_s"][:3]
    audit = tmp_path / "audit.sqlite"
    with free_plc(definition=three) as plc:
        assert deploy(artifact, plc.port, audit, "mode=shadow", "steps=3") == 2
    err = capsys.readouterr().err
    assert "exception response 2 (ILLEGAL_ADDRESS): the PLC does not serve the register map of line 'flow5'" in err
    assert read_runs(audit)[0].records == []


def test_a_plc_that_does_not_answer_shows_on_the_status_line_while_the_run_waits_for_it(artifact, tmp_path):
    """Nothing listening: the run printed nothing at all until it was stopped."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    proc = start_deploy(artifact, port, tmp_path / "audit.sqlite", "mode=shadow", "status_every_s=0.2", "retry_s=0.1")
    time.sleep(4.0)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert f"faults 1 (last: attaching: ModbusDisconnected: 127.0.0.1:{port}" in err
    faults = int(out.split("0 written, ")[1].split(" faults")[0])
    assert faults >= 2  # an attach tried every 0.1 s for 4 s, each counted, none a step of the log
    assert f"shadow run 0 steps, 0 written, {faults} faults (0 in logged steps, the others attaching or " in out


def test_an_ood_gate_asked_of_an_artifact_without_observation_statistics_is_refused(artifact, tmp_path, capsys):
    """Trained with normalize.obs=false, the artifact deployed under guard=plant with the OOD gate off, silently."""
    bare = copy_artifact(artifact, tmp_path / "bare")
    manifest = json.loads((bare / "manifest.json").read_text())
    manifest["vec_normalize"] = None
    (bare / "manifest.json").write_text(json.dumps(manifest))
    audit = tmp_path / "audit.sqlite"
    assert deploy(bare, 1, audit, "mode=shadow", "steps=1") == 2
    err = capsys.readouterr().err
    assert "guard.ood_z: 5 asks for the out-of-distribution gate, but the artifact carries no" in err
    with free_plc() as plc:
        assert deploy(bare, plc.port, audit, "mode=shadow", "steps=1", "guard.ood_z=null") == 0


def test_a_guarded_rate_limit_on_a_setpoint_the_map_does_not_read_back_is_refused(artifact):
    """Without the active setpoint the rate limit counted from the default (or its own unwritten output)."""
    cls, _, period, _ = TASKS["Speed"]
    full = setpoint_spec(DEFINITION, period)
    twin = resolve_line(DEFINITION, cls.levers, period, None, 0, start_default=START_DEFAULT)
    rmap = default_map(full)
    blind = RegisterMap(
        rmap.line,
        tuple(r for r in rmap.registers if not (r.role is Role.ACTIVE and r.name == "press.speed")),
        "a map without press.speed's active register",
    )
    line = ModbusLine(twin.spec, blind, port=1)
    cfg = compose_config(["mode=guarded", "arm=true", f"artifact={artifact}"])
    with pytest.raises(ConfigError, match=r"guard.rate_per_s: register map a map without press.speed's active regis"):
        checked_guard(cfg, line, DEFINITION, PolicyArtifact.load(artifact), period)
    cfg.mode = "shadow"  # a shadow run writes nothing: its report shows the guard's view as it is
    assert checked_guard(cfg, line, DEFINITION, PolicyArtifact.load(artifact), period) is not None
    line.close()


def test_a_runs_first_step_has_no_log_stage_and_is_no_sample_of_it(artifact, tmp_path):
    """The first record stored a `log` latency of 0 (no append came before it), counted as a sample."""
    audit = tmp_path / "a.sqlite"
    with free_plc() as plc:
        assert deploy(artifact, plc.port, audit, "mode=shadow", "steps=3") == 0
    (run,) = read_runs(audit)
    assert "log" not in run.records[0].latency_ms
    assert all(r.latency_ms["log"] > 0 for r in run.records[1:])
    assert latency(run.records)["log"].steps == 2
    assert latency(run.records)["total"].steps == 3
