"""For any stream of proposals, frames and controller status, nothing unsafe reaches the line.

A recording, supervised fake line sits behind `GuardedLine`. Hypothesis drives it with proposals
(NaN, infinite, out of range, fractional modes), frames (NaN and out-of-range sensors, vibration
above the interlock, stale and scattered stamps, frozen instruments) and status (REMOTE and
PERMISSIVE off, E-STOP, watchdog, a frozen heartbeat, clock skew, an old status read). An oracle
written apart from the guard checks every step: while a gate is closed nothing but the heartbeat
goes out; whatever goes out is within the hard and configured limits and every tripped interlock,
within the rate limit of the active setpoint (unless the active setpoint lies outside those
limits: then it goes straight to the nearest allowed value), outside the deadband, whole for a
mode, NaN where the proposal kept (unless the controller runs a level outside those bounds: then it
goes to the nearest allowed value too; a kept maintenance request, a pulse, is never written), and
the dispatch is passed untouched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from hypothesis import event, given, settings
from hypothesis import strategies as st

from hardware import Command, Dispatch, LineStatus
from hardware.guard import Guard, GuardConfig, GuardedLine, Interlock
from tests.guard_fakes import SPEC, RecordingLine, frame

NAN, INF = math.nan, math.inf
RATE = np.array([0.005, 0.005, 1 / 60, NAN])  # per s: speeds, mode; a maintenance request has none
CONFIG = GuardConfig(
    limits={"*.speed": [0.6, 1.1]},
    rate_per_s={"*.speed": 0.005, "a.mode": 1 / 60},  # a maintenance request has no rate (refused if given)
    deadband={"*.speed": 0.01},
    interlocks=[
        Interlock(sensor="{station}.vibration_mm_s", actuator="{station}.speed", above=7.1, max=0.9),
        Interlock(sensor="line.stock_units", below=10.0, actuator="a.mode", max=1.0),
    ],
    max_data_age_s=5.0,
    max_stamp_skew_s=5.0,
    max_clock_skew_s=1.0,
    max_status_age_s=2.0,
    heartbeat_timeout_s=2.0,
    frozen_samples=3,
)
LOW = np.array([0.6, 0.6, 0.0, 0.0])  # hard limits within configured ones
HIGH = np.array([1.1, 1.1, 2.0, 1.0])
DEFAULT = np.array([1.0, 1.0, 2.0, 0.0])
PERIOD_S = 60.0
SENSOR_LOW = np.array([0.0, 0.0, 0.0, 0.0])
SENSOR_HIGH = np.array([8.0, 20.0, 20.0, 100.0])
INSTRUMENT = np.array([False, True, True, False])
BUSY = 4.0  # the station state in which an instrument at zero is no machine at rest
EPS = 1e-9


FAULTS = (
    "remote_off",
    "permissive_off",
    "estop",
    "watchdog",
    "heartbeat_frozen",  # the controller heartbeat does not move this step
    "clock_skew",  # 1.5 s between its clock and ours
    "status_age",  # its status read 2.5 s ago
    "stale",  # a stamp 6 s old
    "skew",  # stamps 5.5 s apart, none older than 4 s
    "stamp_nan",
    "state_nan",  # a value that cannot drop out
    "state_range",
    "stock_range",
    "vibration_inf",
    "proposal_inf",
    "mode_half",
)


@dataclass(frozen=True)
class Step:
    """One control step: what the line shows, what the controller says, what the policy proposes, what goes wrong."""

    proposed: tuple[float, ...]
    vibration: tuple[float, float] | None  # None: both instruments repeat their last values
    stock: float
    lags_s: tuple[float, ...]  # stamp = frame time - lag
    line_dt_s: float
    wall_dt_s: float
    status_age_s: float
    clock_skew_s: float | None
    active: tuple[float, ...] | None
    faults: frozenset[str]


speeds = st.floats(0.3, 1.5) | st.sampled_from([NAN, 0.9, 1.1, 0.6, 1.0, 1.005])
vibrations = st.floats(0.0, 12.0) | st.sampled_from([NAN, 7.1, 0.0])
steps = st.builds(
    Step,
    proposed=st.tuples(
        speeds, speeds, st.sampled_from([0.0, 1.0, 2.0, 3.0, -1.0, NAN]), st.sampled_from([0.0, 1.0, 0.5, 2.0, NAN])
    ),
    vibration=st.none() | st.tuples(vibrations, vibrations),
    stock=st.floats(0.0, 100.0) | st.sampled_from([5.0, 10.0, 50.0]),
    lags_s=st.tuples(*[st.floats(0.0, 4.0) for _ in range(4)]),
    line_dt_s=st.sampled_from([0.0, 1.0, 10.0, 30.0, 60.0, 61.0, 600.0]),
    wall_dt_s=st.sampled_from([0.1, 0.5, 1.0, 1.5, 2.5]),
    status_age_s=st.floats(0.0, 1.9),
    clock_skew_s=st.none() | st.floats(-0.9, 0.9),
    active=st.none()
    | st.tuples(
        *[st.floats(0.3, 1.5) | st.sampled_from([NAN, 1.105, 0.895, 1.2, 0.55]) for _ in range(2)],
        st.sampled_from([0.0, 1.0, 2.0, NAN]),
        st.sampled_from([0.0, 1.0, NAN, 7.0]),  # 7: a request read back out of range
    ),
    faults=st.just(frozenset()) | st.frozensets(st.sampled_from(FAULTS), max_size=3),
)


@dataclass(frozen=True)
class Shown:
    """What one step puts before the guard, faults applied."""

    proposed: np.ndarray
    values: np.ndarray
    stamps: np.ndarray
    status: LineStatus


def show(step: Step, time_s: float, now: float, beat: int, vibration: tuple[float, float]) -> Shown:
    """The frame, status and proposal of a step at line time `time_s` and our clock `now`."""
    f = step.faults
    values = np.array([NAN if "state_nan" in f else 9.0 if "state_range" in f else 3.0, *vibration, step.stock])
    if "vibration_inf" in f:
        values[2] = INF
    if "stock_range" in f:
        values[3] = 120.0
    lags = np.array(step.lags_s)
    if "stale" in f:
        lags[1] = 6.0
    if "skew" in f:
        lags[2], lags[3] = 4.0, -1.5
    if "stamp_nan" in f:
        lags[0] = NAN
    proposed = np.array(step.proposed)
    if "proposal_inf" in f:
        proposed[1] = INF
    if "mode_half" in f:
        proposed[2] = 1.5
    read_at = now - (2.5 if "status_age" in f else step.status_age_s)
    skew = 1.5 if "clock_skew" in f else step.clock_skew_s
    status = LineStatus(
        remote="remote_off" not in f,
        permissive="permissive_off" not in f,
        estop="estop" in f,
        watchdog_tripped="watchdog" in f,
        heartbeat=beat,
        clock_s=None if skew is None else read_at + skew,
        read_at_s=read_at,
        active=None if step.active is None else np.array(step.active),
    )
    return Shown(proposed, values, time_s - lags, status)


class Oracle:
    """What the guard must respect, worked out apart from it."""

    def __init__(self) -> None:
        self.last_out = np.full(4, NAN)
        self.changed_s = np.full(4, -INF)
        self.beat: tuple[int, float] | None = None
        self.samples: list[list[float]] = [[], []]  # each vibration instrument's values, one per new stamp
        self.stamps = [NAN, NAN]

    def gate_closed(self, shown: Shown, time_s: float, now: float) -> bool:
        """Whether any gate is closed (and remember the heartbeat and the instruments' samples)."""
        st_, v, stamps, p = shown.status, shown.values, shown.stamps, shown.proposed
        frozen_beat = self.beat is not None and self.beat[0] == st_.heartbeat and now - self.beat[1] > 2.0
        if self.beat is None or self.beat[0] != st_.heartbeat:
            self.beat = (st_.heartbeat or 0, now)
        frozen = False
        at_rest = [v[k + 1] <= 0.0 and (k == 1 or v[0] != BUSY) for k in range(2)]  # b has no state sensor
        for k in range(2):
            if stamps[k + 1] != self.stamps[k] and not at_rest[k]:  # NaN: a new sample each time; at rest: none
                self.stamps[k] = stamps[k + 1]
                self.samples[k].append(v[k + 1])
            last = self.samples[k][-3:]
            same = len(last) == 3 and (all(x == last[0] for x in last) or all(math.isnan(x) for x in last))
            frozen = frozen or (same and not at_rest[k])
        skew = None if st_.clock_s is None or st_.read_at_s is None else abs(st_.clock_s - st_.read_at_s)
        return bool(
            not st_.remote
            or not st_.permissive
            or st_.estop
            or st_.watchdog_tripped
            or frozen_beat
            or (skew is not None and skew > 1.0)
            or (st_.read_at_s is not None and now - st_.read_at_s > 2.0)
            or not np.all(time_s - stamps <= 5.0)
            or not np.ptp(stamps) <= 5.0
            or np.any(np.isnan(v) & ~INSTRUMENT)
            or np.any(~np.isnan(v) & ((v < SENSOR_LOW - 1e-6) | (v > SENSOR_HIGH * (1 + 1e-6))))
            or frozen
            or np.any(np.isinf(p))
            or (np.isfinite(p[2]) and p[2] != round(p[2]))
        )

    def reference(self, active: np.ndarray | None) -> np.ndarray:
        """The active setpoints: the controller's, else the last written, else the defaults."""
        ref = np.where(np.isnan(self.last_out), DEFAULT, self.last_out)
        if active is not None:
            ref = np.where(np.isnan(active), ref, active)
        ref[2] = math.floor(ref[2] + 0.5)
        return ref

    @staticmethod
    def envelope(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The limits, narrowed by every tripped interlock (a NaN reading trips)."""
        low, high = LOW.copy(), HIGH.copy()
        for i in range(2):
            if not values[i + 1] <= 7.1:
                high[i] = min(high[i], 0.9)
        if not values[3] >= 10.0:
            high[2] = min(high[2], 1.0)
        return low, high


def check_written(oracle: Oracle, shown: Shown, time_s: float, sent: Command) -> None:
    """Every bound on what went out."""
    assert sent.setpoints is not None
    out = np.asarray(sent.setpoints)
    p = shown.proposed
    ref = oracle.reference(shown.status.active)
    low, high = oracle.envelope(shown.values)
    active = shown.status.active
    for j in range(4):
        w = out[j]
        known = active is not None and not math.isnan(active[j])
        slack = 1e-6 * max(abs(low[j]), abs(high[j]), 1.0)  # a float32 readback of a bound is at it
        inside = low[j] - slack <= ref[j] <= high[j] + slack
        if math.isnan(p[j]) and known and not inside and j != 3:  # a keep of a level out of bounds is no keep
            assert w == (low[j] if ref[j] < low[j] else high[j]), f"actuator {j}: kept {ref[j]} out of bounds"
        elif math.isnan(p[j]):
            assert math.isnan(w), f"actuator {j}: kept in the proposal, written {w}"
        if math.isnan(w):  # kept: only a change within the deadband of an active setpoint within limits
            assert math.isnan(p[j]) or (j < 2 and inside), f"actuator {j}: {ref[j]} kept"
            continue
        if math.isnan(p[j]):
            continue  # moved into the bounds, checked above
        assert low[j] - EPS <= w <= high[j] + EPS, f"actuator {j}: {w} outside [{low[j]}, {high[j]}]"
        if j == 2:
            assert w == round(w), f"mode {w} is not whole"
        if not math.isnan(RATE[j]):
            step_j = RATE[j] * min(max(time_s - oracle.changed_s[j], 0.0), PERIOD_S)
            if j == 2:
                step_j = math.floor(step_j)
            if max(ref[j] - step_j, low[j]) <= min(ref[j] + step_j, high[j]):
                assert abs(w - ref[j]) <= step_j + EPS, f"actuator {j}: {ref[j]} -> {w} beyond {step_j}"
            else:  # the active setpoint lies beyond the limits: straight to the nearest allowed value
                assert w == (low[j] if ref[j] < low[j] else high[j])
        if j < 2 and inside:  # no change (within the slack) is written as proposed
            assert abs(w - ref[j]) <= slack or abs(w - ref[j]) >= 0.01 - EPS, (
                f"actuator {j}: {ref[j]} -> {w} in the deadband"
            )
    written = ~np.isnan(out)
    oracle.changed_s[written & (out != ref)] = time_s
    oracle.last_out[written] = out[written]


@settings(max_examples=300, deadline=None)
@given(st.lists(steps, min_size=1, max_size=12))
def test_nothing_unsafe_reaches_the_line(stream):
    inner = RecordingLine()
    now = 1000.0
    line = GuardedLine(inner, Guard(SPEC, CONFIG), clock=lambda: now)
    line.reset()
    oracle = Oracle()
    time_s, beat, vibration = 600.0, 0, (2.0, 2.0)
    dispatch = (Dispatch(1, 7),)
    for step in stream:
        time_s += step.line_dt_s
        now += step.wall_dt_s
        beat += "heartbeat_frozen" not in step.faults
        vibration = step.vibration or vibration
        shown = show(step, time_s, now, beat, vibration)
        inner.next_frame = frame(shown.values, time_s=time_s, stamps=shown.stamps)
        inner.next_status = shown.status
        line.advance(step.line_dt_s or 1.0)
        closed = oracle.gate_closed(shown, time_s, now)
        inner.calls.clear()
        line.write(Command(setpoints=shown.proposed, dispatch=dispatch))
        verdict = line.last_verdict
        assert verdict is not None
        event(verdict.kind)
        assert verdict.allowed == (not closed), f"the oracle says closed={closed}, the guard {verdict.reasons}"
        if closed:
            assert inner.calls == [("heartbeat", None)], f"gate closed ({verdict.reasons}), yet {inner.calls}"
            continue
        ((kind, sent),) = inner.calls
        assert kind == "write"
        assert sent is not None
        assert sent.dispatch == dispatch
        check_written(oracle, shown, time_s, sent)
    info = line.info()
    assert info["guard/checks"] == len(stream)
    assert info["guard/interventions"] == info["guard/blocked"] + info["guard/clipped"]
