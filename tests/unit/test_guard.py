"""The guard's checks one by one, in their order: gates, out of distribution, interlocks, clamp, rate, deadband."""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pytest

from hardware import ActuatorSpec, Command, Dispatch, Lever, LineStatus, Supervised
from hardware.guard import Guard, GuardConfig, GuardedLine, Interlock, OodStats, Verdict
from hardware.guard_rules import unmatched_entries
from tests.guard_fakes import HEALTHY, SPEC, PlainLine, RecordingLine, frame

NAN = math.nan
VIBRATION = Interlock(
    sensor="{station}.vibration_mm_s", actuator="{station}.speed", above=7.1, max=0.9, name="{station}.vibration"
)
CONFIG = GuardConfig(
    limits={"*.speed": [0.6, 1.1]},
    rate_per_s={"*.speed": 0.005},
    deadband={"*.speed": 0.01},
    interlocks=[VIBRATION],
    max_data_age_s=5.0,
    max_stamp_skew_s=5.0,
    max_clock_skew_s=1.0,
    max_status_age_s=2.0,
    heartbeat_timeout_s=2.0,
    frozen_samples=3,
    ood_z=5.0,
    ood_max_fraction=0.2,
)
NOW = 1000.0  # our wall clock, s
STEADY = dataclasses.replace(CONFIG, frozen_samples=None)  # for one frame's values checked over time


def check(guard: Guard, proposed, fr=None, status: LineStatus | None = None, now: float = NOW, obs=None) -> Verdict:
    return guard.check(np.array(proposed, dtype=float), fr or frame(), status or LineStatus(), now, obs)


def assert_out(verdict: Verdict, expected) -> None:
    assert verdict.setpoints is not None
    np.testing.assert_allclose(verdict.setpoints, expected, rtol=0, atol=1e-12, equal_nan=True)


# --- a clean proposal -------------------------------------------------------------------------


def test_a_proposal_within_every_limit_goes_out_unchanged():
    v = check(Guard(SPEC, CONFIG), [1.05, 0.95, 2.0, 0.0])
    assert_out(v, [1.05, 0.95, 2.0, 0.0])
    assert (v.reasons, v.kind, v.allowed, v.ood) == ((), "pass", True, False)
    with pytest.raises(ValueError, match="read-only"):
        v.setpoints[0] = 1.2  # type: ignore[index]


def test_nan_keeps_and_stays_nan():
    v = check(Guard(SPEC, CONFIG), [NAN, NAN, NAN, NAN])
    assert_out(v, [NAN] * 4)
    assert v.kind == "pass"


# --- 1. gates ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (LineStatus(remote=False), "gate:remote_off"),
        (LineStatus(permissive=False), "gate:permissive_off"),
        (LineStatus(estop=True), "gate:estop"),
        (LineStatus(watchdog_tripped=True), "gate:watchdog"),
        (LineStatus(local_levers=("mode",)), "gate:lever_local:mode"),
    ],
)
def test_each_operator_bit_lever_kept_local_and_the_watchdog_block(status, reason):
    v = check(Guard(SPEC, CONFIG), [1.0, 1.0, 2.0, 0.0], status=status)
    assert (v.setpoints, v.reasons, v.kind, v.allowed) == (None, (reason,), "block", False)


def test_every_closed_gate_is_named_in_order():
    status = LineStatus(
        remote=False, permissive=False, estop=True, watchdog_tripped=True, local_levers=("maintenance", "speed")
    )
    v = check(Guard(SPEC, CONFIG), [math.inf, 1.0, 2.0, 0.0], fr=frame((NAN, 2.0, 2.0, 50.0)), status=status)
    assert v.reasons == (
        "gate:remote_off",
        "gate:permissive_off",
        "gate:estop",
        "gate:watchdog",
        "gate:lever_local:maintenance",
        "gate:lever_local:speed",
        "gate:nan:a.state",
        "gate:invalid_proposal",
    )


def test_controller_clock_skew_and_status_age():
    guard = Guard(SPEC, CONFIG)
    p = [1.0, 1.0, 2.0, 0.0]
    assert check(guard, p, status=LineStatus(clock_s=NOW - 0.5, read_at_s=NOW)).allowed  # 0.5 s apart
    assert check(guard, p, status=LineStatus(clock_s=NOW - 1.5, read_at_s=NOW)).reasons == ("gate:clock_skew",)
    assert check(guard, p, status=LineStatus(read_at_s=NOW - 1.9)).allowed  # read 1.9 s ago
    assert check(guard, p, status=LineStatus(read_at_s=NOW - 2.5)).reasons == ("gate:stale_status",)
    unchecked = Guard(SPEC, dataclasses.replace(CONFIG, max_clock_skew_s=None))
    assert check(unchecked, p, status=LineStatus(clock_s=0.0, read_at_s=NOW)).allowed  # twin, scaled clocks


