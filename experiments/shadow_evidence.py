"""The evidence of a shadow report, as numbers: agreement, interventions, latency, timing, KPIs, counterfactual.

`experiments.shadow_report` renders them; each function here takes a run's records (and the line
rebuilt from its meta) and returns plain values a test can check against numpy and scipy.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from experiments.report import shown_interval
from hardware import Command, Lever, LineSpec
from hardware.audit import AuditRecord, AuditRun
from hardware.twin import LineDefinitionError, TwinLine

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
    half_width: float  # NaN for a single seed: one sample has no interval
    seeds: int


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
    proposed, active = matrix(r.proposed for r in records), actual_setpoints(spec, records)
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


FAULTED = "none (a fault before the guard)"  # the verdict reported for a step the guard never decided


def verdict_of(record: AuditRecord) -> str:
    """A step's verdict as reported: `FAULTED` for a guarded step whose fault came before the guard decided.

    Such a step is logged `block` (nothing was written), but with no reason: a guard's block always
    gives one. Counted as the guard's, a PLC outage read as the guard blocking the policy.
    """
    if record.verdict == "block" and not record.reasons and record.error is not None:
        return FAULTED
    return record.verdict


def interventions(records: Sequence[AuditRecord]) -> Interventions:
    """Count the guard's verdicts (`verdict_of`) and reasons over `records`."""
    reasons: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    for r in records:
        reasons.update(set(r.reasons))
        kinds.update({reason_kind(x) for x in r.reasons})
    return Interventions(Counter(verdict_of(r) for r in records), reasons, kinds, sum(1 for r in records if r.reasons))


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
      `total` latency less its `log` part, the previous record's append, which came before the read).
    """
    skew, age = [], []
    for r in records:
        clock, read_at = r.status.get("clock_s"), r.status.get("read_at_s")
        skew.append(read_at - clock if clock is not None and read_at is not None else None)
        total = r.latency_ms.get("total")
        if total is not None and read_at is not None:
            age.append(r.wall_time_s + (total - r.latency_ms.get("log", 0.0)) / 1e3 - read_at)
        else:
            age.append(None)
    return {
        "data staleness": _spread([staleness(r) for r in records]),
        "clock skew": _spread(skew),
        "status age": _spread(age),
    }


def staleness(record: AuditRecord) -> float:
    """Frame time minus the oldest finite sensor stamp, s (NaN when no stamp is finite)."""
    stamps = record.stamps[np.isfinite(record.stamps)]
    return float(record.line_time_s - stamps.min()) if len(stamps) else math.nan


def stretches(records: Sequence[AuditRecord]) -> list[Sequence[AuditRecord]]:
    """`records` cut where the line's clock or a cumulative KPI goes back: each stretch is one attach.

    A deployment attaches afresh when the PLC's clock or counters went back (a restart, a reset),
    and the line's cumulative KPIs start again from that attach, so a window is counted stretch by
    stretch.
    """

    def restarted(before: AuditRecord, after: AuditRecord) -> bool:
        went_back = (_float(after.kpis.get(k)) < _float(before.kpis.get(k)) for k, _ in WINDOW_KPIS)
        return after.line_time_s < before.line_time_s or any(went_back)

    cuts = [k for k in range(1, len(records)) if restarted(records[k - 1], records[k])]
    bounds = [0, *cuts, len(records)]
    return [records[a:b] for a, b in itertools.pairwise(bounds)]


def window_kpis(records: Sequence[AuditRecord]) -> dict[str, tuple[float, float, float]]:
    """Per KPI of `WINDOW_KPIS`: first record's value, last record's, and the window's count.

    The window's count sums each stretch's last minus first value (`stretches`): the plain
    difference when the run never re-attached.
    """
    parts = stretches(records)
    out = {}
    for key, _ in WINDOW_KPIS:
        total = sum(_float(p[-1].kpis.get(key)) - _float(p[0].kpis.get(key)) for p in parts)
        out[key] = (_float(records[0].kpis.get(key)), _float(records[-1].kpis.get(key)), total)
    return out


def line_hours(records: Sequence[AuditRecord]) -> float:
    """Line time the records span, h, summed over their stretches (`stretches`)."""
    return sum(p[-1].line_time_s - p[0].line_time_s for p in stretches(records)) / 3600.0


def counterfactual(
    line: TwinLine, period_s: float, records: Sequence[AuditRecord], seeds: int
) -> dict[str, Difference]:
    """Replay the logged `active` and `proposed` sequences on the twin, paired by seed; KPI differences.

    Each seed s in 0..seeds-1 starts the twin warm with seed s, twice, and runs one control period
    per record that met no fault, writing that record's setpoints (clipped to the limits, NaN keeps)
    before each.

    Returns:
        Per KPI of `WINDOW_KPIS`: mean actual and proposed KPIs and the paired difference.
    """
    records = [r for r in records if r.error is None]  # a step that met a fault decided nothing
    actual = _clipped(line.spec, actual_setpoints(line.spec, records))
    proposed = _clipped(line.spec, matrix(r.proposed for r in records))
    runs = [(_replay(line, s, period_s, actual), _replay(line, s, period_s, proposed)) for s in range(seeds)]
    out = {}
    for key, _ in WINDOW_KPIS:
        a = [float(x[key]) for x, _ in runs]
        p = [float(y[key]) for _, y in runs]
        mean, half = shown_interval([y - x for x, y in zip(a, p, strict=True)])
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


def matrix(rows: Any) -> np.ndarray:
    """Rows of equal length as a float matrix."""
    return np.array([np.asarray(r, dtype=float) for r in rows], dtype=float)


def actual_setpoints(spec: LineSpec, records: Sequence[AuditRecord]) -> np.ndarray:
    """The active setpoints of each record; NaN where the line did not report them."""
    unknown = np.full(len(spec.actuators), math.nan)
    return matrix(unknown if r.active is None else r.active for r in records)


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
