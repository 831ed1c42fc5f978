"""OEE from counters by hand: planned time, run time and their losses, state by state."""

from __future__ import annotations

import math

import pytest

from hardware.counters import Counters, derive_kpis
from hardware.interface import StationState as S


def test_oee_takes_each_states_time_where_its_definition_puts_it():
    """Two stations for 1,000 s: off, standby and maintenance are not planned; down, changeover and warm-up not run."""
    times = {S.OFF: 100.0, S.STANDBY: 100.0, S.MAINTENANCE: 200.0, S.DOWN: 150.0, S.CHANGEOVER: 50.0,
             S.WARMUP: 100.0, S.BUSY: 900.0, S.IDLE: 300.0, S.BLOCKED: 100.0}  # fmt: skip
    state_time_s = tuple(times[s] for s in S)
    assert sum(state_time_s) == 2 * 1000.0
    k = derive_kpis(
        Counters(state_time_s=state_time_s, ideal_busy_s=1040.0, operations=50, scrapped_operations=5), 1000.0, 2
    )
    planned, run = 2000.0 - 100.0 - 100.0 - 200.0, 1600.0 - 150.0 - 50.0 - 100.0
    assert k.availability == pytest.approx(run / planned)  # 0.8125
    assert k.performance == pytest.approx(1040.0 / run)  # 0.8
    assert k.quality == pytest.approx(45 / 50)
    assert k.oee == pytest.approx(run / planned * 1040.0 / run * 0.9)


def test_a_line_run_faster_than_nominal_shows_a_performance_above_one():
    k = derive_kpis(
        Counters(state_time_s=(0, 0, 0, 0, 1000.0, 0, 0, 0, 0), ideal_busy_s=1150.0, operations=10), 1000.0, 1
    )
    assert k.performance == pytest.approx(1.15)


def test_cost_and_co2_per_good_part_are_undefined_without_a_good_part():
    """They were 0 over a window without a good part: the best score on a KPI where less is better."""
    none = derive_kpis(Counters(energy_cost=0.09, co2_kg=0.4, scrap_parts=1), 600.0, 1)
    assert math.isnan(none.energy_cost_per_good_part)
    assert math.isnan(none.co2_kg_per_good_part)
    assert (none.energy_cost, none.co2_kg) == (0.09, 0.4)  # the totals stay
    two = derive_kpis(Counters(energy_cost=0.09, co2_kg=0.4, good_parts=2), 600.0, 1)
    assert (two.energy_cost_per_good_part, two.co2_kg_per_good_part) == (pytest.approx(0.045), pytest.approx(0.2))
