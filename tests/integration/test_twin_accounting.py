"""Energy, changeover and schedule accounting, and determinism under a seed."""

from __future__ import annotations

import numpy as np
import pytest

from hardware import Command
from hardware.twin import State, TwinLine
from tests.lines import FLOW5, JOBSHOP, POWER_KW, deterministic_shop, edited, energy_kwh


@pytest.mark.parametrize("speed", [1.0, 0.8, 1.15])
def test_energy_is_power_times_time_in_state(flow5_definition, speed):
    definition = edited(flow5_definition, "control.levers", ["speed", "maintenance"])
    wave = {"kind": "breakdown_wave", "start_s": 3600.0, "duration_s": 7200.0, "factor": 200.0}
    definition["scenarios"] = [wave]
    line = TwinLine.from_config(seed=8, **definition)
    line.reset()
    speeds = [speed if a.name.endswith(".speed") else 0.0 for a in line.spec.actuators]
    line.write(Command(setpoints=np.array(speeds)))
    maintain_cut = [1.0 if a.name == "cut.maintain" else np.nan for a in line.spec.actuators]
    line.write(Command(setpoints=np.array(maintain_cut)))
    frame = line.read()
    while frame.time < 2 * 86400.0:
        frame = line.advance(2 * 86400.0 - frame.time)
    times = line.state_times()
    np.testing.assert_allclose(times.sum(axis=1), frame.time, rtol=1e-12)
    assert frame.kpis.energy_kwh == pytest.approx(energy_kwh(definition, times, speed), rel=1e-10)
    assert frame.kpis.failures > 0, "downtime states should be part of the sum"
    assert frame.kpis.preventive_maintenances == 1
    assert (times[:, State.CHANGEOVER] > 0).all()


def test_flat_tariff_cost_and_carbon_are_energy_times_rate(flow5_definition):
    definition = edited(flow5_definition, "grid", {"tariff": [{"from_hour": 0, "price_per_kwh": 0.2}]})
    definition["grid"]["carbon_kg_per_kwh"] = [0.35]
    line = TwinLine.from_config(seed=9, **definition)
    line.reset()
    k = line.advance(86400.0).kpis
    assert k.energy_cost == pytest.approx(0.2 * k.energy_kwh, rel=1e-12)
    assert k.co2_kg == pytest.approx(0.35 * k.energy_kwh, rel=1e-12)
    assert k.energy_cost_per_good_part == pytest.approx(k.energy_cost / k.good_parts)


def test_time_of_use_tariff_is_integrated_per_period():
    definition = deterministic_shop([("A", 0.0)], [{"name": "A", "route": ["m0"], "processing_time_s": [1.0]}])
    definition["grid"] = {
        "tariff": [{"from_hour": 0, "price_per_kwh": 0.1}, {"from_hour": 6, "price_per_kwh": 0.3}],
        "carbon_kg_per_kwh": [0.5] * 12 + [0.1] * 12,
    }
    line = TwinLine.from_config(seed=0, **definition)
    line.reset()
    assert line.advance(86400.0).time == 1.0  # the line stops to report its job set complete
    k = line.advance(86400.0 - 1.0).kpis
    idle_kw, busy_kw = POWER_KW["idle"], POWER_KW["busy"]  # all four stations idle nearly all day
    kwh_per_h = 4 * idle_kw
    extra_kwh = (busy_kw - idle_kw) * 1.0 / 3600.0  # the one second of work, in the 0.1 period
    assert k.energy_kwh == pytest.approx(24 * kwh_per_h + extra_kwh, rel=1e-12)
    assert k.energy_cost == pytest.approx(kwh_per_h * (6 * 0.1 + 18 * 0.3) + extra_kwh * 0.1, rel=1e-12)
    assert k.co2_kg == pytest.approx(kwh_per_h * (12 * 0.5 + 12 * 0.1) + extra_kwh * 0.5, rel=1e-12)