def test_a_heartbeat_standing_still_longer_than_the_timeout_blocks_until_it_moves():
    guard = Guard(SPEC, CONFIG)
    p = [1.0, 1.0, 2.0, 0.0]
    assert check(guard, p, status=LineStatus(heartbeat=7), now=100.0).allowed
    assert check(guard, p, status=LineStatus(heartbeat=7), now=101.9).allowed  # 1.9 s: within 2 s
    assert check(guard, p, status=LineStatus(heartbeat=7), now=102.1).reasons == ("gate:heartbeat_frozen",)
    assert check(guard, p, status=LineStatus(heartbeat=8), now=102.2).allowed
    guard.reset()
    assert check(guard, p, status=LineStatus(heartbeat=8), now=200.0).allowed  # reset forgets the old beat


@pytest.mark.parametrize(
    ("stamps", "reasons"),
    [
        ((600.0, 595.5, 600.0, 600.0), ()),  # 4.5 s old, 4.5 s apart
        ((600.0, 594.0, 600.0, 600.0), ("gate:stale_data", "gate:stamp_skew")),  # 6 s old and apart
        ((600.0, 596.0, 601.5, 600.0), ("gate:stamp_skew",)),  # 4 s old at most, 5.5 s apart
        ((600.0, NAN, 600.0, 600.0), ("gate:stale_data", "gate:stamp_skew")),  # no stamp: no age
    ],
)
def test_old_or_scattered_sensor_stamps_block(stamps, reasons):
    v = check(Guard(SPEC, CONFIG), [1.0, 1.0, 2.0, 0.0], fr=frame(stamps=stamps))
    assert v.reasons == reasons
    assert v.allowed == (not reasons)


@pytest.mark.parametrize(
    ("values", "reasons"),
    [
        ((NAN, 2.0, 2.0, 50.0), ("gate:nan:a.state",)),  # a state code cannot drop out
        ((9.0, 2.0, 2.0, 50.0), ("gate:range:a.state",)),
        ((-1.0, 2.0, 2.0, 50.0), ("gate:range:a.state",)),
        ((3.0, math.inf, 2.0, 50.0), ("gate:range:a.vibration_mm_s",)),
        ((3.0, 2.0, 2.0, 100.001), ("gate:range:line.stock_units",)),
        ((3.0, 2.0, 2.0, 100.0 + 1e-5), ()),  # 1e-7 of the bound: float32 rounding, no excess
        ((3.0, 2.0, 2.0, 150.0), ("gate:range:line.stock_units",)),
    ],
)
def test_nan_and_out_of_range_sensors_block(values, reasons):
    v = check(Guard(SPEC, CONFIG), [1.0, 1.0, 2.0, 0.0], fr=frame(values))
    assert v.reasons == reasons


def test_a_range_open_above_is_checked_only_below():
    guard = Guard(SPEC, dataclasses.replace(CONFIG, open_above=["line.stock_*"]))
    assert check(guard, [1.0, 1.0, 2.0, 0.0], fr=frame((3.0, 2.0, 2.0, 150.0))).allowed
    for below_or_no_reading in (-1.0, math.inf):
        assert check(guard, [1.0, 1.0, 2.0, 0.0], fr=frame((3.0, 2.0, 2.0, below_or_no_reading))).reasons == (
            "gate:range:line.stock_units",
        )


def test_an_instruments_dropout_is_no_gate_but_trips_its_interlock():
    v = check(Guard(SPEC, CONFIG), [1.0, 1.0, 2.0, 0.0], fr=frame((3.0, NAN, 2.0, 50.0)))
    assert_out(v, [0.9, 1.0, 2.0, 0.0])  # fail safe: a.speed within a.vibration's bound
    assert v.reasons == ("interlock:a.vibration",)


def test_an_instrument_repeating_its_value_over_new_samples_is_frozen():
    guard = Guard(SPEC, CONFIG)  # frozen after 3 identical samples
    p = [1.0, 1.0, 2.0, 0.0]
    b = (2.0 + 0.1 * k for k in itertools.count())  # b's instrument moves
    assert check(guard, p, fr=frame((3.0, 2.5, next(b), 50.0), time_s=600.0)).allowed  # 1st sample of 2.5
    assert check(guard, p, fr=frame((3.0, 2.5, next(b), 50.0), time_s=660.0)).allowed  # 2nd
    # the same sample again (its stamp did not move) is no new sample
    assert check(guard, p, fr=frame((3.0, 2.5, 2.1, 50.0), time_s=661.0, stamps=(661.0, 660.0, 660.0, 661.0))).allowed
    v = check(guard, p, fr=frame((3.0, 2.5, next(b), 50.0), time_s=720.0))  # 3rd identical sample
    assert v.reasons == ("gate:frozen:a.vibration_mm_s",)
    assert check(guard, p, fr=frame((3.0, 2.6, next(b), 50.0), time_s=780.0)).allowed  # it moved
    for t in (840.0, 900.0, 960.0):  # a stopped machine reads an exact zero: the floor is exempt
        assert check(guard, p, fr=frame((0.0, 0.0, next(b), 50.0), time_s=t)).allowed  # a.state OFF


