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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, never a window

import matplotlib.pyplot as plt
import numpy as np

from experiments.plots import bar_plot
from experiments.report import mean_interval
from experiments.tables import markdown_table
from hardware import Command, Lever, LineSpec
from hardware.audit import AuditRecord, AuditRun, read_runs
from hardware.twin import LineDefinitionError, TwinLine

USAGE = "usage: python -m experiments.report audit=PATH [out=FOLDER] [replay_seeds=5]"
TOLERANCE = 0.01  # agreement: within this share of the actuator's range
STAGES = ("read", "observe", "infer", "guard", "write", "log", "total")  # latency stages in table order
# KPIs compared over the window and in the counterfactual: cumulative ones, so that a difference is a window's
WINDOW_KPIS = (
    ("good_parts", "good parts"),
    ("scrap_parts", "scrap parts"),
    ("energy_kwh", "energy, kWh"),
    ("energy_cost", "energy cost"),
    ("co2_kg", "CO2, kg"),
    ("planned_downtime_s", "planned downtime, s"),
    ("unplanned_downtime_s", "unplanned downtime, s"),
    ("failures", "failures"),
    ("repair_cost", "repair cost"),
    ("stockouts", "stockouts"),
)
CAVEAT = (
    "The twin does not start from the plant's exact state: this is a paired comparison on the twin, "
    "over the same number of control periods, of the two setpoint sequences of the log. Each seed "
    "starts the twin warm (its own warm-up under the line's rules) and runs it twice from that same "
    "state: once writing the setpoints the line ran (`active`), once writing the proposed ones "
    "(clipped to the actuators' limits; NaN keeps the setpoint). What the line's own rules did "
    "outside the setpoints (a reorder, a maintenance the plant started) is not in either sequence."
)


class ReportError(ValueError):
    """An audit log the report cannot be made from; the message names the file and, if any, the run."""


@dataclass(frozen=True)
class Agreement:
    """How closely the proposals of one actuator matched the setpoint the line ran."""

    actuator: str
    unit: str
    low: float
    high: float
    steps: int  # steps where both the proposal and the active setpoint are known
    mean_abs_diff: float  # in the actuator's unit; NaN without compared steps
    within_share: float  # share of the compared steps within the tolerance; NaN without any
    tolerance: float  # in the actuator's unit


@dataclass(frozen=True)
class Interventions:
    """The guard's verdicts and reasons over a run's steps (a step counts once per reason and per kind)."""

    verdicts: Counter[str]  # steps per verdict
    reasons: Counter[str]  # steps per reason
    kinds: Counter[str]  # steps per kind of reason (`reason_kind`)
    steps: int  # steps with at least one reason


@dataclass(frozen=True)
class Spread:
    """p50, p99 and maximum of a quantity over the steps that have it."""

    p50: float
    p99: float
    max: float
    steps: int


@dataclass(frozen=True)
class Difference:
    """Mean paired difference (proposed minus actual) of a KPI over seeds, with its 95% half-width."""

    actual: float  # mean over seeds
    proposed: float
    mean: float
    half_width: float  # 0 for a single seed
    seeds: int


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
        ReportError: the log holds no records, or a run's meta cannot rebuild its line.
    """
    if replay_seeds < 1:
        raise ReportError(f"replay_seeds must be >= 1, got {replay_seeds}")
    audit = Path(audit)
    runs = read_runs(audit)
    if not any(r.records for r in runs):
        raise ReportError(f"audit log {audit}: no records, nothing to report")
    out_dir = Path(out) if out is not None else audit.with_name(f"{audit.stem}_report")
    out_dir.mkdir(parents=True, exist_ok=True)
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


def run_line(audit: Path, run: AuditRun) -> tuple[TwinLine, float]:
    """The twin of a run's line, owning the run's levers at its control period, and that period (s).

    Raises:
        ReportError: the meta lacks the line definition, levers or period, names actuators the line
            does not have, or the run owns the dispatch lever (its decisions are not setpoints).
    """
    where = f"audit log {audit}, run {run.number}"
    meta = run.meta
    missing = [k for k in ("definition", "levers", "control_period_s") if meta.get(k) is None]
    if missing:
        raise ReportError(f"{where}: the meta lacks {', '.join(missing)} (needed to rebuild the line on the twin)")
    try:
        levers = sorted(Lever(v).value for v in meta["levers"])
        period = float(meta["control_period_s"])
        if Lever.DISPATCH.value in levers:
            raise ValueError("the dispatch lever is not a setpoint; the report replays setpoints only")
        if not period > 0:
            raise ValueError(f"control_period_s must be > 0, got {period}")
        line = TwinLine.from_definition(
            meta["definition"], control={"levers": levers, "control_period_s": period}, start={"mode": "warm"}
        )
    except (LineDefinitionError, ValueError, TypeError) as exc:
        raise ReportError(f"{where}: cannot rebuild the line on the twin: {exc}") from exc
    _check_actuators(where, meta.get("actuators"), line.spec)
    return line, period


def _check_actuators(where: str, given: Any, spec: LineSpec) -> None:
    """Refuse a meta whose actuators (names, or mappings with name, low, high) are not the spec's."""
    if given is None:
        return
    entries = [a if isinstance(a, Mapping) else {"name": a} for a in given]
    names = [a.name for a in spec.actuators]
    if [e.get("name") for e in entries] != names:
        raise ReportError(
            f"{where}: the meta's actuators {[e.get('name') for e in entries]} are not the line's {names}"
        )
    for e, a in zip(entries, spec.actuators, strict=True):
        for key, value in (("low", a.low), ("high", a.high)):
            if e.get(key) is not None and not math.isclose(float(e[key]), value):
                raise ReportError(f"{where}: actuator {a.name}: the meta's {key} {e[key]} is not the line's {value}")


