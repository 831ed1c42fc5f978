"""Buffers, sensors, supply and scenarios behave as a line engineer would expect."""

from __future__ import annotations

import numpy as np
import pytest

from hardware.twin import State, TwinLine
from tests.lines import FLOW5, RELIABLE, edited


def run(line: TwinLine, until_s: float, dt: float = 600.0) -> list:
    frames = [line.reset()]
    while frames[-1].time < until_s:
        frames.append(line.advance(min(dt, until_s - frames[-1].time)))
    return frames


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
        "demand": {"arrival_rate_per_h": 100.0},
    }
    line = TwinLine.from_config(seed=0, **definition)
    frames = run(line, 2 * 86400.0, dt=120.0)
    slow_queue = [f.values[line.spec.sensor_index("slow.queue_parts")] for f in frames]
    assert max(slow_queue) == 3
    times = line.state_times()
    assert times[0, State.BLOCKED] > 0.2 * frames[-1].time  # fast waits for space before slow
    assert times[2, State.IDLE] > 0.4 * frames[-1].time  # after starves behind slow
    assert frames[-1].kpis.throughput_per_h == pytest.approx(60.0, rel=0.05)  # the bottleneck's rate


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


def test_sensor_stamps_noise_and_dropouts():
    line = TwinLine.from_yaml(FLOW5, seed=0)
    frames = run(line, 86400.0, dt=7.0)
    period = line.params.machines["cnc"].sensors.sample_period_s
    idx = [
        line.spec.sensor_index(f"{s}.{q}") for s in line.spec.stations for q in ("vibration_mm_s", "motor_current_a")
    ]
    values = np.array([f.values[idx] for f in frames[1:]])
    stamps = np.array([f.stamps[idx] for f in frames[1:]])
    times = np.array([f.time for f in frames[1:]])
    assert (stamps <= times[:, None]).all()
    assert (stamps > times[:, None] - period).all()
    dropout_rate = np.isnan(values).mean()
    assert 0.0005 < dropout_rate < 0.006  # configured 0.002 per sample
    exact = line.spec.sensor_index("line.price_per_kwh")
    assert all(f.stamps[exact] == f.time for f in frames)
    assert not any(np.isnan(f.values[exact]) for f in frames)


def test_vibration_and_temperature_rise_as_health_falls(flow5_definition):
    definition = edited(flow5_definition, "machines.press.wear_per_busy_h", 0.03)
    definition["machines"]["press"]["failure_rate_wear_per_h"] = 0.0
    line = TwinLine.from_config(seed=1, **definition)
    frames = run(line, 2 * 86400.0, dt=30.0)
    vib = line.spec.sensor_index("press.vibration_mm_s")
    state = line.spec.sensor_index("press.state")
    busy = [f for f in frames if f.values[state] == State.BUSY and not np.isnan(f.values[vib])]
    early = np.mean([f.values[vib] for f in busy if f.time < 6 * 3600])
    late = np.mean([f.values[vib] for f in busy if f.time > 40 * 3600])
    assert line.health()[1] < 0.2
    assert late > 1.5 * early
    temp = line.spec.sensor_index("press.bearing_temp_c")
    ambient = line.params.machines["press"].sensors.temperature_ambient_c
    assert frames[0].values[temp] == pytest.approx(ambient, rel=0.2)
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
    ("scenario", "kpi", "direction"),
    [
        ({"kind": "supplier_outage", "start_s": 0.0, "duration_s": 3 * 86400.0}, "stockout_time_s", "up"),
        ({"kind": "demand_surge", "start_s": 86400.0, "duration_s": 86400.0, "factor": 1.5}, "jobs_released", "up"),
        ({"kind": "breakdown_wave", "start_s": 0.0, "duration_s": 86400.0, "factor": 30.0}, "failures", "up"),
        ({"kind": "price_spike", "start_s": 3600.0, "duration_s": 7200.0, "factor": 5.0}, "energy_cost", "up"),
    ],
)
def test_scenarios_move_the_kpis_they_target(scenario, kpi, direction):
    base = TwinLine.from_yaml(FLOW5, seed=5)
    hit = TwinLine.from_yaml(FLOW5, seed=5, scenarios=[scenario])
    k_base = run(base, 3 * 86400.0, dt=3 * 86400.0)[-1].kpis
    k_hit = run(hit, 3 * 86400.0, dt=3 * 86400.0)[-1].kpis
    assert getattr(k_hit, kpi) > getattr(k_base, kpi) * (1.05 if direction == "up" else 1.0)


def test_price_spike_changes_cost_not_physics():
    spike = {"kind": "price_spike", "start_s": 3600.0, "duration_s": 7200.0, "factor": 5.0}
    base = run(TwinLine.from_yaml(FLOW5, seed=6), 86400.0, dt=86400.0)[-1]
    hit = run(TwinLine.from_yaml(FLOW5, seed=6, scenarios=[spike]), 86400.0, dt=86400.0)[-1]
    assert hit.kpis.energy_kwh == base.kpis.energy_kwh
    assert hit.kpis.good_parts == base.kpis.good_parts
    assert hit.kpis.energy_cost > base.kpis.energy_cost


def test_default_reorder_rule_keeps_material_flowing():
    line = TwinLine.from_yaml(FLOW5, seed=7)
    frames = run(line, 5 * 86400.0, dt=3600.0)
    k = frames[-1].kpis
    assert k.material_ordered >= k.material_received > 0
    stock = line.spec.sensor_index("line.stock_units")
    on_order = line.spec.sensor_index("line.on_order_units")
    reorder_point = line.params.supply.reorder_point_units
    order_qty = line.params.supply.order_quantity_units
    # the rule orders Q whenever the inventory position falls to s
    assert all(f.values[stock] + f.values[on_order] > reorder_point - 2 for f in frames)
    assert k.material_ordered % order_qty == 0


def test_demand_surge_adds_its_orders_and_leaves_the_base_orders_alone():
    surge = {"kind": "demand_surge", "start_s": 7200.0, "duration_s": 200 * 3600.0, "factor": 1.5}
    base, hit = TwinLine.from_yaml(FLOW5, seed=8), TwinLine.from_yaml(FLOW5, seed=8, scenarios=[surge])
    base.reset()
    hit.reset()
    assert base.advance(7000.0).kpis.jobs_released == hit.advance(7000.0).kpis.jobs_released
    extra = hit.advance(200 * 3600.0).kpis.jobs_released - base.advance(200 * 3600.0).kpis.jobs_released
    expected = 36.0 * 0.5 * 200  # the base rate's half, for 200 hours
    assert abs(extra - expected) < 4 * np.sqrt(expected)


def test_demand_dip_keeps_the_configured_share_of_orders():
    dip = {"kind": "demand_surge", "start_s": 0.0, "duration_s": 1e6, "factor": 0.25}
    base, hit = TwinLine.from_yaml(FLOW5, seed=9), TwinLine.from_yaml(FLOW5, seed=9, scenarios=[dip])
    base.reset()
    hit.reset()
    n_base = base.advance(100 * 3600.0).kpis.jobs_released
    n_hit = hit.advance(100 * 3600.0).kpis.jobs_released
    assert abs(n_hit - 0.25 * n_base) < 4 * np.sqrt(0.25 * 0.75 * n_base)