@pytest.mark.parametrize(("state", "frozen"), [(0.0, False), (1.0, False), (7.0, False), (3.0, False), (4.0, True)])
def test_an_instrument_stuck_at_its_floor_is_frozen_while_its_station_is_busy(state, frozen):
    guard = Guard(SPEC, CONFIG)  # frozen after 3 identical samples
    p = [1.0, 1.0, 2.0, 0.0]
    verdicts = [check(guard, p, fr=frame((state, 0.0, 0.0, 50.0), time_s=600.0 + 60 * k)) for k in range(3)]
    assert [v.allowed for v in verdicts[:2]] == [True, True]
    # a.state OFF, STANDBY, DOWN, IDLE: at rest (an idle machine may read 0 on a coarse register); BUSY: a
    # machine working a part vibrates, a dead sensor reads 0. b has no state sensor: its floor stays exempt.
    assert verdicts[2].reasons == (("gate:frozen:a.vibration_mm_s",) if frozen else ())


def test_zeros_read_at_rest_do_not_count_towards_frozen_and_busy_zeros_add_up_across_rests():
    guard = Guard(SPEC, CONFIG)  # frozen after 3 identical samples
    p = [1.0, 1.0, 2.0, 0.0]
    states = [0.0] * 5 + [4.0, 4.0, 3.0, 3.0, 4.0]  # OFF x5, BUSY, BUSY, IDLE, IDLE, BUSY
    verdicts = [
        check(guard, p, fr=frame((state, 0.0, 2.0 + 0.1 * k, 50.0), time_s=600.0 + 60 * k))
        for k, state in enumerate(states)
    ]
    frozen = [v.reasons == ("gate:frozen:a.vibration_mm_s",) for v in verdicts]
    assert frozen == [False] * 9 + [True]  # the third zero read busy, the idle ones between not counted


@pytest.mark.parametrize(
    "proposed",
    [[math.inf, 1.0, 2.0, 0.0], [1.0, -math.inf, 2.0, 0.0], [1.0, 1.0, 1.5, 0.0]],
    ids=["inf", "-inf", "half-mode"],
)
def test_an_infinite_setpoint_or_a_fractional_mode_blocks(proposed):
    v = check(Guard(SPEC, CONFIG), proposed)
    assert (v.setpoints, v.reasons) == (None, ("gate:invalid_proposal",))


def test_a_proposal_of_the_wrong_shape_is_an_error():
    with pytest.raises(ValueError, match=r"expected shape \(4,\)"):
        check(Guard(SPEC, CONFIG), [1.0, 1.0])


# --- 2. out of distribution -------------------------------------------------------------------

STATS = OodStats(mean=np.zeros(4), std=np.array([1.0, 1.0, 1.0, 2.0]))


@pytest.mark.parametrize(
    ("obs", "ood"),
    [
        ([0.0, 0.0, 5.0, 9.0], False),  # z = 5 (not beyond), 4.5
        ([0.0, 0.0, 0.0, 11.0], True),  # z = 5.5: 1 of 4 features beyond, 0.25 > 0.2
        ([0.0, 0.0, 0.0, NAN], True),  # not a number: beyond
    ],
)
def test_observations_far_from_training_block(obs, ood):
    v = check(Guard(SPEC, CONFIG, ood=STATS), [1.0, 1.0, 2.0, 0.0], obs=np.array(obs))
    assert (v.ood, v.allowed, v.reasons) == (ood, not ood, ("gate:ood",) if ood else ())


def test_ood_needs_the_observation_and_its_length():
    guard = Guard(SPEC, CONFIG, ood=STATS)
    with pytest.raises(ValueError, match="needs the policy's observation"):
        check(guard, [1.0, 1.0, 2.0, 0.0])
    with pytest.raises(ValueError, match="3 features; the OOD statistics have 4"):
        check(guard, [1.0, 1.0, 2.0, 0.0], obs=np.zeros(3))
    assert check(Guard(SPEC, dataclasses.replace(CONFIG, ood_z=None), ood=STATS), [1.0, 1.0, 2.0, 0.0]).allowed


def test_ood_statistics_come_from_the_manifests_vec_normalize():
    manifest = {"vec_normalize": {"norm_obs": True, "obs_mean": [1.0, 2.0], "obs_var": [4.0, 0.0], "epsilon": 1e-8}}
    stats = OodStats.from_manifest(manifest)
    assert stats is not None
    np.testing.assert_allclose(stats.mean, [1.0, 2.0])
    np.testing.assert_allclose(stats.std, [math.sqrt(4.0 + 1e-8), 1e-4])
    assert OodStats.from_manifest({"vec_normalize": None}) is None
    assert OodStats.from_manifest({"vec_normalize": {**manifest["vec_normalize"], "norm_obs": False}}) is None


# --- 3. interlocks ----------------------------------------------------------------------------


def test_a_tripped_interlock_bounds_its_stations_actuator_only():
    v = check(Guard(SPEC, CONFIG), [1.05, 1.05, 2.0, 0.0], fr=frame((3.0, 8.0, 7.0, 50.0)))  # a: 8 > 7.1 mm/s
    assert_out(v, [0.9, 1.05, 2.0, 0.0])
    assert (v.reasons, v.kind) == (("interlock:a.vibration",), "clip")