def agreement(spec: LineSpec, records: Sequence[AuditRecord], tolerance: float = TOLERANCE) -> list[Agreement]:
    """Per actuator: mean |proposed - active| and the share of steps within `tolerance` x its range."""
    proposed, active = _matrix(r.proposed for r in records), _active(spec, records)
    out = []
    for j, a in enumerate(spec.actuators):
        diff = np.abs(proposed[:, j] - active[:, j])
        diff = diff[~np.isnan(diff)]
        tol = tolerance * (a.high - a.low)
        known = len(diff) > 0
        out.append(
            Agreement(
                a.name,
                a.unit,
                a.low,
                a.high,
                len(diff),
                float(diff.mean()) if known else math.nan,
                float(np.mean(diff <= tol)) if known else math.nan,
                tol,
            )
        )
    return out


def reason_kind(reason: str) -> str:
    """A reason's kind, by which interventions are counted: its text before the first colon."""
    return reason.split(":", 1)[0].strip()


def interventions(records: Sequence[AuditRecord]) -> Interventions:
    """Count the guard's verdicts and reasons over `records`."""
    reasons: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    for r in records:
        reasons.update(set(r.reasons))
        kinds.update({reason_kind(x) for x in r.reasons})
    return Interventions(Counter(r.verdict for r in records), reasons, kinds, sum(1 for r in records if r.reasons))


def latency(records: Sequence[AuditRecord]) -> dict[str, Spread]:
    """p50 / p99 / max of each latency stage (ms), in `STAGES` order, then any other stage logged."""
    stages = list(STAGES) + [s for r in records for s in r.latency_ms if s not in STAGES]
    out = {}
    for stage in dict.fromkeys(stages):
        spread = _spread([r.latency_ms.get(stage) for r in records])
        if spread.steps:
            out[stage] = spread
    return out


def timing(records: Sequence[AuditRecord]) -> dict[str, Spread]:
    """Data staleness, clock skew and status age (s), each over the steps that have it.

    - staleness: frame time minus the oldest sensor stamp (line clock);
    - clock skew: our clock when the status was read (`read_at_s`) minus the controller's clock at
      the frame (`clock_s`): the frame's age on arrival plus the clocks' offset;
    - status age: from the status read to the end of the step's decision (`wall_time_s` plus the
      `total` latency).
    """
    skew, age = [], []
    for r in records:
        clock, read_at = r.status.get("clock_s"), r.status.get("read_at_s")
        skew.append(read_at - clock if clock is not None and read_at is not None else None)
        total = r.latency_ms.get("total")
        age.append(r.wall_time_s + total / 1e3 - read_at if total is not None and read_at is not None else None)
    return {
        "data staleness": _spread([staleness(r) for r in records]),
        "clock skew": _spread(skew),
        "status age": _spread(age),
    }


def staleness(record: AuditRecord) -> float:
    """Frame time minus the oldest finite sensor stamp, s (NaN when no stamp is finite)."""
    stamps = record.stamps[np.isfinite(record.stamps)]
    return float(record.line_time_s - stamps.min()) if len(stamps) else math.nan


