"""The shadow report from hand-built audit logs: its numbers, its counterfactual, its files and its errors."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from experiments import report
from experiments.shadow_evidence import FAULTED, verdict_of
from experiments.shadow_report import (
    CAVEAT,
    ReportError,
    agreement,
    counterfactual,
    interventions,
    latency,
    line_hours,
    run_line,
    stretches,
    timing,
    window_kpis,
    write_shadow_report,
)
from hardware import Kpis
from hardware.audit import AuditLog, AuditRecord, AuditRun, read_runs
from tests.lines import REPO

STEPS = 40
STAGES = ("read", "observe", "infer", "guard", "write", "log", "total")
SENSORS = 6


def run_meta(definition: dict[str, Any]) -> dict[str, Any]:
    """Run meta as `experiments.deploy` writes it, for flow5's Speed levers."""
    return {
        "mode": "shadow",
        "line": "flow5",
        "definition": {k: v for k, v in definition.items() if not k.startswith("_")},
        "task": "Speed",
        "levers": ["speed"],
        "control_period_s": 60.0,
        "actuators": [
            {"name": "cut.speed", "unit": "ratio", "low": 0.5, "high": 1.2},
            {"name": "press.speed", "unit": "ratio", "low": 0.5, "high": 1.15},
            {"name": "weld.speed", "unit": "ratio", "low": 0.5, "high": 1.2},
            {"name": "paint.speed", "unit": "ratio", "low": 0.5, "high": 1.2},
            {"name": "assemble.speed", "unit": "ratio", "low": 0.5, "high": 1.2},
        ],
        "artifact": "policy.onnx",
        "artifact_sha256": "cd" * 32,
    }


def step_record(k: int, proposed: np.ndarray, active: np.ndarray | None, rng: np.random.Generator) -> AuditRecord:
    """Step `k` of a shadow run: known reasons, staleness, OOD flags and KPIs; random latencies."""
    t = 3600.0 + 60.0 * k
    ages = np.linspace(0.0, 0.5 * (k % 7), SENSORS)  # the oldest stamp is 0.5 * (k % 7) s old
    reasons = (("rate:cut.speed",) if k % 5 == 0 else ()) + (("interlock:vibration",) if k % 10 == 0 else ())
    blocked = k == 7
    return AuditRecord(
        step=k,
        wall_time_s=1.7e9 + 60.0 * k,
        mode="shadow",
        line_time_s=t,
        frame_seq=k + 1,
        values=np.full(SENSORS, 1.0),
        stamps=t - ages,
        status={"remote": True, "clock_s": 1.7e9 + 60.0 * k - 0.25, "read_at_s": 1.7e9 + 60.0 * k + 0.002},
        active=active,
        kpis=dataclasses.asdict(Kpis(good_parts=100 + 2 * k, energy_kwh=50.0 + 0.5 * k)),
        observation=np.zeros(8),
        proposed=proposed,
        verdict="block" if blocked else "shadow",
        reasons=("gate:line_error",) if blocked else reasons,
        written=None,
        echo=None,
        ood=k % 8 == 0,
        latency_ms={stage: float(x) for stage, x in zip(STAGES, rng.gamma(2.0, 0.5, len(STAGES)), strict=True)},
        artifact_sha256="cd" * 32,
        error="ModbusTimeout: no answer from 127.0.0.1" if blocked else None,
    )