def test_a_rule_over_the_stations_names_each_station_it_cuts():
    unnamed = dataclasses.replace(VIBRATION, name="vibration")  # no {station} in the name
    v = check(
        Guard(SPEC, dataclasses.replace(CONFIG, interlocks=[unnamed])),
        [1.05, 1.05, NAN, NAN],
        fr=frame((3.0, 8.0, 8.0, 50.0)),
    )
    assert_out(v, [0.9, 0.9, NAN, NAN])
    assert v.reasons == ("interlock:vibration:a", "interlock:vibration:b")


def test_an_interlock_below_a_reading_with_its_default_name():
    low_stock = Interlock(sensor="line.stock_units", below=10.0, actuator="a.mode", max=1.0)
    guard = Guard(SPEC, dataclasses.replace(CONFIG, interlocks=[low_stock]))
    v = check(guard, [1.0, 1.0, 2.0, 0.0], fr=frame((3.0, 2.0, 2.0, 5.0)))
    assert_out(v, [1.0, 1.0, 1.0, 0.0])
    assert v.reasons == ("interlock:line.stock_units:a.mode",)
    assert check(guard, [1.0, 1.0, 2.0, 0.0], fr=frame((3.0, 2.0, 2.0, 10.0))).reasons == ()


def test_interlocks_that_contradict_each_other_block():
    slow = Interlock(sensor="a.vibration_mm_s", above=7.1, actuator="a.speed", max=0.7)
    fast = Interlock(sensor="line.stock_units", below=10.0, actuator="a.speed", min=0.8)
    guard = Guard(SPEC, dataclasses.replace(CONFIG, interlocks=[slow, fast]))
    v = check(guard, [NAN, NAN, NAN, NAN], fr=frame((3.0, 8.0, 2.0, 5.0)))
    assert (v.setpoints, v.reasons) == (None, ("gate:interlock_conflict:a.speed",))


# --- 4. clamp, 5. rate, 6. deadband -----------------------------------------------------------


def test_clamp_then_rate_in_that_order():
    v = check(Guard(SPEC, CONFIG), [1.15, 0.55, 2.0, 0.0])
    # a: 1.15 -> 1.1 (configured); b: 0.55 -> 0.6 (configured) -> 0.7 (0.3 below 1.0 in one period)
    assert_out(v, [1.1, 0.7, 2.0, 0.0])
    assert v.reasons == ("clamp:a.speed", "clamp:b.speed", "rate:b.speed")
    hard = check(Guard(SPEC, GuardConfig()), [1.3, 0.2, 3.0, 2.0])  # only the spec's hard limits
    assert_out(hard, [1.2, 0.5, 2.0, 1.0])
    assert hard.reasons == ("clamp:a.speed", "clamp:b.speed", "clamp:a.mode", "clamp:a.maintain")


def test_the_rate_limit_counts_line_time_since_the_last_change_at_most_one_period():
    guard = Guard(SPEC, STEADY)  # 0.005 ratio/s
    v = check(guard, [0.6, NAN, NAN, NAN], fr=frame(time_s=600.0))  # from the default 1.0: 60 s credit
    assert_out(v, [0.7, NAN, NAN, NAN])
    assert v.reasons == ("rate:a.speed",)
    v = check(guard, [1.1, NAN, NAN, NAN], fr=frame(time_s=630.0))  # from the 0.7 let out 30 s ago
    assert_out(v, [0.85, NAN, NAN, NAN])
    v = check(guard, [0.6, NAN, NAN, NAN], fr=frame(time_s=640.0))  # 10 s: 0.05 below 0.85
    assert_out(v, [0.8, NAN, NAN, NAN])
    active = np.array([0.75, NAN, NAN, NAN])  # the controller runs 0.75 (it ramped or was set)
    v = check(guard, [1.1, NAN, NAN, NAN], fr=frame(time_s=1000.0), status=LineStatus(active=active))
    assert_out(v, [1.05, NAN, NAN, NAN])  # 360 s idle count one period: 0.3 above the active 0.75


def test_a_line_clock_that_goes_back_gives_no_rate_credit_and_a_reset_gives_one_period():
    """A set-back was worth a full period each time: clock jitter of 1 ms moved a setpoint five periods in 4 ms."""
    guard = Guard(SPEC, STEADY)  # 0.005 ratio/s, 60 s period
    assert_out(check(guard, [0.6, NAN, NAN, NAN], fr=frame(time_s=600.0)), [0.7, NAN, NAN, NAN])
    for t in (599.999, 600.0, 599.998):  # jitter: the time since the change stays what it was
        out = check(guard, [0.1, NAN, NAN, NAN], fr=frame(time_s=t)).setpoints[0]
        assert np.isnan(out) or out >= 0.7 - 0.005 * 0.002 - 1e-12  # kept (deadband), or a hair below 0.7
    v = check(guard, [1.1, NAN, NAN, NAN], fr=frame(time_s=10.0))  # the PLC restarted: its clock reads 10 s
    assert v.reasons == ("rate:a.speed", "deadband:a.speed")  # no time since the change: a step too small to send
    assert np.isnan(v.setpoints[0])
    assert check(guard, [1.1, NAN, NAN, NAN], fr=frame(time_s=20.0)).setpoints[0] == pytest.approx(0.75, abs=0.01)
    guard.reset()  # deploy attaches afresh after a restart: one period's credit from what the line runs
    active = LineStatus(active=np.array([0.7, NAN, NAN, NAN]))
    assert_out(check(guard, [1.1, NAN, NAN, NAN], fr=frame(time_s=30.0), status=active), [1.0, NAN, NAN, NAN])