def window_kpis(records: Sequence[AuditRecord]) -> dict[str, tuple[float, float, float]]:
    """Per KPI of `WINDOW_KPIS`: first record's value, last record's, and the difference (the window's)."""
    first, last = records[0].kpis, records[-1].kpis
    out = {}
    for key, _ in WINDOW_KPIS:
        a, b = _float(first.get(key)), _float(last.get(key))
        out[key] = (a, b, b - a)
    return out


def counterfactual(
    line: TwinLine, period_s: float, records: Sequence[AuditRecord], seeds: int
) -> dict[str, Difference]:
    """Replay the logged `active` and `proposed` sequences on the twin, paired by seed; KPI differences.

    Each seed s in 0..seeds-1 starts the twin warm with seed s, twice, and runs one control period
    per record, writing that record's setpoints (clipped to the limits, NaN keeps) before each.

    Returns:
        Per KPI of `WINDOW_KPIS`: mean actual and proposed KPIs and the paired difference.
    """
    actual = _clipped(line.spec, _active(line.spec, records))
    proposed = _clipped(line.spec, _matrix(r.proposed for r in records))
    runs = [(_replay(line, s, period_s, actual), _replay(line, s, period_s, proposed)) for s in range(seeds)]
    out = {}
    for key, _ in WINDOW_KPIS:
        a = [float(x[key]) for x, _ in runs]
        p = [float(y[key]) for _, y in runs]
        mean, half = mean_interval([y - x for x, y in zip(a, p, strict=True)])
        out[key] = Difference(float(np.mean(a)), float(np.mean(p)), mean, half, seeds)
    return out


def _replay(line: TwinLine, seed: int, period_s: float, setpoints: np.ndarray) -> dict[str, float]:
    """The KPIs after writing each row of `setpoints` and running one control period."""
    frame = line.reset(seed=seed)
    for row in setpoints:
        line.write(Command(setpoints=row))
        frame = line.advance(period_s)
    return {key: getattr(frame.kpis, key) for key, _ in WINDOW_KPIS}


def _clipped(spec: LineSpec, setpoints: np.ndarray) -> np.ndarray:
    """Setpoints clipped to the actuators' limits, modes rounded to whole numbers; NaN stays (keep)."""
    low = np.array([a.low for a in spec.actuators])
    high = np.array([a.high for a in spec.actuators])
    out = np.clip(setpoints, low, high)
    modes = [j for j, a in enumerate(spec.actuators) if a.lever is Lever.MODE]
    out[:, modes] = np.floor(out[:, modes] + 0.5)
    return out


def _matrix(rows: Any) -> np.ndarray:
    """Rows of equal length as a float matrix."""
    return np.array([np.asarray(r, dtype=float) for r in rows], dtype=float)


def _active(spec: LineSpec, records: Sequence[AuditRecord]) -> np.ndarray:
    """The active setpoints of each record; NaN where the line did not report them."""
    unknown = np.full(len(spec.actuators), math.nan)
    return _matrix(unknown if r.active is None else r.active for r in records)


def _spread(samples: Sequence[float | None]) -> Spread:
    """p50, p99 and max of the finite samples (NaN, with 0 steps, when there are none)."""
    x = np.array([s for s in samples if s is not None], dtype=float)
    x = x[np.isfinite(x)]
    if not len(x):
        return Spread(math.nan, math.nan, math.nan, 0)
    p50, p99 = np.percentile(x, [50, 99])
    return Spread(float(p50), float(p99), float(x.max()), len(x))


def _float(value: Any) -> float:
    return math.nan if value is None else float(value)


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
        f"{prefix}agreement": _agreement_plot(spec, records, out_dir / f"{prefix}agreement.png"),
        f"{prefix}latency": _latency_plot(records, out_dir / f"{prefix}latency.png"),
        f"{prefix}staleness": _staleness_plot(records, out_dir / f"{prefix}staleness.png"),
    }
    differences = counterfactual(line, period, records, seeds)
    label = dict(WINDOW_KPIS)
    plots[f"{prefix}counterfactual"] = bar_plot(
        {label[k]: {"proposed - actual": (d.mean, d.half_width)} for k, d in differences.items()},
        "paired KPI difference on the twin, proposed minus actual",
        out_dir / f"{prefix}counterfactual.png",
    )
    parts = [
        _header(run, period),
        _agreement_text(spec, records, plots[f"{prefix}agreement"]),
        _interventions_text(records),
        _latency_text(records, plots[f"{prefix}latency"]),
        _timing_text(records, plots[f"{prefix}staleness"]),
        _ood_and_faults_text(records),
        _window_text(records),
        _counterfactual_text(differences, plots[f"{prefix}counterfactual"]),
    ]
    return "\n\n".join(parts), plots


