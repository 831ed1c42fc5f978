"""What the agent can do to the twin: dispatch, speed, mode, maintenance, reorders, and ticks."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from hardware import Command, DecisionKind, Dispatch, Lever
from hardware.twin import State, TwinLine
from tests.lines import POWER_KW, deterministic_shop, edited, energy_kwh

ALPHA = 1e-3  # false-alarm probability of each statistical assertion


def setpoints(line: TwinLine, **by_name: float) -> Command:
    """A command that sets the named actuators and keeps the rest."""
    values = np.full(len(line.spec.actuators), np.nan)
    for name, value in by_name.items():
        values[line.spec.actuator_index(name.replace("__", "."))] = value
    return Command(setpoints=values)


def three_job_shop(levers: list[str]) -> TwinLine:
    variants = [
        {"name": "J0", "route": ["m0", "m1"], "processing_time_s": [3.0, 2.0]},
        {"name": "J1", "route": ["m1", "m0"], "processing_time_s": [4.0, 1.0]},
        {"name": "J2", "route": ["m0", "m1"], "processing_time_s": [2.0, 3.0]},
    ]
    definition = deterministic_shop([("J0", 0.0), ("J1", 0.0), ("J2", 0.0)], variants)
    definition["control"] = {"levers": levers, "control_period_s": 60.0}
    return TwinLine.from_config(seed=0, **definition)


def test_dispatch_decisions_reach_the_agent_and_shape_the_schedule():
    line = three_job_shop(["dispatch"])
    frame = line.reset()
    assert {(d.station, d.jobs) for d in frame.pending} == {(0, (0, 2)), (1, (1,))}
    line.write(Command(dispatch=(Dispatch(0, 2), Dispatch(1, 1))))  # SPT on m0 instead of FIFO
    assert line.read().pending == ()
    while line.read().kpis.good_parts < 3:
        frame = line.advance(100.0)
        for d in frame.pending:
            line.write(Command(dispatch=(Dispatch(d.station, d.jobs[0]),)))
    # m0: J2 0-2, J0 2-5, J1 5-6; m1: J1 0-4, J2 4-7, J0 7-9
    assert line.read().kpis.last_completion_s == pytest.approx(9.0)
    assert line.read().kpis.flow_time_mean_s == pytest.approx((9.0 + 6.0 + 7.0) / 3)


def test_advance_stops_at_each_new_dispatch_decision():
    line = three_job_shop(["dispatch"])
    line.reset()
    line.write(Command(dispatch=(Dispatch(0, 0), Dispatch(1, 1))))
    frame = line.advance(100.0)
    assert frame.time == pytest.approx(3.0)  # J0 leaves m0: m0 is free with J2 waiting
    assert [(d.kind, d.station, d.jobs) for d in frame.pending] == [(DecisionKind.DISPATCH, 0, (2,))]


def test_waiting_is_allowed_and_the_decision_is_offered_again():
    line = three_job_shop(["dispatch"])
    line.reset()
    line.write(Command(dispatch=(Dispatch(1, 1),)))  # leave m0 idle on purpose
    frame = line.advance(100.0)
    assert frame.time == pytest.approx(4.0)  # the next event: J1 finishes on m1
    assert 0 in {d.station for d in frame.pending}


@pytest.mark.parametrize(
    ("dispatch", "message"),
    [
        (Dispatch(0, 1), "job 1 does not wait at station 'm0'"),
        (Dispatch(7, 0), "no station 7"),
        (Dispatch(2, 0), "station 'm2' is not free"),
    ],
)
def test_invalid_dispatch_is_refused(dispatch, message):
    line = three_job_shop(["dispatch"])
    line.reset()
    with pytest.raises(ValueError, match=message):
        line.write(Command(dispatch=(dispatch,)))


@pytest.mark.parametrize(
    ("levers", "setpoint", "dispatch", "message"),
    [
        (["dispatch"], {}, (Dispatch(0, 2), Dispatch(1, 0)), "job 0 does not wait at station 'm1'"),
        (["dispatch"], {}, (Dispatch(0, 2), Dispatch(0, 0)), "station 'm0' is dispatched twice"),
        (["dispatch", "maintenance"], {"m1__maintain": 1.0}, (Dispatch(1, 1),), "this command requests its maint"),
        (["dispatch", "mode"], {"m0__mode": 1.0}, (Dispatch(1, 1), Dispatch(0, 0)), "sets its mode to standby"),
    ],
)
def test_a_refused_write_changes_nothing(levers, setpoint, dispatch, message):
    line = three_job_shop(levers)
    before = line.reset()
    values = setpoints(line, **setpoint).setpoints if setpoint else None
    with pytest.raises(ValueError, match=message):
        line.write(Command(setpoints=values, dispatch=dispatch))
    after = line.read()
    assert after.pending == before.pending, "no dispatch and no setpoint of the command took effect"
    np.testing.assert_array_equal(after.values, before.values)
    line.write(Command(dispatch=(Dispatch(0, 0), Dispatch(1, 1))))  # the stations are still free
    assert line.read().pending == ()


def test_dispatch_without_the_lever_is_refused():
    line = three_job_shop([])
    line.reset()
    with pytest.raises(ValueError, match="does not give the dispatch lever"):
        line.write(Command(dispatch=(Dispatch(0, 0),)))


def test_ticks_arrive_every_control_period(flow5_definition):
    line = TwinLine.from_config(seed=0, **edited(flow5_definition, "control.levers", ["speed"]))
    assert line.spec.control_period_s == 60.0
    assert {a.lever for a in line.spec.actuators} == {Lever.SPEED}
    line.reset()
    frame = line.advance(1000.0)
    assert frame.time == pytest.approx(60.0)
    assert frame.pending[-1].kind is DecisionKind.TICK
    assert line.advance(25.0).pending == ()
    assert line.advance(1000.0).time == pytest.approx(120.0)


def test_setpoint_outside_hard_limits_is_refused(flow5_definition):
    line = TwinLine.from_config(seed=0, **edited(flow5_definition, "control.levers", ["speed"]))
    line.reset()
    with pytest.raises(ValueError, match=r"press\.speed = 1\.3 is outside its limits \[0\.5, 1\.15\]"):
        line.write(setpoints(line, press__speed=1.3))


def test_faster_speed_makes_more_draws_more_power_wears_more_and_scraps_more(flow5_definition):
    definition = edited(flow5_definition, "control.levers", ["speed"])
    definition["demand"]["arrival_rate_per_h"] = 200.0  # saturate the line so speed sets the pace
    for machine in definition["machines"].values():  # no renewals, so every unit of health lost stays lost
        machine.update(failure_rate_base_per_h=0.0, failure_rate_wear_per_h=0.0)
    results = {}
    for speed in (0.6, 1.1):
        line = TwinLine.from_config(seed=3, **definition)
        frame = line.reset()
        line.write(Command(setpoints=np.full(len(line.spec.actuators), speed)))
        while frame.time < 86400.0:
            frame = line.advance(86400.0 - frame.time)
        k = frame.kpis
        assert k.energy_kwh == pytest.approx(energy_kwh(definition, line.state_times(), speed), rel=1e-9)
        assert k.health_consumed == pytest.approx((1.0 - line.health()).sum(), rel=1e-9)
        results[speed] = k
    slow, fast = results[0.6], results[1.1]
    # more output, but never more than the speed ratio: changeovers and scrap do not speed up
    assert 1.5 < fast.good_parts / slow.good_parts <= 1.1 / 0.6
    assert fast.energy_kwh > 1.5 * slow.energy_kwh  # the same day, busy power ~ speed^2
    assert fast.health_consumed > 2.0 * slow.health_consumed  # wear per busy hour ~ speed^2, and more busy hours
    fisher = stats.fisher_exact(
        [[fast.scrap_parts, fast.jobs_done - fast.scrap_parts], [slow.scrap_parts, slow.jobs_done - slow.scrap_parts]],
        alternative="greater",
    )
    assert fisher.pvalue < ALPHA, (fast.scrap_parts, fast.jobs_done, slow.scrap_parts, slow.jobs_done)


@pytest.mark.parametrize("speed", [0.7, 1.0, 1.2])
def test_energy_and_wear_of_a_batch_by_hand(speed):
    jobs, step_s = 10, 100.0
    definition = deterministic_shop(
        [("A", 0.0)] * jobs, [{"name": "A", "route": ["m0"], "processing_time_s": [step_s]}]
    )
    definition["machines"]["m"].update(busy_power_speed_exponent=2.0, wear_per_busy_h=0.01, wear_speed_exponent=2.0)
    definition["control"] = {"levers": ["speed"], "control_period_s": 3600.0}
    line = TwinLine.from_config(seed=0, **definition)
    frame = line.reset()
    line.write(Command(setpoints=np.full(len(line.spec.actuators), speed)))
    while frame.kpis.good_parts < jobs:
        frame = line.advance(3600.0)
    makespan_s = jobs * step_s / speed
    assert frame.time == pytest.approx(makespan_s, rel=1e-12)
    busy_kw, idle_kw = POWER_KW["busy"] * speed**2, POWER_KW["idle"]  # m0 works throughout, m1-m3 idle
    assert frame.kpis.energy_kwh == pytest.approx((busy_kw + 3 * idle_kw) * makespan_s / 3600.0, rel=1e-9)
    wear = 0.01 * speed**2 * makespan_s / 3600.0
    assert frame.kpis.health_consumed == pytest.approx(wear, rel=1e-9)
    assert line.health()[0] == pytest.approx(1.0 - wear, rel=1e-12)
    assert (line.health()[1:] == 1.0).all()


def test_mode_standby_and_off_draw_their_power_and_warm_up(flow5_definition):
    definition = edited(flow5_definition, "control.levers", ["mode"])
    line = TwinLine.from_config(seed=0, **definition)
    line.reset()
    line.write(setpoints(line, weld__mode=1.0, paint__mode=0.0))
    line.advance(60.0)
    line.advance(60.0)
    times = line.state_times()
    assert times[2, State.STANDBY] > 0
    assert times[3, State.OFF] > 0
    line.write(setpoints(line, weld__mode=2.0, paint__mode=2.0))
    for _ in range(30):  # 30 min: weld warms up from standby in 20 s, paint from off in 300 s
        frame = line.advance(60.0)
    times = line.state_times()
    assert times[2, State.WARMUP] == pytest.approx(definition["machines"]["robot"]["warmup_from_standby_s"])
    assert times[3, State.WARMUP] == pytest.approx(definition["machines"]["robot"]["warmup_from_off_s"])
    assert frame.kpis.energy_kwh == pytest.approx(energy_kwh(definition, times), rel=1e-9)
    on = TwinLine.from_config(seed=0, **definition)  # the same line left running: the rest saved energy
    running = on.reset()
    while running.time < frame.time:
        running = on.advance(frame.time - running.time)
    assert running.kpis.energy_kwh > frame.kpis.energy_kwh
    with pytest.raises(ValueError, match="mode is 0"):
        line.write(setpoints(line, weld__mode=1.5))


def test_a_cold_machine_cannot_skip_its_warm_up_through_standby(flow5_definition):
    line = TwinLine.from_config(seed=0, **edited(flow5_definition, "control.levers", ["mode"]))
    line.reset()
    line.write(setpoints(line, cut__mode=0.0))
    line.advance(60.0)
    line.write(setpoints(line, cut__mode=1.0))
    line.advance(60.0)
    line.write(setpoints(line, cut__mode=2.0))
    for _ in range(40):
        line.advance(60.0)
    cold_start_s = flow5_definition["machines"]["cnc"]["warmup_from_off_s"]
    assert line.state_times()[0, State.WARMUP] == pytest.approx(cold_start_s)


@pytest.mark.parametrize(
    ("resting", "stop", "rests_in", "warmup_s"),
    [
        (0.0, "off", State.OFF, 60.0),  # 60 s of a 1,200 s cold start
        (0.0, "estop", State.OFF, 60.0),
        (0.0, "standby", State.STANDBY, 1110.0),  # standby needs the cold part of the start: it goes on
        (1.0, "standby", State.STANDBY, 60.0),  # 60 s of the 90 s from standby
    ],
)
def test_a_machine_told_to_rest_while_it_warms_up_stops_warming_at_once(
    flow5_definition, resting, stop, rests_in, warmup_s
):
    """Switched off 60 s into its 1,200 s cold start, cut warmed (and drew warm-up power) for the other 1,140 s."""
    definition = edited(flow5_definition, "control.levers", ["mode"])
    line = TwinLine.from_config(seed=0, **definition)
    line.reset()
    line.write(setpoints(line, cut__mode=resting))
    for _ in range(30):
        line.advance(60.0)
    before = line.state_times()[0, State.WARMUP]
    line.write(setpoints(line, cut__mode=2.0))
    line.advance(60.0)
    if stop == "estop":
        line.halt(True)
    else:
        line.write(setpoints(line, cut__mode=0.0 if stop == "off" else 1.0))
    for _ in range(30):
        frame = line.advance(60.0)
    times = line.state_times()
    assert times[0, State.WARMUP] - before == pytest.approx(warmup_s)
    assert frame.values[line.spec.sensor_index("cut.state")] == rests_in
    assert frame.kpis.energy_kwh == pytest.approx(energy_kwh(definition, times), rel=1e-9)


def test_a_warm_up_nothing_cancels_ends_in_its_place_before_the_tick_at_its_end(flow5_definition):
    """Made cancellable, a warm-up ended one scheduling step late: a tick at its end still read WARMUP."""
    definition = edited(
        edited(flow5_definition, "control.levers", ["mode"]), "machines.cnc.warmup_from_standby_s", 120.0
    )
    line = TwinLine.from_config(seed=1, **definition)
    line.reset()
    line.write(setpoints(line, cut__mode=1.0))
    for _ in range(10):
        line.advance(60.0)
    line.write(setpoints(line, cut__mode=2.0))
    line.advance(60.0)
    frame = line.advance(60.0)  # the tick at the end of the 120 s warm-up
    assert frame.values[line.spec.sensor_index("cut.state")] == State.BUSY
    assert line.state_times()[0, State.WARMUP] == pytest.approx(120.0)


def test_a_mode_set_back_to_run_in_the_same_instant_leaves_the_warm_up_as_it_was(flow5_definition):
    definition = edited(flow5_definition, "control.levers", ["mode"])
    line = TwinLine.from_config(seed=0, **definition)
    line.reset()
    line.write(setpoints(line, cut__mode=0.0))
    line.advance(60.0)
    line.write(setpoints(line, cut__mode=2.0))
    line.advance(60.0)
    line.write(setpoints(line, cut__mode=1.0))
    line.write(setpoints(line, cut__mode=2.0))  # before the standby took effect
    for _ in range(30):
        line.advance(60.0)
    assert line.state_times()[0, State.WARMUP] == pytest.approx(1200.0)  # the whole cold start, once


def test_preventive_maintenance_renews_the_station_asked_and_only_it(flow5_definition):
    line = TwinLine.from_config(seed=0, **edited(flow5_definition, "control.levers", ["maintenance"]))
    frame = line.reset()
    while frame.time < 2 * 86400.0:
        frame = line.advance(2 * 86400.0 - frame.time)
    worn = line.health()
    assert (worn < 0.95).all()
    line.write(setpoints(line, press__maintain=1.0))
    for _ in range(60):
        frame = line.advance(60.0)
    k = frame.kpis
    assert k.preventive_maintenances == 1
    since = frame.values[line.spec.sensor_index("press.since_maintenance_h")]
    assert 0.0 < since < 1.0
    # renewed to 1.0, then worn for at most `since` busy hours at nominal speed and the heaviest load
    press = flow5_definition["machines"]["press"]
    assert 1.0 - press["wear_per_busy_h"] * 1.2 * since <= line.health()[1] < 1.0
    others = [0, 2, 3, 4]
    assert (line.health()[others] <= worn[others]).all(), "maintenance of the press renews no other station"
    assert k.planned_downtime_s == pytest.approx(line.state_times()[1, State.MAINTENANCE], rel=1e-12)
    assert line.state_times()[others, State.MAINTENANCE].sum() == 0.0


def test_reorder_lever_places_orders_and_the_rule_stands_down(flow5_definition):
    line = TwinLine.from_config(seed=0, **edited(flow5_definition, "control.levers", ["reorder"]))
    line.reset()
    line.write(setpoints(line, line__reorder_units=300.0))
    frame = line.read()
    while frame.time < 3 * 86400.0:
        frame = line.advance(3 * 86400.0 - frame.time)
    k = frame.kpis
    assert k.material_ordered == 300.0  # the fixed reorder point no longer orders by itself
    assert k.stockouts > 0  # 2000 + 300 units do not last three days


def one_station_short_of_material() -> dict:
    """One failure-free station whose store runs dry after two jobs; the order it places waits out an outage.

    The supplier is out for the first hour; the order (50 units, 600 s lead time) arrives at 4,200 s.
    """
    machine = {"failure_rate_base_per_h": 0.0, "failure_rate_wear_per_h": 0.0, "scrap_probability": 0.0,
               "processing_time_distribution": "deterministic", "warmup_from_off_s": 600.0,
               "maintenance_time_mean_s": 1800.0, "maintenance_time_cv": 0.0}  # fmt: skip
    return {
        "name": "one", "layout": "flow", "machines": {"m": machine}, "stations": [{"name": "s", "machine": "m"}],
        "variants": [{"name": "A", "processing_time_s": [100.0]}], "demand": {"arrival_rate_per_h": 360.0},
        "supply": {"initial_stock_units": 2.0, "reorder_point_units": 0.0, "order_quantity_units": 50.0,
                   "lead_time_mean_s": 600.0, "lead_time_cv": 0.0, "outage_rate_per_day": 0.0},
        "scenarios": [{"kind": "supplier_outage", "start_s": 0.0, "duration_s": 3600.0}],
        "control": {"levers": ["mode", "maintenance"], "control_period_s": 60.0},
    }  # fmt: skip


def run_to(line: TwinLine, t: float) -> float:
    """Advance to line time `t`; the stockout time so far, s."""
    frame = line.read()
    while frame.time < t:
        frame = line.advance(t - frame.time)
    return frame.kpis.stockout_time_s


@pytest.mark.parametrize("rest", ["off", "standby", "maintenance"])
def test_a_stockout_stops_counting_while_the_station_rests_or_is_maintained(rest):
    line = TwinLine.from_config(seed=0, **one_station_short_of_material())
    line.reset()
    waited = run_to(line, 1000.0)
    assert 0.0 < waited < 1000.0
    order = {"off": {"s__mode": 0.0}, "standby": {"s__mode": 1.0}, "maintenance": {"s__maintain": 1.0}}[rest]
    line.write(setpoints(line, **order))
    assert run_to(line, 2800.0) == pytest.approx(waited, abs=1e-9)  # resting or maintained: waiting for nothing
    after = run_to(line, 8000.0)  # the delivery came at 4,200 s
    line.write(setpoints(line, s__mode=2.0))
    assert run_to(line, 9000.0) == pytest.approx(after, abs=1e-9)
    if rest == "maintenance":  # back from maintenance at 2,800 s, it waits again until the delivery at 4,200 s
        assert after == pytest.approx(waited + 4200.0 - 2800.0, abs=1e-6)
        assert line.read().kpis.stockouts == 2
    else:
        assert after == pytest.approx(waited, abs=1e-9)
        assert line.read().kpis.stockouts == 1


@pytest.mark.parametrize(("mode", "warmup"), [(0.0, "warmup_from_off_s"), (1.0, "warmup_from_standby_s")])
def test_a_machine_maintained_from_off_or_standby_warms_up_before_it_runs(flow5_definition, mode, warmup):
    definition = edited(flow5_definition, "control.levers", ["mode", "maintenance"])
    line = TwinLine.from_config(seed=0, **definition)
    line.reset()
    line.write(setpoints(line, cut__mode=mode))
    run_to(line, 1800.0)
    line.write(setpoints(line, cut__maintain=1.0))
    run_to(line, 1860.0)
    line.write(setpoints(line, cut__mode=2.0))  # while maintained
    run_to(line, 3 * 3600.0)
    times = line.state_times()[0]
    assert times[State.MAINTENANCE] > 0
    assert times[State.WARMUP] == pytest.approx(flow5_definition["machines"]["cnc"][warmup])


@pytest.mark.parametrize(
    ("stop", "warmed_s", "warmup_s"),
    [
        ("off", 60.0, 60.0 + 1200.0),  # 60 s of the cold start, cancelled; after maintenance the whole of it
        ("standby", 1140.0, 1140.0 + 90.0),  # past the cold part (1,110 s): after maintenance the 90 s from standby
    ],
)
def test_a_machine_whose_warm_up_is_cancelled_as_maintenance_starts_comes_out_as_cold_as_it_rests(
    flow5_definition, stop, warmed_s, warmup_s
):
    """Maintained with its warm-up cancelled, cut came out IDLE (warm) and ran at once when told to."""
    definition = edited(flow5_definition, "control.levers", ["mode", "maintenance"])
    line = TwinLine.from_config(seed=0, **definition)
    line.reset()
    line.write(setpoints(line, cut__mode=0.0))
    run_to(line, 1800.0)
    line.write(setpoints(line, cut__mode=2.0))  # a 1,200 s cold start
    run_to(line, 1800.0 + warmed_s)
    line.write(setpoints(line, cut__mode=0.0 if stop == "off" else 1.0, cut__maintain=1.0))
    run_to(line, 1860.0 + warmed_s)
    assert line.read().values[line.spec.sensor_index("cut.state")] == State.MAINTENANCE
    line.write(setpoints(line, cut__mode=2.0))  # while maintained
    run_to(line, 5 * 3600.0)
    times = line.state_times()[0]
    assert times[State.WARMUP] == pytest.approx(warmup_s)


def test_the_reorder_rule_orders_at_once_when_the_line_takes_reorders_back(flow5_definition):
    definition = edited(flow5_definition, "control.levers", ["reorder"])
    definition["supply"] = {**definition["supply"], "initial_stock_units": 900.0, "outage_rate_per_day": 0.0}
    line = TwinLine.from_config(seed=0, **definition)
    line.reset()
    run_to(line, 30 * 3600.0)  # the agent orders nothing: the store runs dry
    dry = line.read().kpis
    assert dry.orders_placed == 0
    assert dry.stockouts > 0
    line.local_control(True)  # a PLC's power-up or watchdog: the line's own rules take over
    assert line.read().kpis.orders_placed == 1
    run_to(line, 40 * 3600.0)
    assert line.read().kpis.good_parts > dry.good_parts


@pytest.mark.parametrize(("levers", "orders"), [(["reorder"], 0), (["speed"], 1)])
def test_a_cold_start_below_the_reorder_point_orders_only_for_the_lines_own_rule(flow5_definition, levers, orders):
    definition = edited(flow5_definition, "control.levers", levers)
    definition["supply"] = {**definition["supply"], "initial_stock_units": 500.0}
    definition["start"] = {"mode": "cold"}
    kpis = TwinLine.from_config(seed=0, **definition).reset().kpis
    assert kpis.orders_placed == orders
    assert kpis.material_ordered == orders * definition["supply"]["order_quantity_units"]


def test_the_reorder_rule_orders_for_a_store_short_of_one_jobs_material(flow5_definition):
    definition = edited(flow5_definition, "control.levers", ["speed"])
    definition["variants"] = [{**v, "material_units": 1.5} for v in definition["variants"]]
    definition["supply"] = {**definition["supply"], "initial_stock_units": 2.0, "reorder_point_units": 0.0,
                            "order_quantity_units": 50.0, "outage_rate_per_day": 0.0}  # fmt: skip
    line = TwinLine.from_config(seed=0, **definition)
    line.reset()
    run_to(line, 86400.0)  # 0.5 units left after the first job: above s, below a job's 1.5
    kpis = line.read().kpis
    assert kpis.orders_placed >= 1
    assert kpis.good_parts > 1


def test_orders_of_uneven_sizes_leave_nothing_on_order_once_delivered(flow5_definition):
    """0.1 + 0.2 + 0.3 units ordered and delivered left 1.1e-16 on order, and the short-store rule never fired."""
    definition = edited(flow5_definition, "control.levers", ["reorder"])
    definition["supply"] = {**definition["supply"], "initial_stock_units": 1.1, "reorder_point_units": 0.0,
                            "order_quantity_units": 50.0, "outage_rate_per_day": 0.0, "lead_time_cv": 0.0}  # fmt: skip
    line = TwinLine.from_config(seed=0, **definition)
    line.reset()
    for units in (0.1, 0.2, 0.3):
        line.write(setpoints(line, line__reorder_units=units))
        line.advance(60.0)
    run_to(line, 2 * 86400.0)
    assert line.read().values[line.spec.sensor_index("line.on_order_units")] == 0.0
    line.local_control(True)  # the line's own rule: the store is short of a job's material, nothing on order
    run_to(line, 3 * 86400.0)
    assert line.read().kpis.orders_placed > 3  # the rule ordered for itself