def test_changeovers_and_makespan_of_a_deterministic_sequence():
    variants = [
        {"name": "A", "route": ["m0", "m1"], "processing_time_s": [10.0, 5.0]},
        {"name": "B", "route": ["m0", "m1"], "processing_time_s": [20.0, 5.0]},
    ]
    jobs = [("A", 0.0), ("B", 0.0), ("A", 0.0), ("B", 0.0)]
    definition = deterministic_shop(jobs, variants, changeover_time_s=[[0.0, 7.0], [3.0, 0.0]])
    line = TwinLine.from_config(seed=0, **definition)
    line.reset()
    frame = line.advance(1000.0)
    k = frame.kpis
    assert frame.time == 89.0  # the line stops when its job set is complete
    # m0: A 0-10, co 10-17, B 17-37, co 37-40, A 40-50, co 50-57, B 57-77
    # m1: A 10-15, co 37-44, B 44-49, co 50-53, A 53-58, co 77-84, B 84-89
    assert k.good_parts == 4
    assert k.last_completion_s == pytest.approx(89.0)
    times = line.state_times()
    assert times[0, State.CHANGEOVER] == pytest.approx(17.0)
    assert times[1, State.CHANGEOVER] == pytest.approx(17.0)
    assert times[0, State.BUSY] == pytest.approx(60.0)
    planned = 4 * 89.0
    assert k.availability == pytest.approx((planned - 34.0) / planned)
    assert k.performance == pytest.approx((60.0 + 20.0) / (planned - 34.0))
    assert k.quality == 1.0
    assert k.oee == pytest.approx((60.0 + 20.0) / planned)
    # 80 s busy, 34 s changing over, the rest of 4 x 89 s idle (m2, m3 never work)
    by_hand_kws = POWER_KW["busy"] * 80.0 + POWER_KW["changeover"] * 34.0 + POWER_KW["idle"] * (planned - 114.0)
    assert k.energy_kwh == pytest.approx(by_hand_kws / 3600.0, rel=1e-12)


def test_fifo_job_shop_schedule_by_hand():
    variants = [
        {"name": "J0", "route": ["m0", "m1"], "processing_time_s": [3.0, 2.0]},
        {"name": "J1", "route": ["m1", "m0"], "processing_time_s": [4.0, 1.0]},
        {"name": "J2", "route": ["m0", "m1"], "processing_time_s": [2.0, 3.0]},
    ]
    definition = deterministic_shop([("J0", 0.0), ("J1", 0.0), ("J2", 0.0)], variants)
    line = TwinLine.from_config(seed=0, **definition)
    line.reset()
    k = line.advance(100.0).kpis
    # m0: J0 0-3, J2 3-5, J1 5-6; m1: J1 0-4, J0 4-6, J2 6-9
    assert k.last_completion_s == pytest.approx(9.0)
    assert k.flow_time_mean_s == pytest.approx((6.0 + 6.0 + 9.0) / 3)


def frames_of(path, seed: int, steps: int, dt: float) -> list:
    line = TwinLine.from_yaml(path, seed=seed)
    frames = [line.reset()]
    frames.extend(line.advance(dt) for _ in range(steps))
    return frames


@pytest.mark.parametrize("path", [FLOW5, JOBSHOP])
def test_same_seed_bit_identical_frames(path):
    a, b = frames_of(path, 11, 300, 600.0), frames_of(path, 11, 300, 600.0)
    for fa, fb in zip(a, b, strict=True):
        assert fa.time == fb.time
        assert fa.seq == fb.seq
        assert fa.pending == fb.pending
        assert fa.kpis == fb.kpis
        assert fa.values.tobytes() == fb.values.tobytes()
        assert fa.stamps.tobytes() == fb.stamps.tobytes()
    other = frames_of(path, 12, 300, 600.0)
    assert other[-1].kpis != a[-1].kpis


def test_reset_with_seed_matches_constructor_seed():
    line = TwinLine.from_yaml(FLOW5)
    line.reset(seed=13)
    a = line.advance(3600.0)
    again = TwinLine.from_yaml(FLOW5, seed=13)
    again.reset()
    b = again.advance(3600.0)
    assert a.kpis == b.kpis
    assert a.values.tobytes() == b.values.tobytes()
    next_episode = again.reset()
    assert next_episode.time == 0.0
    assert again.advance(3600.0).kpis != b.kpis, "an unseeded reset starts a new episode"