def _header(run: AuditRun, period: float) -> str:
    meta, records = run.meta, run.records
    first, last = records[0], records[-1]
    hours = (last.line_time_s - first.line_time_s) / 3600.0
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
        f"line time {_num(first.line_time_s)} s to {_num(last.line_time_s)} s ({hours:.2f} h), "
        f"control period {period:g} s, levers {', '.join(meta['levers'])}."
    )


def _agreement_text(spec: LineSpec, records: Sequence[AuditRecord], plot: Path) -> str:
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
    return (
        "### Agreement: proposed and actual setpoints\n\n"
        "Actual: the setpoints the line ran at the step (the controller's `active` setpoints); steps "
        f"where either is unknown are not compared.\n\n{table}\n\n![proposed and actual setpoints]({plot.name})"
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
        "The line's cumulative KPIs at the first and the last record, and their difference.\n\n"
        + markdown_table(["KPI", "first record", "last record", "window"], rows)
    )


def _counterfactual_text(differences: Mapping[str, Difference], plot: Path) -> str:
    label = dict(WINDOW_KPIS)
    rows = [
        [label[k], _num(d.actual), _num(d.proposed), f"{_num(d.mean)} ± {_num(d.half_width)}", d.seeds]
        for k, d in differences.items()
    ]
    table = markdown_table(["KPI", "actual (mean)", "proposed (mean)", "proposed - actual (95%)", "seeds"], rows)
    return f"### Counterfactual on the twin\n\n{CAVEAT}\n\n{table}\n\n![counterfactual KPI differences]({plot.name})"


def _hours(records: Sequence[AuditRecord]) -> np.ndarray:
    """Line time of each record, h since the first."""
    t = np.array([r.line_time_s for r in records], dtype=float)
    return (t - t[0]) / 3600.0


def _agreement_plot(spec: LineSpec, records: Sequence[AuditRecord], path: Path) -> Path:
    """Proposed and actual setpoints over time, one panel per actuator; returns `path`."""
    hours = _hours(records)
    proposed, active = _matrix(r.proposed for r in records), _active(spec, records)
    n = len(spec.actuators)
    fig, axes = plt.subplots(n, 1, figsize=(8.0, 0.6 + 1.6 * n), sharex=True, squeeze=False)
    for j, (ax, a) in enumerate(zip(axes[:, 0], spec.actuators, strict=True)):
        ax.step(hours, active[:, j], where="post", label="actual (ran)", color="tab:gray", linewidth=4, alpha=0.5)
        ax.step(hours, proposed[:, j], where="post", label="proposed", color="tab:blue")
        ax.set_ylabel(f"{a.name}\n{a.unit}", fontsize="small")
        ax.set_ylim(a.low - 0.05 * (a.high - a.low), a.high + 0.05 * (a.high - a.low))
    axes[0, 0].legend(fontsize="small", loc="upper right")
    axes[-1, 0].set_xlabel("line time since the first record, h")
    fig.suptitle("proposed and actual setpoints")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _latency_plot(records: Sequence[AuditRecord], path: Path) -> Path:
    """Each stage's p50, p99 and maximum (ms, log scale), and the total latency over time; returns `path`."""
    spreads = latency(records)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11.0, 0.8 + 0.45 * max(len(spreads), 4)))
    rows = range(len(spreads))
    for attr, marker in (("p50", "o"), ("p99", "D"), ("max", "x")):
        left.plot([getattr(s, attr) for s in spreads.values()], rows, marker, linestyle="none", label=attr)
    left.hlines(rows, [s.p50 for s in spreads.values()], [s.max for s in spreads.values()], color="tab:gray")
    left.set_yticks(rows, list(spreads))
    left.invert_yaxis()
    left.set_xscale("log")
    left.set_xlabel("latency, ms")
    left.legend(fontsize="small")
    totals = [r.latency_ms.get("total", math.nan) for r in records]
    right.plot(_hours(records), totals, ".", markersize=2)
    right.set_xlabel("line time since the first record, h")
    right.set_ylabel("total latency, ms")
    fig.suptitle("decision latency")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _staleness_plot(records: Sequence[AuditRecord], path: Path) -> Path:
    """Data staleness over time; returns `path`."""
    fig, ax = plt.subplots(figsize=(8.0, 3.0))
    ax.plot(_hours(records), [staleness(r) for r in records], ".", markersize=2)
    ax.set_xlabel("line time since the first record, h")
    ax.set_ylabel("frame time - oldest stamp, s")
    ax.set_title("data staleness")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