def test_a_line_time_that_is_not_a_number_gives_no_rate_credit():
    """A NaN frame time switched the rate limit off for that step and the next."""
    guard = Guard(SPEC, dataclasses.replace(STEADY, max_data_age_s=None))  # the stale-data gate would block it
    assert_out(check(guard, [1.1, NAN, NAN, NAN], fr=frame(time_s=600.0)), [1.1, NAN, NAN, NAN])
    v = check(guard, [0.6, NAN, NAN, NAN], fr=frame(time_s=NAN, stamps=[600.0] * 4))
    assert_out(v, [1.1, NAN, NAN, NAN])
    assert v.reasons == ("rate:a.speed",)
    assert_out(check(guard, [0.6, NAN, NAN, NAN], fr=frame(time_s=610.0)), [1.05, NAN, NAN, NAN])


def test_limits_and_interlocks_beat_the_rate():
    guard = Guard(SPEC, dataclasses.replace(CONFIG, rate_per_s={"*.speed": 0.001}))  # 0.06 per period
    active = np.array([1.2, 1.0, NAN, NAN])  # a runs above the configured 1.1
    v = check(guard, [1.0, 1.0, NAN, NAN], fr=frame((3.0, 2.0, 8.0, 50.0)), status=LineStatus(active=active))
    # a: 1.2 -> 1.14 at the rate, yet the limit is 1.1; b: interlock 0.9, 0.1 below 1.0 at once
    assert_out(v, [1.1, 0.9, NAN, NAN])
    assert v.reasons == ("interlock:b.vibration", "rate:a.speed")


def test_a_change_within_the_deadband_is_not_written():
    guard = Guard(SPEC, STEADY)  # 0.01 ratio
    v = check(guard, [1.005, 1.02, NAN, NAN])
    assert_out(v, [NAN, 1.02, NAN, NAN])
    assert (v.reasons, v.kind) == (("deadband:a.speed",), "clip")
    assert check(guard, [1.0, 1.02, NAN, NAN], fr=frame(time_s=660.0)).reasons == ()  # no change at all
    outside = LineStatus(active=np.array([1.105, NAN, NAN, NAN]))  # active above the limit 1.1
    v = check(guard, [1.1, NAN, NAN, NAN], fr=frame(time_s=720.0), status=outside)
    assert_out(v, [1.1, NAN, NAN, NAN])  # 0.005 is within the deadband, but 1.105 may not be kept


def test_a_float32_readback_of_a_limit_is_at_the_limit():
    guard = Guard(SPEC, STEADY)  # limit 1.1, deadband 0.01
    at_limit = LineStatus(active=np.array([np.float32(1.1), NAN, NAN, NAN], dtype=np.float64))  # 1.1000000238
    v = check(guard, [NAN, NAN, NAN, NAN], status=at_limit)
    assert_out(v, [NAN] * 4)  # a keep stays a keep: not a clamp of 1.1000000238 written every step
    assert v.reasons == ()
    v = check(guard, [1.0951, NAN, NAN, NAN], fr=frame(time_s=660.0), status=at_limit)
    assert_out(v, [NAN] * 4)
    assert v.reasons == ("deadband:a.speed",)
    v = check(guard, [1.1, NAN, NAN, NAN], fr=frame(time_s=720.0), status=at_limit)
    assert (v.reasons, v.kind) == ((), "pass")


def test_modes_stay_whole_and_a_maintenance_request_is_not_rate_limited():
    config = GuardConfig(limits={"a.mode": [0.5, 2.0]}, rate_per_s={"*": 1 / 60})  # one step per period
    guard = Guard(SPEC, config)
    v = check(guard, [1.0, 1.0, 0.0, 1.0])
    assert_out(v, [1.0, 1.0, 1.0, 1.0])  # mode: 0 -> 1 (limit 0.5 takes whole numbers from 1); request 0 -> 1
    assert v.reasons == ("clamp:a.mode",)
    ramp = Guard(SPEC, GuardConfig(rate_per_s={"*": 1 / 60}))
    v = check(ramp, [1.0, 1.0, 0.0, 1.0], status=LineStatus(active=np.array([NAN, NAN, 2.0, 0.0])))
    assert_out(v, [1.0, 1.0, 1.0, 1.0])  # mode 2 -> 1, one whole step
    assert v.reasons == ("rate:a.mode",)
    assert check(ramp, [1.0, 1.0, 0.0, 0.0], fr=frame(time_s=630.0)).reasons == ("rate:a.mode",)  # 0.5 step: 0