def known_proposals(k: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Proposed and active setpoints of step `k`: each actuator agrees in its own known way."""
    proposed = np.array(
        [
            1.0 + (0.1 if k % 4 == 0 else 0.003),  # cut: off by 0.1 every 4th step, else within 1% of its 0.7 range
            1.0,  # press: always agrees
            np.nan if k % 2 == 0 else 1.0,  # weld: no proposal on even steps
            0.6,  # paint: always 0.4 below
            1.0,
        ]
    )
    return proposed, None if k < 2 else np.ones(5)  # the first two steps: the PLC did not report its setpoints


def write_audit(path: Path, definition: dict[str, Any], rows: list[tuple[np.ndarray, np.ndarray | None]]) -> None:
    rng = np.random.default_rng(0)
    with AuditLog(path, run_meta(definition)) as log:
        for k, (proposed, active) in enumerate(rows):
            log.append(step_record(k, proposed, active, rng))


@pytest.fixture
def audit(tmp_path: Path, flow5_definition: dict[str, Any]) -> Path:
    """A shadow run of 40 known steps, then an empty run (the log reopened and closed at once)."""
    path = tmp_path / "pilot.sqlite"
    write_audit(path, flow5_definition, [known_proposals(k) for k in range(STEPS)])
    AuditLog(path, {"mode": "shadow"}).close()
    return path


def first_run(path: Path) -> AuditRun:
    return read_runs(path)[0]


def test_agreement_per_actuator(audit: Path) -> None:
    run = first_run(audit)
    line, period = run_line(audit, run)
    assert period == 60.0
    rows = {a.actuator: a for a in agreement(line.spec, run.records)}
    compared = STEPS - 2
    off = sum(1 for k in range(2, STEPS) if k % 4 == 0)  # 9 steps off by 0.1
    cut = rows["cut.speed"]
    assert cut.steps == compared
    assert cut.tolerance == pytest.approx(0.007)
    assert cut.mean_abs_diff == pytest.approx((off * 0.1 + (compared - off) * 0.003) / compared)
    assert cut.within_share == pytest.approx((compared - off) / compared)
    assert (rows["press.speed"].mean_abs_diff, rows["press.speed"].within_share) == (0.0, 1.0)
    assert rows["weld.speed"].steps == sum(1 for k in range(2, STEPS) if k % 2)
    assert rows["paint.speed"].mean_abs_diff == pytest.approx(0.4)
    assert rows["paint.speed"].within_share == 0.0


def test_interventions_by_reason_and_verdict(audit: Path) -> None:
    counted = interventions(first_run(audit).records)
    assert counted.verdicts == {"shadow": STEPS - 1, "block": 1}
    assert counted.kinds == {"rate": 8, "interlock": 4, "gate": 1}
    assert counted.reasons == {"rate:cut.speed": 8, "interlock:vibration": 4, "gate:line_error": 1}
    assert counted.steps == 9  # steps 0, 5, ..., 35 and the blocked step 7


def test_a_guarded_step_that_faulted_before_the_guard_is_not_counted_as_its_block() -> None:
    """Such a step is logged `block` with no reason; counted as one, a PLC outage read as the guard blocking."""
    step = step_record(3, np.ones(5), np.ones(5), np.random.default_rng(0))
    faulted = dataclasses.replace(step, mode="guarded", verdict="block", reasons=(), error="ModbusTimeout: no answer")
    blocked = dataclasses.replace(faulted, reasons=("gate:stale_status",))
    clean = dataclasses.replace(blocked, error=None)
    assert [verdict_of(r) for r in (faulted, blocked, clean)] == [FAULTED, "block", "block"]
    assert interventions([faulted, blocked, clean]).verdicts == {FAULTED: 1, "block": 2}


def test_latency_staleness_and_clocks_are_numpys_percentiles(audit: Path) -> None:
    records = first_run(audit).records
    spreads = latency(records)
    assert list(spreads) == list(STAGES)
    for stage in STAGES:
        x = np.array([r.latency_ms[stage] for r in records])
        p50, p99 = np.percentile(x, [50, 99])
        assert (spreads[stage].p50, spreads[stage].p99, spreads[stage].max, spreads[stage].steps) == (
            p50,
            p99,
            x.max(),
            STEPS,
        )
    clocks = timing(records)
    stale = np.array([0.5 * (k % 7) for k in range(STEPS)])
    assert clocks["data staleness"].p50 == pytest.approx(np.percentile(stale, 50))
    assert clocks["data staleness"].p99 == pytest.approx(np.percentile(stale, 99))
    assert clocks["data staleness"].max == pytest.approx(3.0)
    assert clocks["clock skew"].p50 == pytest.approx(0.252)
    # to the end of the decision: `total` less its `log`, the previous record's append before the read
    ends = [60.0 * k + (r.latency_ms["total"] - r.latency_ms["log"]) / 1e3 for k, r in enumerate(records)]
    ages = np.array([end - (60.0 * k + 0.002) for k, end in enumerate(ends)])
    assert clocks["status age"].p99 == pytest.approx(
        np.percentile(ages, 99), abs=1e-6
    )  # epoch seconds: ~1e-7 s of float


def test_kpis_over_the_window(audit: Path) -> None:
    kpis = window_kpis(first_run(audit).records)
    assert kpis["good_parts"] == (100.0, 100.0 + 2 * (STEPS - 1), 2 * (STEPS - 1))
    assert kpis["energy_kwh"][2] == pytest.approx(0.5 * (STEPS - 1))


def test_kpis_over_a_window_that_reattached_count_each_attach(tmp_path: Path, flow5_definition: dict[str, Any]) -> None:
    rng = np.random.default_rng(0)
    records = [step_record(k, *known_proposals(k), rng) for k in range(10)]
    restart = 6  # the PLC restarted: its clock and its counters begin again
    for k, r in enumerate(records[restart:]):
        records[restart + k] = dataclasses.replace(
            r, line_time_s=60.0 * k, kpis=dataclasses.asdict(Kpis(good_parts=3 * k, energy_kwh=1.0 * k))
        )
    assert [len(s) for s in stretches(records)] == [6, 4]
    kpis = window_kpis(records)
    assert kpis["good_parts"] == (100.0, 9.0, 2 * 5 + 3 * 3)
    assert kpis["energy_kwh"][2] == pytest.approx(0.5 * 5 + 1.0 * 3)
    assert line_hours(records) == pytest.approx((5 + 3) * 60.0 / 3600.0)
    assert [len(s) for s in stretches(records[:restart])] == [restart]
    clock_on = [  # the counters were reset while the PLC's clock ran on
        dataclasses.replace(r, line_time_s=3600.0 + 60.0 * k) if k >= restart else r for k, r in enumerate(records)
    ]
    assert [len(s) for s in stretches(clock_on)] == [6, 4]
    assert window_kpis(clock_on)["good_parts"][2] == 2 * 5 + 3 * 3


def counterfactual_run(tmp_path: Path, definition: dict[str, Any], proposed: float, active: float, steps: int) -> Any:
    path = tmp_path / "cf.sqlite"
    write_audit(path, definition, [(np.full(5, proposed), np.full(5, active))] * steps)
    run = first_run(path)
    line, period = run_line(path, run)
    return counterfactual(line, period, run.records, seeds=3)


def test_the_counterfactual_of_the_same_setpoints_is_exactly_zero(
    tmp_path: Path, flow5_definition: dict[str, Any]
) -> None:
    differences = counterfactual_run(tmp_path, flow5_definition, 0.8, 0.8, 30)
    assert all(d.mean == 0.0 and d.half_width == 0.0 and d.seeds == 3 for d in differences.values())
    assert differences["good_parts"].actual > 0


def test_a_slower_proposal_makes_fewer_good_parts_on_the_twin(tmp_path: Path, flow5_definition: dict[str, Any]) -> None:
    """Speed 0.6 proposed where the line ran 1.0: over an hour the twin makes fewer good parts."""
    differences = counterfactual_run(tmp_path, flow5_definition, 0.6, 1.0, 60)
    good = differences["good_parts"]
    assert good.mean < 0
    assert good.proposed < good.actual
    assert good.mean == pytest.approx(good.proposed - good.actual)


def test_a_counterfactual_of_one_seed_shows_no_interval(tmp_path: Path, flow5_definition: dict[str, Any]) -> None:
    """One seed has no spread to estimate: it printed `-2 ± 0` under "95%", where two seeds gave -5 ± 38."""
    path = tmp_path / "cf.sqlite"
    write_audit(path, flow5_definition, [(np.full(5, 0.6), np.full(5, 1.0))] * 60)
    run = first_run(path)
    good = counterfactual(*run_line(path, run), run.records, seeds=1)["good_parts"]
    assert good.seeds == 1
    assert good.mean == good.proposed - good.actual != 0
    assert np.isnan(good.half_width)
    text = write_shadow_report(path, tmp_path / "report", replay_seeds=1)["report"].read_text()
    assert f"| good parts | {good.actual:g} | {good.proposed:g} | {good.mean:g} | 1 |" in text
    assert "± 0" not in text


def test_the_report_renders_every_section_and_plot(audit: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report.main([f"audit={audit}", "replay_seeds=2"])
    folder = audit.with_name("pilot_report")
    assert f"written: {folder / 'shadow_report.md'}" in capsys.readouterr().out
    text = (folder / "shadow_report.md").read_text()
    for section in (
        "## Run 1",
        "### Agreement: proposed and actual setpoints",
        "### Guard interventions",
        "### Decision latency",
        "### Data staleness and clocks",
        "### Out-of-distribution observations and faults",
        "### KPIs over the window",
        "### Counterfactual on the twin",
        CAVEAT,
        "## Run 2",
    ):
        assert section in text, section
    assert "no records" in text.split("## Run 2")[1]
    assert f"whose head is `{read_runs(audit)[0].head}`" in text  # to hold against what deploy printed
    assert "| `rate:cut.speed` | 8 | 20.0% |" in text
    assert "Observations out of the training distribution: 5 of 40 steps (12.5%)" in text
    assert "| ModbusTimeout | 1 |" in text
    for plot in ("agreement", "latency", "staleness", "counterfactual"):
        png = folder / f"run1_{plot}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({png.name})" in text


def test_out_folder_is_made(audit: Path, tmp_path: Path) -> None:
    report.main([f"audit={audit}", f"out={tmp_path / 'here' / 'there'}", "replay_seeds=1"])
    assert (tmp_path / "here" / "there" / "shadow_report.md").is_file()


def test_an_out_that_cannot_be_a_folder_is_one_line_and_status_2(
    audit: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    taken = tmp_path / "a_file"
    taken.write_text("not a folder\n")
    for out in (taken, taken / "below"):  # a traceback each before (FileExistsError, NotADirectoryError)
        with pytest.raises(SystemExit) as exit_:
            report.main([f"audit={audit}", f"out={out}", "replay_seeds=1"])
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: out: cannot make the report folder {out}: ")
        assert err.count("\n") == 1
    assert taken.read_text() == "not a folder\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["audit=MISSING"], "MISSING: no such file"),
        (["audit=TEXT"], "TEXT: "),
        (["audit=EMPTY"], "EMPTY: no records, nothing to report"),
        (["audit=EMPTY", "seeds=3"], "'seeds=3': not an argument here"),
        (["audit=EMPTY", "replay_seeds=x"], "replay_seeds: expected a whole number, got 'x'"),
        ([], "audit=PATH is required"),
    ],
)
def test_a_bad_audit_file_or_argument_is_one_line_and_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    files = {"MISSING": tmp_path / "missing.sqlite", "TEXT": tmp_path / "text.sqlite", "EMPTY": tmp_path / "e.sqlite"}
    files["TEXT"].write_text("no database here\n" * 200)
    AuditLog(files["EMPTY"], {"mode": "shadow"}).close()
    for name, path in files.items():
        args = [a.replace(name, str(path)) for a in args]
        message = message.replace(name, str(path))
    with pytest.raises(SystemExit) as exit_:
        report.main(args)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("error: ")
    assert message in err


def test_a_meta_that_cannot_rebuild_the_line_is_refused(tmp_path: Path, flow5_definition: dict[str, Any]) -> None:
    path = tmp_path / "audit.sqlite"
    write_audit(path, flow5_definition, [known_proposals(k) for k in range(3)])
    run = first_run(path)
    for change, message in (
        ({"definition": None}, "the meta lacks definition"),
        ({"levers": ["dispatch"]}, "dispatch lever is not a setpoint"),
        ({"actuators": ["cut.speed"]}, "are not the line's"),
        ({"actuators": [*run.meta["actuators"][:4], {"name": "assemble.speed", "high": 2.0}]}, "high 2.0"),
    ):
        bad = dataclasses.replace(run, meta={**run.meta, **change})
        with pytest.raises(ReportError, match=message):
            run_line(path, bad)


def test_python_m_experiments_report_runs(tmp_path: Path) -> None:
    """The module runs as a program (no import cycle with the shadow report) and exits 2 on a missing file."""
    missing = tmp_path / "nowhere.sqlite"
    done = subprocess.run(
        [sys.executable, "-m", "experiments.report", f"audit={missing}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr == f"error: audit log {missing}: no such file\n"
