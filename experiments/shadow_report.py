"""The shadow report: the evidence a plant engineer reads before arming a policy, from its audit log.

python -m experiments.report audit=runs/deploy/audit.sqlite [out=folder] [replay_seeds=5]

Every run of the log that holds records gets its own section (a reopened log is a new run: each
shadow session is judged on its own), in one Markdown file `shadow_report.md` with PNG plots beside
it, by default in `<audit stem>_report/` next to the audit file. A section shows:

- agreement of the proposed setpoints with the setpoints the line actually ran (`active`), per
  actuator: mean absolute difference and the share of steps within `TOLERANCE` of its range;
- the guard's verdicts, and its interventions counted over steps by reason and by kind of reason
  (a reason's text before its first colon: `interlock` of `interlock:vibration`);
- decision latency per stage, data staleness (frame time minus its oldest stamp), clock skew (our
  clock at the status read minus the controller's clock at the frame) and status age (from the
  status read to the end of the step's decision);
- the out-of-distribution rate and the faults met;
- the KPIs over the window (last record's cumulative KPIs minus the first's);
- a counterfactual on the twin: the proposed setpoints replayed against the setpoints the line ran.

The run's meta must hold what rebuilds its line on the twin: `definition` (the line definition
as plain data), `levers` (their values) and `control_period_s`, as `experiments.deploy` writes
them. The actuators' names and ranges come from the line so rebuilt; `actuators` in the meta, if
there (names, or mappings with `name` and optionally `low` and `high`), must match them.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

from experiments.plots import bar_plot
from experiments.shadow_evidence import (
    STAGES,
    TOLERANCE,
    WINDOW_KPIS,
    Agreement,
    Difference,
    Interventions,
    ReportError,
    Spread,
    agreement,
    counterfactual,
    interventions,
    latency,
    line_hours,
    reason_kind,
    run_line,
    staleness,
    stretches,
    timing,
    window_kpis,
)
from experiments.shadow_plots import agreement_plot, latency_plot, staleness_plot
from experiments.tables import markdown_table
from hardware import LineSpec
from hardware.audit import AuditRecord, AuditRun, read_runs

USAGE = "usage: python -m experiments.report audit=PATH [out=FOLDER] [replay_seeds=5]"
__all__ = [
    "CAVEAT",
    "STAGES",
    "TOLERANCE",
    "USAGE",
    "WINDOW_KPIS",
    "Agreement",
    "Difference",
    "Interventions",
    "ReportError",
    "Spread",
    "agreement",
    "arguments",
    "counterfactual",
    "interventions",
    "latency",
    "line_hours",
    "reason_kind",
    "run_line",
    "staleness",
    "stretches",
    "timing",
    "window_kpis",
    "write_shadow_report",
]
CAVEAT = (
    "The twin does not start from the plant's exact state: this is a paired comparison on the twin, "
    "over the same number of control periods, of the two setpoint sequences of the log. Each seed "
    "starts the twin warm (its own warm-up under the line's rules) and runs it twice from that same "
    "state: once writing the setpoints the line ran (`active`), once writing the proposed ones "
    "(clipped to the actuators' limits; NaN keeps the setpoint). What the line's own rules did "
    "outside the setpoints (a reorder, a maintenance the plant started) is not in either sequence."
)


def arguments(args: Sequence[str]) -> tuple[str, str | None, int]:
    """`audit`, `out` (None: the default) and `replay_seeds` from key=value arguments.

    Raises:
        ReportError: an argument that is not key=value, an unknown key, no `audit`, or a
            `replay_seeds` that is not a whole number.
    """
    given: dict[str, str] = {}
    for arg in args:
        key, eq, value = arg.partition("=")
        if not eq or key not in ("audit", "out", "replay_seeds"):
            raise ReportError(f"{arg!r}: not an argument here; {USAGE}")
        given[key] = value
    if not given.get("audit"):
        raise ReportError(f"audit=PATH is required; {USAGE}")
    try:
        seeds = int(given.get("replay_seeds", "5"))
    except ValueError:
        raise ReportError(f"replay_seeds: expected a whole number, got {given['replay_seeds']!r}") from None
    return given["audit"], given.get("out") or None, seeds


def write_shadow_report(audit: str | Path, out: str | Path | None = None, replay_seeds: int = 5) -> dict[str, Path]:
    """Write the shadow report of an audit log: one Markdown file and its PNG plots.

    Args:
        audit: the audit log (`hardware.audit.AuditLog`).
        out: the folder to write into (made if missing; default `<audit stem>_report/` beside the log).
        replay_seeds: twin seeds (0, 1, ...) of the counterfactual, at least 1.

    Returns:
        The files written, by name (`report`, `run<n>_<plot>`).

    Raises:
        hardware.audit.AuditError: the file is missing or not an audit log.
        ReportError: the log holds no records, a run's meta cannot rebuild its line, or `out` cannot
            be made a folder.
    """
    if replay_seeds < 1:
        raise ReportError(f"replay_seeds must be >= 1, got {replay_seeds}")
    audit = Path(audit)
    runs = read_runs(audit)
    if not any(r.records for r in runs):
        raise ReportError(f"audit log {audit}: no records, nothing to report")
    out_dir = Path(out) if out is not None else audit.with_name(f"{audit.stem}_report")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file of that name, a folder that cannot be made
        raise ReportError(f"out: cannot make the report folder {out_dir}: {exc.strerror or exc}") from exc
    paths: dict[str, Path] = {}
    total = sum(len(r.records) for r in runs)
    sections = [
        f"# Shadow report: {audit.name}",
        f"Audit log `{audit}`: {len(runs)} run(s), {total} records. Each run is reported on its own.",
    ]
    for run in runs:
        if run.records:
            text, plots = _run_section(audit, run, out_dir, replay_seeds)
            sections.append(text)
            paths.update(plots)
        else:
            sections.append(f"## Run {run.number}\n\nOpened {_when(run.opened_at_s)}; no records.")
    paths["report"] = out_dir / "shadow_report.md"
    paths["report"].write_text("\n\n".join(sections) + "\n")
    return paths


def _num(x: float) -> str:
    """Four significant figures, thousands separated, `n/a` for NaN."""
    if math.isnan(x):
        return "n/a"
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.4g}"


def _share(n: int, total: int) -> str:
    return f"{100.0 * n / total:.1f}%" if total else "n/a"


def _when(epoch_s: float) -> str:
    return dt.datetime.fromtimestamp(epoch_s, dt.UTC).isoformat(timespec="seconds")


def _run_section(audit: Path, run: AuditRun, out_dir: Path, seeds: int) -> tuple[str, dict[str, Path]]:
    """The Markdown of one run and the plots it shows."""
    records = run.records
    line, period = run_line(audit, run)
    spec = line.spec
    width = len(spec.actuators)
    for r in records:
        if r.proposed.shape != (width,) or (r.active is not None and r.active.shape != (width,)):
            raise ReportError(
                f"audit log {audit}, run {run.number}, step {r.step}: proposed or active setpoints are not "
                f"{width} values for the actuators {[a.name for a in spec.actuators]}"
            )
    prefix = f"run{run.number}_"
    plots = {
        f"{prefix}agreement": agreement_plot(spec, records, out_dir / f"{prefix}agreement.png"),
        f"{prefix}latency": latency_plot(records, out_dir / f"{prefix}latency.png"),
        f"{prefix}staleness": staleness_plot(records, out_dir / f"{prefix}staleness.png"),
    }
    decided = any(r.error is None for r in records)  # a run stopped by faults may have no step that decided
    if decided:
        differences = counterfactual(line, period, records, seeds)
        label = dict(WINDOW_KPIS)
        plots[f"{prefix}counterfactual"] = bar_plot(
            {label[k]: {"proposed - actual": (d.mean, d.half_width)} for k, d in differences.items()},
            "paired KPI difference on the twin, proposed minus actual",
            out_dir / f"{prefix}counterfactual.png",
        )
        replayed = _counterfactual_text(differences, plots[f"{prefix}counterfactual"])
    else:  # a policy that gave up, a PLC gone: the run most worth reading, reported without its replay
        replayed = "### Counterfactual on the twin\n\nNot run: every step of this run met a fault, none decided."
    parts = [
        _header(run, period),
        _agreement_text(spec, records, decided, plots[f"{prefix}agreement"]),
        _interventions_text(records),
        _latency_text(records, plots[f"{prefix}latency"]),
        _timing_text(records, plots[f"{prefix}staleness"]),
        _ood_and_faults_text(records),
        _window_text(records),
        replayed,
    ]
    return "\n\n".join(parts), plots


def _header(run: AuditRun, period: float) -> str:
    meta, records = run.meta, run.records
    first, last = records[0], records[-1]
    hours = line_hours(records)
    sha = meta.get("artifact_sha256") or first.artifact_sha256
    facts = [
        f"line {meta.get('line', '?')}",
        f"task {meta.get('task', '?')}",
        f"mode {', '.join(dict.fromkeys(r.mode for r in records))}",
        f"artifact {meta.get('artifact', '?')} (SHA-256 {sha[:16]}...)",
    ]
    return (
        f"## Run {run.number}\n\n"
        f"{'; '.join(facts)}.\n\n"
        f"Opened {_when(run.opened_at_s)}; {len(records)} steps (step {first.step} to {last.step}), "
        f"line time {_num(first.line_time_s)} s to {_num(last.line_time_s)} s ({hours:.2f} h{_reattached(records)}), "
        f"control period {period:g} s, levers {', '.join(meta['levers'])}. The audit log's hash chain "
        f"holds from the run's opening to its last step, whose head is `{run.head}`: the head deploy "
        "printed when the run stopped, if nothing was cut off or rewritten."
    )


def _reattached(records: Sequence[AuditRecord]) -> str:
    n = len(stretches(records))
    return "" if n == 1 else f" over {n} attaches: the line's clock or counters went back {n - 1} times"


def _agreement_text(spec: LineSpec, records: Sequence[AuditRecord], decided: bool, plot: Path) -> str:
    rows = [
        [
            a.actuator,
            a.unit,
            f"{a.low:g} to {a.high:g}",
            a.steps,
            _num(a.mean_abs_diff),
            "n/a" if math.isnan(a.within_share) else f"{100 * a.within_share:.1f}%",
        ]
        for a in agreement(spec, records)
    ]
    table = markdown_table(
        ["actuator", "unit", "range", "steps compared", "mean abs difference", f"within {TOLERANCE:.0%} of range"],
        rows,
        numeric=[False, False, False, True, True, True],
    )
    none = "" if decided else " No step of this run decided (each met a fault)."
    return (
        "### Agreement: proposed and actual setpoints\n\n"
        "Actual: the setpoints the line ran at the step (the controller's `active` setpoints); steps "
        f"where either is unknown are not compared.{none}\n\n{table}\n\n![proposed and actual setpoints]({plot.name})"
    )


def _interventions_text(records: Sequence[AuditRecord]) -> str:
    n = len(records)
    counted = interventions(records)
    text = (
        "### Guard interventions\n\n"
        "In shadow mode the verdict is `shadow` and the reasons say what the guard would have done. "
        f"Steps with at least one reason: {counted.steps} of {n} ({_share(counted.steps, n)}).\n\n"
        + markdown_table(
            ["verdict", "steps", "share"], [[v, c, _share(c, n)] for v, c in counted.verdicts.most_common()]
        )
    )
    for title, counts in (("kind of reason", counted.kinds), ("reason", counted.reasons)):
        if counts:
            rows = [[f"`{k}`", c, _share(c, n)] for k, c in counts.most_common()]
            text += "\n\n" + markdown_table([title, "steps", "share"], rows)
    return text


def _spread_table(spreads: Mapping[str, Spread], unit: str) -> str:
    rows = [[k, _num(s.p50), _num(s.p99), _num(s.max), s.steps] for k, s in spreads.items()]
    return markdown_table(["", f"p50, {unit}", f"p99, {unit}", f"max, {unit}", "steps"], rows)


def _latency_text(records: Sequence[AuditRecord], plot: Path) -> str:
    return (
        "### Decision latency\n\n"
        "Per stage of the loop (`log` is the previous record's append), ms.\n\n"
        f"{_spread_table(latency(records), 'ms')}\n\n![decision latency]({plot.name})"
    )


def _timing_text(records: Sequence[AuditRecord], plot: Path) -> str:
    return (
        "### Data staleness and clocks\n\n"
        "Data staleness: frame time minus its oldest sensor stamp. Clock skew: our clock when the "
        "status was read minus the controller's clock at the frame (the frame's age on arrival plus "
        "the clocks' offset). Status age: from the status read to the end of the step's decision.\n\n"
        f"{_spread_table(timing(records), 's')}\n\n![data staleness]({plot.name})"
    )


def _ood_and_faults_text(records: Sequence[AuditRecord]) -> str:
    n = len(records)
    ood = sum(1 for r in records if r.ood)
    faults = Counter(reason_kind(r.error) for r in records if r.error is not None)
    text = (
        "### Out-of-distribution observations and faults\n\n"
        f"Observations out of the training distribution: {ood} of {n} steps ({_share(ood, n)}).\n\n"
        f"Steps that met a fault: {sum(faults.values())} of {n} ({_share(sum(faults.values()), n)})."
    )
    if faults:
        text += "\n\n" + markdown_table(["fault", "steps"], [[k, c] for k, c in faults.most_common()])
    return text


def _window_text(records: Sequence[AuditRecord]) -> str:
    label = dict(WINDOW_KPIS)
    rows = [[label[k], _num(a), _num(b), _num(d)] for k, (a, b, d) in window_kpis(records).items()]
    return (
        "### KPIs over the window\n\n"
        "The line's cumulative KPIs at the first and the last record, and the window's count: their "
        "difference, summed attach by attach where the line's clock or counters went back.\n\n"
        + markdown_table(["KPI", "first record", "last record", "window"], rows)
    )


def _interval(d: Difference) -> str:
    """`mean ± half-width`, the mean alone for one seed (no interval: `± 0` read as certainty)."""
    return _num(d.mean) if math.isnan(d.half_width) else f"{_num(d.mean)} ± {_num(d.half_width)}"


def _counterfactual_text(differences: Mapping[str, Difference], plot: Path) -> str:
    label = dict(WINDOW_KPIS)
    rows = [[label[k], _num(d.actual), _num(d.proposed), _interval(d), d.seeds] for k, d in differences.items()]
    table = markdown_table(["KPI", "actual (mean)", "proposed (mean)", "proposed - actual (95%)", "seeds"], rows)
    return f"### Counterfactual on the twin\n\n{CAVEAT}\n\n{table}\n\n![counterfactual KPI differences]({plot.name})"