# --- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"limits": {"*.speed": [1.1, 0.6]}}, r"limits\.\*\.speed: low 1\.1 is above high 0\.6"),
        ({"limits": {"*.speed": [1.0]}}, r"limits\.\*\.speed must be \[low, high\]"),
        ({"rate_per_s": {"*.speed": 0.0}}, r"rate_per_s\.\*\.speed must be a positive number"),
        ({"deadband": {"*.speed": -0.1}}, r"deadband\.\*\.speed must be >= 0"),
        ({"max_data_age_s": 0.0}, "max_data_age_s must be a positive number"),
        ({"frozen_samples": 1}, "frozen_samples must be a whole number >= 2"),
        ({"ood_max_fraction": 1.0}, r"ood_max_fraction must be in \[0, 1\)"),
        ({"rate_per_s": {"*.speed": True}}, r"rate_per_s\.\*\.speed must be a number, got True"),  # was 1 per s
        ({"max_data_age_s": True}, "max_data_age_s must be a number, got True"),
        ({"rate_per_s": {"*.speed": 10**400}}, r"rate_per_s\.\*\.speed must be a number, got 1000"),  # past float
        ({"limits": None}, "limits must be a mapping of actuator names or patterns to values, got None"),
        ({"open_above": 5}, "open_above must be sensor names or patterns, got 5"),
    ],
)
def test_config_errors_name_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GuardConfig(**kwargs)


def test_interlock_errors_name_the_rule():
    with pytest.raises(ValueError, match="give `above` or `below`"):
        Interlock(sensor="a.vibration_mm_s", actuator="a.speed", max=0.9)
    with pytest.raises(ValueError, match="give `max` or `min`"):
        Interlock(sensor="a.vibration_mm_s", actuator="a.speed", above=7.1)
    with pytest.raises(ValueError, match=r"min 1\.0 is above max 0\.9"):
        Interlock(sensor="a.vibration_mm_s", actuator="a.speed", above=7.1, max=0.9, min=1.0)
    with pytest.raises(ValueError, match=r"interlock actuator must be a string .*, got 5"):
        Interlock(sensor="a.vibration_mm_s", actuator=5, above=7.1, max=0.9)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"interlocks\[0\] must be an Interlock, got dict"):
        GuardConfig(interlocks=[{"sensor": "a.vibration_mm_s"}])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (GuardConfig(limits={"a.speed": [1.3, 1.4]}), "no value within its hard limits"),
        (GuardConfig(limits={"a.mode": [0.2, 0.8]}), r"no value .* \(a mode takes whole numbers\)"),
        (
            GuardConfig(interlocks=[Interlock(sensor="{station}.temp_c", actuator="{station}.speed", above=1, max=1)]),
            "interlock 'a.temp_c:a.speed' reads sensor 'a.temp_c', which line 'pair' lacks",
        ),
        (
            GuardConfig(limits={"*.speed": [0.6, 1.1]}, interlocks=[dataclasses.replace(VIBRATION, max=0.55)]),
            r"bounds 'a.speed' to \[-inf, 0.55\], outside its limits \[0.6, 1.1\]",
        ),
        (  # max 9 for 0.9: the limits hold 1.1 already, so the rule would never cut a setpoint
            GuardConfig(limits={"*.speed": [0.6, 1.1]}, interlocks=[dataclasses.replace(VIBRATION, max=9.0)]),
            r"interlock '\{station\}.vibration' bounds 'a.speed' to \[-inf, 9.0\], which its limits \[0.6, 1.1\] "
            "already hold: it can never cut a setpoint",
        ),
        (
            GuardConfig(rate_per_s={"*.speed": 0.0001}, deadband={"*.speed": 0.01}),
            r"rate_per_s for 'a.speed': at most 0.006 a control period, under its deadband 0.01",
        ),
        (GuardConfig(rate_per_s={"a.mode": 0.01}), "rate_per_s for 'a.mode': at most 0.6 a control period, under one"),
    ],
)
def test_a_config_that_contradicts_the_spec_is_refused(config, message):
    with pytest.raises(ValueError, match=message):
        Guard(SPEC, config)


def test_entries_for_actuators_the_spec_lacks_do_not_apply_but_a_rate_needs_a_period():
    pumps = Interlock(sensor="{station}.vibration_mm_s", actuator="{station}.pump", above=1.0, max=0.0)
    assert Guard(SPEC, GuardConfig(limits={"*.pump": [0, 1]}, interlocks=[pumps])).interlocks == ()
    with pytest.raises(ValueError, match=r"rate_per_s for 'a\.speed': line 'pair' has no control period"):
        Guard(dataclasses.replace(SPEC, control_period_s=None), GuardConfig(rate_per_s={"*.speed": 0.01}))


