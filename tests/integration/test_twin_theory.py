"""The twin against queueing theory and conservation laws."""

from __future__ import annotations

import numpy as np
import pytest

from hardware.twin import State, TwinLine
from tests.lines import FLOW5, single_station


def batch_means(line: TwinLine, batches: int, batch_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-batch utilisation and mean time in system from the cumulative KPI counters."""
    util, flow = [], []
    prev = line.read()
    for _ in range(batches):
        frame = line.advance(batch_s)
        k, p = frame.kpis, prev.kpis
        util.append((k.busy_time_s - p.busy_time_s) / batch_s)
        done = k.jobs_done - p.jobs_done
        flow.append((k.flow_time_mean_s * k.jobs_done - p.flow_time_mean_s * p.jobs_done) / done)
        prev = frame
    return np.array(util), np.array(flow)


@pytest.mark.parametrize("seed", [1, 2])
def test_mm1_utilisation_and_time_in_system(seed):
    lam_per_h, service_s = 25.2, 100.0  # rho = 0.7
    rho = lam_per_h * service_s / 3600.0
    w_theory_s = 1.0 / (1.0 / service_s - lam_per_h / 3600.0)  # 333.3 s
    line = TwinLine.from_config(seed=seed, **single_station(lam_per_h, service_s))
    line.reset()
    line.advance(50 * 3600.0)  # warm-up, discarded
    util, flow = batch_means(line, batches=20, batch_s=250 * 3600.0)
    for values, theory in ((util, rho), (flow, w_theory_s)):
        se = values.std(ddof=1) / np.sqrt(len(values))
        assert se / theory < 0.03, "the run is too short for the test to mean anything"
        assert abs(values.mean() - theory) < 4 * se, (values.mean(), theory, se)


def test_mm1_arrival_rate_matches_configuration():
    line = TwinLine.from_config(seed=3, **single_station(25.2, 100.0))
    line.reset()
    kpis = line.advance(2000 * 3600.0).kpis
    expected = 25.2 * 2000
    assert abs(kpis.jobs_released - expected) < 4 * np.sqrt(expected)


def test_littles_law_on_the_default_flow_line():
    line = TwinLine.from_yaml(FLOW5, seed=4)
    line.reset()
    frame = line.advance(28 * 86400.0)
    k = frame.kpis
    departures_per_s = k.jobs_done / frame.time
    assert k.failures > 0, "Little's law should hold with failures too"
    assert k.scrap_parts > 0, "Little's law should hold with scrap too"
    assert k.wip_mean_parts == pytest.approx(departures_per_s * k.flow_time_mean_s, rel=0.02)


def test_state_times_add_up_to_the_clock_and_match_kpis():
    line = TwinLine.from_yaml(FLOW5, seed=5)
    line.reset()
    frame = line.advance(3 * 86400.0)
    times = line.state_times()
    np.testing.assert_allclose(times.sum(axis=1), frame.time, rtol=1e-12)
    k = frame.kpis
    assert k.changeover_time_s == pytest.approx(times[:, State.CHANGEOVER].sum(), rel=1e-12)
    assert k.unplanned_downtime_s == pytest.approx(times[:, State.DOWN].sum(), rel=1e-12)
    assert k.planned_downtime_s == pytest.approx(times[:, State.MAINTENANCE].sum(), rel=1e-12)
    assert k.busy_time_s == pytest.approx(times[:, State.BUSY].sum(), rel=1e-12)
    assert k.changeover_time_s > 0
    assert k.unplanned_downtime_s > 0


def test_failure_count_agrees_with_constant_hazard():
    rate_per_h = 0.5
    definition = single_station(30.0, 90.0, failure_rate_base_per_h=rate_per_h, repair_time_mean_s=300.0)
    line = TwinLine.from_config(seed=6, **definition)
    line.reset()
    k = line.advance(1500 * 3600.0).kpis
    expected = rate_per_h * k.busy_time_s / 3600.0  # failures only accrue while busy
    assert expected > 300
    assert abs(k.failures - expected) < 4 * np.sqrt(expected), (k.failures, expected)
    assert k.unplanned_downtime_s == pytest.approx(k.failures * 300.0, rel=0.1)


def test_wear_dependent_failures_follow_the_renewal_rate():
    base, wear_rate, gain, shape = 0.01, 0.02, 1.0, 2.0
    definition = single_station(
        30.0,
        90.0,
        failure_rate_base_per_h=base,
        failure_rate_wear_per_h=gain,
        failure_wear_shape=shape,
        wear_per_busy_h=wear_rate,
    )
    line = TwinLine.from_config(seed=7, **definition)
    line.reset()
    k = line.advance(1000 * 3600.0).kpis
    # hazard in busy hours t since renewal: base + gain * (wear_rate * t)^shape; mean life = int exp(-H(t)) dt
    t = np.linspace(0.0, 1.0 / wear_rate, 20001)
    cumulative = base * t + gain * wear_rate**shape * t ** (shape + 1) / (shape + 1)
    mean_life_h = np.trapezoid(np.exp(-cumulative), t)
    expected = k.busy_time_s / 3600.0 / mean_life_h
    assert expected > 30
    assert abs(k.failures - expected) < 4 * np.sqrt(expected), (k.failures, expected)
