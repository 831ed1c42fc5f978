"""Buffers, sensors, supply and scenarios behave as a line engineer would expect.

Statistical checks are exact tests from `scipy.stats` at a stated false-alarm probability
`ALPHA` (the seeds are fixed, so a pass is reproducible; the level says how surprising a
failure would be if the twin were right).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from hardware.twin import State, TwinLine
from tests.lines import FLOW5, RELIABLE, edited, single_station

ALPHA = 1e-3  # false-alarm probability of each statistical assertion
HOLDING = (State.BUSY, State.BLOCKED, State.CHANGEOVER, State.DOWN)  # a station in these states holds one part


def run(line: TwinLine, until_s: float, dt: float = 600.0) -> list:
    frames = [line.reset()]
    while frames[-1].time < until_s:
        frames.append(line.advance(min(dt, until_s - frames[-1].time)))
    return frames


def two_sided_poisson_p(count: int, mean: float) -> float:
    """Two-sided p-value of `count` under Poisson(`mean`)."""
    return float(min(1.0, 2.0 * min(stats.poisson.cdf(count, mean), stats.poisson.sf(count - 1, mean))))


def test_finite_buffers_block_upstream_and_starve_downstream():
    definition = {
        "name": "bottleneck",
        "layout": "flow",
        "machines": {"m": RELIABLE},
        "stations": [
            {"name": "fast", "machine": "m"},
            {"name": "slow", "machine": "m", "buffer_capacity_parts": 3},
            {"name": "after", "machine": "m", "buffer_capacity_parts": 3},
        ],
        "variants": [{"name": "A", "processing_time_s": [30.0, 60.0, 30.0]}],
        "demand": {"arrival_rate_per_h": 100.0},  # more than the 60/h the slow station can do
    }
    line = TwinLine.from_config(seed=0, **definition)
    frames = run(line, 2 * 86400.0, dt=120.0)
    for name in ("slow", "after"):
        queue = [f.values[line.spec.sensor_index(f"{name}.queue_parts")] for f in frames]
        assert max(queue) <= 3, f"{name}'s buffer holds 3 parts"
    assert max(f.values[line.spec.sensor_index("slow.queue_parts")] for f in frames) == 3
    share = line.state_times() / frames[-1].time
    # slow never starves, so the line makes 60 parts/h; fast works 30 s of each 60 and waits for space
    assert share[1, State.BUSY] > 0.99
    assert frames[-1].kpis.throughput_per_h == pytest.approx(60.0, rel=0.01)
    assert share[0, State.BUSY] == pytest.approx(0.5, abs=0.01)
    assert share[0, State.BLOCKED] == pytest.approx(0.5, abs=0.01)
    assert share[2, State.IDLE] == pytest.approx(0.5, abs=0.01)  # after starves behind slow
    assert share[2, State.BLOCKED] == 0.0  # the last station hands its parts out of the line


def test_new_orders_wait_in_the_backlog_for_a_place_in_their_first_buffer():
    definition = {
        "name": "finite_first_buffer",
        "layout": "flow",
        "machines": {"m": RELIABLE},
        "stations": [{"name": "first", "machine": "m", "buffer_capacity_parts": 3}],
        "variants": [{"name": "A", "processing_time_s": [60.0]}],
        "demand": {"arrival_rate_per_h": 120.0},  # twice what the station makes
    }
    line = TwinLine.from_config(seed=0, **definition)
    frames = run(line, 86400.0, dt=300.0)
    queue = line.spec.sensor_index("first.queue_parts")
    assert max(f.values[queue] for f in frames) == 3 == line.spec.sensors[queue].high
    k = frames[-1].kpis
    assert k.wip_parts == k.jobs_released - k.jobs_done > 100, "the orders without a place wait, counted in WIP"


def test_orders_entering_mid_line_wait_their_turn_with_the_stations_upstream():
    definition = {
        "name": "mid_entry",
        "layout": "flow",
        "machines": {"m": {**RELIABLE, "processing_time_distribution": "deterministic"}},
        "stations": [{"name": "a", "machine": "m"}, {"name": "b", "machine": "m", "buffer_capacity_parts": 2}],
        "variants": [
            {"name": "X", "processing_time_s": [30.0, 60.0]},
            {"name": "Y", "route": ["b"], "processing_time_s": [60.0]},  # enters at b, past a
        ],
        "demand": {"arrival_rate_per_h": 50.0},  # b makes 60/h
    }
    line = TwinLine.from_config(seed=0, **definition)
    frames = run(line, 86400.0, dt=300.0)
    queue = line.spec.sensor_index("b.queue_parts")
    assert max(f.values[queue] for f in frames) == 2, "Y's orders do not jump into b's full buffer"
    x_parts = line.state_times()[0, State.BUSY] / 30.0
    assert x_parts == pytest.approx(frames[-1].kpis.good_parts / 2, rel=0.1), "a is not starved by Y's orders"


def test_a_place_freed_for_a_blocked_station_is_not_taken_by_a_part_handed_on_in_the_same_instant():
    definition = {
        "name": "merge",
        "layout": "flow",
        "machines": {"m": {**RELIABLE, "processing_time_distribution": "deterministic"}},
        "stations": [
            {"name": "a", "machine": "m"},
            {"name": "b", "machine": "m"},
            {"name": "c", "machine": "m", "buffer_capacity_parts": 1},
        ],
        "variants": [
            {"name": "Z", "route": ["c"], "processing_time_s": [100.0]},
            {"name": "Y", "route": ["b", "c"], "processing_time_s": [10.0, 100.0]},
            {"name": "X", "route": ["a", "c"], "processing_time_s": [90.0, 100.0]},
        ],
        # c works 0-100 with a second Z in its buffer; b blocks at 10; a finishes as c takes that Z, at 100
        "demand": {"jobs": [{"variant": "Z"}, {"variant": "Z"}, {"variant": "Y"}, {"variant": "X", "release_s": 10.0}]},
    }
    line = TwinLine.from_config(seed=0, **definition)
    line.reset()
    frame = line.advance(150.0)
    states = [State(int(frame.values[line.spec.sensor_index(f"{s}.state")])) for s in "abc"]
    assert states == [State.BLOCKED, State.IDLE, State.BUSY], "b, blocked since 10 s, gets the place c freed at 100 s"
    blocked = line.state_times()[:, State.BLOCKED]
    assert blocked.tolist() == [50.0, 90.0, 0.0]


def test_parts_are_conserved_at_every_instant():
    line = TwinLine.from_yaml(FLOW5, seed=12)
    frames = run(line, 7 * 86400.0, dt=997.0)
    n = len(line.spec.stations)
    queues = [line.spec.sensor_index(f"{s}.queue_parts") for s in line.spec.stations]
    states = [line.spec.sensor_index(f"{s}.state") for s in line.spec.stations]
    wip = line.spec.sensor_index("line.wip_parts")
    for f in frames:
        held = sum(int(f.values[i]) in HOLDING for i in states)
        in_line = int(f.values[queues].sum()) + held
        k = f.kpis
        assert k.jobs_released == k.good_parts + k.scrap_parts + in_line, f.time
        assert f.values[wip] == in_line == k.wip_parts
        assert k.jobs_done == k.good_parts + k.scrap_parts
        assert held <= n
    k = frames[-1].kpis
    assert k.scrap_parts > 0, "conservation should be checked with scrap"
    assert k.failures > 0, "conservation should be checked with parts held by broken stations"


def test_more_buffer_never_lowers_throughput(flow5_definition):
    good = []
    for capacity in (1, 4, 16):
        definition = flow5_definition
        for i in range(1, 5):
            definition = edited(definition, f"stations.{i}.buffer_capacity_parts", capacity)
        definition["demand"]["arrival_rate_per_h"] = 80.0
        line = TwinLine.from_config(seed=2, **definition)
        good.append(run(line, 86400.0, dt=86400.0)[-1].kpis.good_parts)
    assert good[0] <= good[1] <= good[2]
    assert good[2] > good[0]


def test_sensor_stamps_and_dropouts():
    line = TwinLine.from_yaml(FLOW5, seed=0)
    frames = run(line, 86400.0, dt=7.0)
    period = line.params.machines["cnc"].sensors.sample_period_s
    idx = [i for i, s in enumerate(line.spec.sensors) if s.dropouts]
    assert len(idx) == 3 * len(line.spec.stations)
    values = np.array([f.values[idx] for f in frames[1:]])
    stamps = np.array([f.stamps[idx] for f in frames[1:]])
    times = np.array([f.time for f in frames[1:]])
    assert (stamps <= times[:, None]).all()
    assert (stamps > times[:, None] - period).all()
    # each read (7 s apart, samples every 1 s) is a fresh sample that drops out with p = 0.002
    dropped = int(np.isnan(values).sum())
    assert stats.binomtest(dropped, values.size, 0.002).pvalue > ALPHA, (dropped, values.size)
    exact = [i for i, s in enumerate(line.spec.sensors) if not s.dropouts]
    assert all((f.stamps[exact] == f.time).all() for f in frames)
    assert not any(np.isnan(f.values[exact]).any() for f in frames)


def test_instrument_noise_has_its_configured_spread():
    sensors = {"noise_std_ratio": 0.03, "drift_std_per_sqrt_h": 0.0, "dropout_probability": 0.0}
    definition = single_station(2.0, 100.0, sensors=sensors)
    line = TwinLine.from_config(seed=4, **definition)
    frames = run(line, 86400.0, dt=7.0)
    state = line.spec.sensor_index("s.state")
    idle = [f for f in frames[1:] if f.values[state] == State.IDLE]
    truth = {"vibration_mm_s": 0.5, "motor_current_a": 3.0}  # the idle readings of the default machine
    for name, true_value in truth.items():
        error = np.array([f.values[line.spec.sensor_index(f"s.{name}")] for f in idle]) / true_value - 1.0
        n = len(error)
        assert n > 10_000
        chi2 = (n - 1) * error.var(ddof=1) / 0.03**2
        p_spread = 2 * min(stats.chi2.cdf(chi2, n - 1), stats.chi2.sf(chi2, n - 1))
        assert p_spread > ALPHA, (name, error.std(ddof=1))
        assert stats.ttest_1samp(error, 0.0).pvalue > ALPHA, (name, error.mean())  # no bias without drift


def test_vibration_and_temperature_rise_as_health_falls(flow5_definition):
    definition = edited(flow5_definition, "machines.press.wear_per_busy_h", 0.03)
    definition["machines"]["press"]["failure_rate_wear_per_h"] = 0.0
    line = TwinLine.from_config(seed=1, **definition)
    frames = run(line, 2 * 86400.0, dt=30.0)
    vib = line.spec.sensor_index("press.vibration_mm_s")
    state = line.spec.sensor_index("press.state")
    busy = [f for f in frames if f.values[state] == State.BUSY and not np.isnan(f.values[vib])]
    early = np.array([f.values[vib] for f in busy if f.time < 6 * 3600])
    late = np.array([f.values[vib] for f in busy if f.time > 40 * 3600])
    assert line.health()[1] < 0.2
    assert stats.mannwhitneyu(late, early, alternative="greater").pvalue < ALPHA
    assert late.mean() > 1.5 * early.mean()
    temp = line.spec.sensor_index("press.bearing_temp_c")
    ambient = line.params.machines["press"].sensors.temperature_ambient_c
    assert abs(frames[0].values[temp] - ambient) < 5 * 0.03 * ambient  # a new machine starts cold
    assert np.nanmean([f.values[temp] for f in frames[-100:]]) > ambient + 20


def test_values_stay_within_spec_ranges():
    line = TwinLine.from_yaml(FLOW5, seed=3)
    frames = run(line, 2 * 86400.0, dt=97.0)
    low = np.array([s.low for s in line.spec.sensors])
    high = np.array([s.high for s in line.spec.sensors])
    values = np.array([f.values for f in frames])
    ok = np.isnan(values) | ((values >= low) & (values <= high))
    bad = [line.spec.sensors[i].name for i in np.where(~ok.all(axis=0))[0]]
    assert not bad


@pytest.mark.parametrize(
    ("scenario", "kpi"),
    [
        ({"kind": "supplier_outage", "start_s": 0.0, "duration_s": 3 * 86400.0}, "stockout_time_s"),
        ({"kind": "demand_surge", "start_s": 86400.0, "duration_s": 86400.0, "factor": 1.5}, "jobs_released"),
        ({"kind": "breakdown_wave", "start_s": 0.0, "duration_s": 86400.0, "factor": 30.0}, "failures"),
        ({"kind": "price_spike", "start_s": 3600.0, "duration_s": 7200.0, "factor": 5.0}, "energy_cost"),
    ],
)
def test_scenarios_move_the_kpis_they_target(scenario, kpi):
    base = TwinLine.from_yaml(FLOW5, seed=5)
    hit = TwinLine.from_yaml(FLOW5, seed=5, scenarios=[scenario])
    k_base = run(base, 3 * 86400.0, dt=3 * 86400.0)[-1].kpis
    k_hit = run(hit, 3 * 86400.0, dt=3 * 86400.0)[-1].kpis
    assert getattr(k_hit, kpi) > getattr(k_base, kpi) * 1.05


def test_price_spike_multiplies_the_cost_of_the_energy_used_in_its_window():
    spike = {"kind": "price_spike", "start_s": 3600.0, "duration_s": 7200.0, "factor": 5.0}
    base, hit = TwinLine.from_yaml(FLOW5, seed=6), TwinLine.from_yaml(FLOW5, seed=6, scenarios=[spike])
    base.reset()
    hit.reset()
    cost_before = base.advance(3600.0).kpis.energy_cost
    window_cost = base.advance(7200.0).kpis.energy_cost - cost_before
    end, end_hit = base.advance(86400.0).kpis, hit.advance(3600.0 + 7200.0 + 86400.0).kpis
    assert hit.read().time == base.read().time
    assert end_hit.energy_kwh == end.energy_kwh  # the same physics under common random numbers
    assert end_hit.good_parts == end.good_parts
    assert end_hit.energy_cost - end.energy_cost == pytest.approx(4.0 * window_cost, rel=1e-9)


def test_default_reorder_rule_keeps_material_flowing():
    line = TwinLine.from_yaml(FLOW5, seed=7)
    frames = run(line, 5 * 86400.0, dt=3600.0)
    k = frames[-1].kpis
    assert k.material_ordered >= k.material_received > 0
    stock = line.spec.sensor_index("line.stock_units")
    on_order = line.spec.sensor_index("line.on_order_units")
    reorder_point = line.params.supply.reorder_point_units
    order_qty = line.params.supply.order_quantity_units
    # the rule orders Q whenever the inventory position falls to s; one job takes at most 1.5 units
    assert all(f.values[stock] + f.values[on_order] > reorder_point - 1.5 for f in frames)
    assert k.material_ordered % order_qty == 0
    assert k.material_ordered - k.material_received == frames[-1].values[on_order]


def test_demand_surge_adds_poisson_orders_at_its_rate():
    surge = {"kind": "demand_surge", "start_s": 7200.0, "duration_s": 200 * 3600.0, "factor": 1.5}
    base, hit = TwinLine.from_yaml(FLOW5, seed=8), TwinLine.from_yaml(FLOW5, seed=8, scenarios=[surge])
    base.reset()
    hit.reset()
    assert base.advance(7000.0).kpis.jobs_released == hit.advance(7000.0).kpis.jobs_released
    extra = hit.advance(200 * 3600.0).kpis.jobs_released - base.advance(200 * 3600.0).kpis.jobs_released
    expected = 36.0 * 0.5 * (7000.0 + 200 * 3600.0 - 7200.0) / 3600.0  # half the base rate, over the overlap
    assert two_sided_poisson_p(extra, expected) > ALPHA, (extra, expected)


def test_demand_dip_keeps_each_order_with_the_configured_probability():
    dip = {"kind": "demand_surge", "start_s": 0.0, "duration_s": 1e6, "factor": 0.25}
    base, hit = TwinLine.from_yaml(FLOW5, seed=9), TwinLine.from_yaml(FLOW5, seed=9, scenarios=[dip])
    base.reset()
    hit.reset()
    n_base = base.advance(100 * 3600.0).kpis.jobs_released
    n_hit = hit.advance(100 * 3600.0).kpis.jobs_released
    assert n_hit < n_base
    # the dip thins the same base orders (common random numbers): kept ~ Binomial(n_base, 0.25)
    assert stats.binomtest(n_hit, n_base, 0.25).pvalue > ALPHA, (n_hit, n_base)