def test_entries_that_name_no_actuator_of_the_whole_line_are_listed():
    typos = GuardConfig(
        limits={"*.sped": [0.6, 1.1], "a.speed": [0.6, 1.1]},
        rate_per_s={"b.spead": 0.01},
        deadband={"*.speed": 0.01},
        interlocks=[
            VIBRATION,
            Interlock(sensor="{station}.vibration_mm_s", actuator="{station}.sped", above=7.0, max=0.9, name="v"),
        ],
    )
    typos = dataclasses.replace(typos, open_above=["*.vibration_mm_s", "*.queue_part"])
    assert unmatched_entries(typos, SPEC) == [
        "limits.*.sped",
        "rate_per_s.b.spead",
        "interlock 'v' (actuator '{station}.sped')",
        "open_above '*.queue_part' (a sensor pattern)",
    ]
    assert unmatched_entries(CONFIG, SPEC) == []


# --- GuardedLine --------------------------------------------------------------------------------


def test_guarded_line_writes_the_verdict_and_passes_dispatch_through():
    inner = RecordingLine()
    verdicts: list[Verdict] = []
    line = GuardedLine(inner, Guard(SPEC, CONFIG), on_verdict=verdicts.append)
    line.reset()
    line.write(Command(setpoints=np.array([1.15, 1.0, 2.0, 0.0]), dispatch=(Dispatch(0, 3),)))
    ((kind, sent),) = inner.calls
    assert kind == "write"
    assert sent is not None
    np.testing.assert_array_equal(sent.setpoints, [1.1, 1.0, 2.0, 0.0])
    assert sent.dispatch == (Dispatch(0, 3),)
    assert verdicts == [line.last_verdict]
    assert sent.bounds is not None  # for any line that rounds to a grid
    assert verdicts[0].bounds is not None
    for sent_bound, held in zip(sent.bounds, verdicts[0].bounds, strict=True):
        np.testing.assert_array_equal(sent_bound, held)
    assert line.info() == {
        "guard/checks": 1.0,
        "guard/interventions": 1.0,
        "guard/blocked": 0.0,
        "guard/clipped": 1.0,
        "guard/clamp:a.speed": 1.0,
    }


def test_a_blocked_write_sends_only_the_heartbeat_and_counts():
    inner = RecordingLine()
    line = GuardedLine(inner, Guard(SPEC, CONFIG))
    line.reset()
    inner.next_status = LineStatus(remote=False)
    line.write(Command(setpoints=np.array([1.0, 1.0, 2.0, 0.0]), dispatch=(Dispatch(0, 3),)))
    assert inner.calls == [("heartbeat", None)]
    assert line.last_verdict is not None
    assert line.last_verdict.kind == "block"
    assert line.info()["guard/blocked"] == 1.0
    assert line.info()["guard/gate:remote_off"] == 1.0
    line.reset()
    assert line.info() == {"guard/checks": 0.0, "guard/interventions": 0.0, "guard/blocked": 0.0, "guard/clipped": 0.0}
    assert line.last_verdict is None


def test_a_line_without_a_controller_gets_nothing_when_blocked_and_is_not_supervised():
    inner = PlainLine()
    inner.next_frame = frame((NAN, 2.0, 2.0, 50.0))
    line = GuardedLine(inner, Guard(SPEC, CONFIG))
    assert not isinstance(line, Supervised)
    line.reset()
    line.write(Command(setpoints=np.array([1.0, 1.0, 2.0, 0.0])))
    assert inner.calls == []
    supervised = GuardedLine(RecordingLine(), Guard(SPEC, CONFIG))
    assert isinstance(supervised, Supervised)
    assert isinstance(supervised, GuardedLine)
    assert supervised.status() == LineStatus()


def test_guarded_line_checks_on_the_last_frame_with_its_observation_and_clock():
    inner = RecordingLine()
    stats = OodStats(mean=np.array(HEALTHY), std=np.ones(4))
    line = GuardedLine(inner, Guard(SPEC, CONFIG, ood=stats), observe=lambda f: f.values, clock=lambda: 5.0)
    with pytest.raises(RuntimeError, match="call reset"):
        line.write(Command())
    line.reset()
    line.write(Command())  # no setpoints: every actuator kept
    assert line.last_verdict is not None
    assert line.last_verdict.kind == "pass"
    inner.next_frame = frame((3.0, 9.0, 2.0, 50.0), time_s=660.0, seq=2)  # 7 std devs: 1 of 4 features beyond
    assert line.advance(60.0) is inner.next_frame
    line.write(Command())
    assert line.last_verdict.ood
    inner.next_status = LineStatus(read_at_s=2.0)
    assert line.read() is inner.next_frame
    line.write(Command())
    assert line.last_verdict.reasons == ("gate:stale_status", "gate:ood")  # now 5 s, read at 2 s
    line.close()
    assert inner.closed


def test_the_verdict_is_reported_when_the_write_fails():
    class Failing(RecordingLine):
        def write(self, command: Command) -> None:
            raise ConnectionError("PLC gone")

    verdicts: list[Verdict] = []
    line = GuardedLine(Failing(), Guard(SPEC, CONFIG), on_verdict=verdicts.append)
    line.reset()
    with pytest.raises(ConnectionError, match="PLC gone"):
        line.write(Command(setpoints=np.array([1.0, 1.0, 2.0, 0.0])))
    assert len(verdicts) == 1
    assert verdicts[0].allowed


