"""The twin against queueing theory, renewal theory and conservation laws.

Statistical checks are tests from `scipy.stats` at a stated false-alarm probability `ALPHA`.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from hardware.twin import State, TwinLine
from tests.lines import FLOW5, single_station

ALPHA = 1e-3  # false-alarm probability of each statistical assertion


def poisson_p(count: int, mean: float) -> float:
    """Two-sided p-value of `count` under Poisson(`mean`)."""
    return float(min(1.0, 2.0 * min(stats.poisson.cdf(count, mean), stats.poisson.sf(count - 1, mean))))


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
        se = stats.sem(values)
        assert se / theory < 0.03, "the run is too short for the test to tell a 10% error"
        assert stats.ttest_1samp(values, theory).pvalue > ALPHA, (values.mean(), theory, se)  # batch-means t test


def test_mm1_arrival_rate_matches_configuration():
    line = TwinLine.from_config(seed=3, **single_station(25.2, 100.0))
    line.reset()
    kpis = line.advance(2000 * 3600.0).kpis
    assert poisson_p(kpis.jobs_released, 25.2 * 2000) > ALPHA, kpis.jobs_released


def test_littles_law_on_the_default_flow_line():
    line = TwinLine.from_yaml(FLOW5, seed=4)
    line.reset()
    frame = line.advance(28 * 86400.0)
    k = frame.kpis
    departures_per_s = k.jobs_done / frame.time
    assert k.failures > 0, "Little's law should hold with failures too"
    assert k.scrap_parts > 0, "Little's law should hold with scrap too"
    assert k.wip_mean_parts == pytest.approx(departures_per_s * k.flow_time_mean_s, rel=0.02)
    # from an empty start, the area under WIP is the departed jobs' time in system plus the ages of those inside
    area_part_s = k.wip_mean_parts * frame.time
    departed_part_s = k.jobs_done * k.flow_time_mean_s
    assert departed_part_s <= area_part_s <= departed_part_s + k.wip_parts * frame.time


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
    assert poisson_p(k.failures, expected) > ALPHA, (k.failures, expected)
    # repairs are gamma with mean 300 s and cv 0.5 (the default): their sum is gamma too
    cv = 0.5
    total = stats.gamma(a=k.failures / cv**2, scale=300.0 * cv**2)
    p_repair = 2 * min(total.cdf(k.unplanned_downtime_s), total.sf(k.unplanned_downtime_s))
    assert p_repair > ALPHA, (k.unplanned_downtime_s, k.failures)


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
    # hazard in busy hours t since renewal: base + gain * (wear_rate * t)^shape, so the life L has
    # survival S(t) = exp(-H(t)), E[L] = int S dt and E[L^2] = int 2 t S dt
    t = np.linspace(0.0, 1.0 / wear_rate, 20001)
    cumulative = base * t + gain * wear_rate**shape * t ** (shape + 1) / (shape + 1)
    survival = np.exp(-cumulative)
    mean_life_h = np.trapezoid(survival, t)
    var_life_h2 = np.trapezoid(2 * t * survival, t) - mean_life_h**2
    busy_h = k.busy_time_s / 3600.0
    # renewal central limit theorem: N(t) ~ Normal(t / mu, t sigma^2 / mu^3)
    expected = busy_h / mean_life_h
    sd = np.sqrt(busy_h * var_life_h2 / mean_life_h**3)
    assert expected > 30
    assert sd < 0.5 * np.sqrt(expected), "wear makes lives more regular than a Poisson process"
    assert 2 * stats.norm.sf(abs(k.failures - expected) / sd) > ALPHA, (k.failures, expected, sd)