def test_the_guard_must_be_built_on_the_lines_spec():
    with pytest.raises(ValueError, match="built on line 'other'"):
        GuardedLine(RecordingLine(), Guard(dataclasses.replace(SPEC, name="other"), CONFIG))


def test_a_keep_of_a_setpoint_a_tripped_interlock_forbids_moves_it_into_the_bound():
    """Vibration tripped, the policy proposing keep (NaN): the line stayed at 1.1, no reason given."""
    guard = Guard(SPEC, dataclasses.replace(STEADY, rate_per_s={"*.speed": 0.005}))
    hot = frame((3.0, 9.0, 2.0, 50.0))  # a.vibration 9 mm/s: a.speed at most 0.9
    runs = LineStatus(active=np.array([1.1, 1.0, 2.0, 0.0]))
    v = check(guard, [NAN, NAN, NAN, NAN], fr=hot, status=runs)
    assert_out(v, [0.9, NAN, NAN, NAN])  # the bounds beat the rate
    assert v.reasons == ("interlock:a.vibration",)
    unknown = LineStatus(active=np.array([NAN, 1.0, 2.0, 0.0]))  # what a runs is not known: nothing invented
    assert_out(check(Guard(SPEC, STEADY), [NAN, NAN, NAN, NAN], fr=hot, status=unknown), [NAN, NAN, NAN, NAN])


@pytest.mark.parametrize("readback", [7.0, -1.0])
def test_a_keep_of_a_maintenance_request_read_back_out_of_range_fires_no_maintenance(readback):
    """A PLC reporting a.maintain = 7 (outside [0, 1]): the keep went out as 1.0, a maintenance nobody asked for."""
    runs = LineStatus(active=np.array([1.0, 1.0, 2.0, readback]))
    v = check(Guard(SPEC, STEADY), [NAN, NAN, NAN, NAN], status=runs)
    assert_out(v, [NAN, NAN, NAN, NAN])
    assert v.reasons == ()
    v = check(Guard(SPEC, STEADY), [NAN, NAN, NAN, 0.0], status=runs)  # a proposal of it still goes out, clamped
    assert_out(v, [NAN, NAN, NAN, 0.0])


def test_a_keep_of_a_reorder_read_back_above_the_guard_s_limit_places_no_order():
    """Orders limited to 300 units, the PLC's last order 500: the keep went out as an order of 300."""
    reorder = ActuatorSpec("line.reorder_units", "units", 0.0, 1000.0, 0.0, Lever.REORDER)
    spec = dataclasses.replace(SPEC, actuators=(*SPEC.actuators, reorder), levers=SPEC.levers | {Lever.REORDER})
    guard = Guard(spec, dataclasses.replace(STEADY, limits={"line.reorder_units": [0.0, 300.0]}))
    runs = LineStatus(active=np.array([1.0, 1.0, 2.0, 0.0, 500.0]))
    assert_out(check(guard, [NAN] * 5, status=runs), [NAN] * 5)
    assert_out(check(guard, [NAN, NAN, NAN, NAN, 450.0], status=runs), [NAN, NAN, NAN, NAN, 300.0])


def test_times_ahead_of_now_are_not_fresh():
    """Stamps far ahead of the frame, and a status read an hour in the future, passed the age gates."""
    guard = Guard(SPEC, STEADY)
    assert check(guard, [1.0, NAN, NAN, NAN], fr=frame(time_s=600.0, stamps=[1e6] * 4)).reasons[0] == "gate:stale_data"
    aged = Guard(SPEC, dataclasses.replace(STEADY, max_status_age_s=2.0))
    v = check(aged, [1.0, NAN, NAN, NAN], status=LineStatus(read_at_s=NOW + 3600.0))
    assert v.reasons == ("gate:stale_status",)
    beat = Guard(SPEC, dataclasses.replace(STEADY, heartbeat_timeout_s=2.0))
    assert check(beat, [1.0, NAN, NAN, NAN], status=LineStatus(heartbeat=7), now=NOW).setpoints is not None
    assert check(beat, [1.0, NAN, NAN, NAN], status=LineStatus(heartbeat=7), now=NOW + 3.0).setpoints is None
    v = check(beat, [1.0, NAN, NAN, NAN], status=LineStatus(heartbeat=7), now=NOW - 100.0)  # our clock set back
    assert v.reasons == ("gate:heartbeat_frozen",)  # it reopened: the heartbeat had not moved
    assert check(beat, [1.0, NAN, NAN, NAN], status=LineStatus(heartbeat=8), now=NOW - 99.0).setpoints is not None


@pytest.mark.parametrize("field", ["rate_per_s", "deadband"])
def test_a_rate_or_deadband_only_maintenance_requests_match_is_refused_not_dropped(field):
    with pytest.raises(ValueError, match=rf"{field}\.a\.maintain: \['a\.maintain'\] are maintenance requests"):
        Guard(SPEC, GuardConfig(**{field: {"a.maintain": 0.5}}))
    Guard(SPEC, GuardConfig(**{field: {"*": 0.5}}))  # a pattern over every lever still applies where it can
