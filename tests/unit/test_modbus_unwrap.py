"""Cumulative counters read from registers that wrap: carried on past the top, levels and floats as read."""

from __future__ import annotations

import dataclasses

import pytest

from hardware.counters import Counters
from hardware.modbus import Encoding, RegisterMap, RegisterType, Role, default_map
from hardware.modbus.unwrap import CounterReset, CounterUnwrap
from hardware.twin import TwinLine
from tests.lines import FLOW5


@pytest.fixture(scope="module")
def rmap() -> RegisterMap:
    """flow5's default map with `good_parts` in a uint16 (scale 1) and `energy_kwh` in a uint64 of 0.5 kWh."""
    base = default_map(TwinLine.from_yaml(FLOW5, control={"levers": ["speed"]}).spec)
    narrow = {"good_parts": Encoding(RegisterType.UINT16, wraps=True),
              "energy_kwh": Encoding(RegisterType.UINT64, scale=0.5, wraps=True)}  # fmt: skip
    regs = tuple(
        dataclasses.replace(r, encoding=narrow[r.name]) if r.role is Role.COUNTER and r.name in narrow else r
        for r in base.registers
    )
    return RegisterMap(base.line, regs, "narrow counters")


def test_a_counter_that_went_down_wrapped_once_and_counts_on(rmap):
    unwrap = CounterUnwrap(rmap)
    assert unwrap.moduli["good_parts"] == 65536
    assert unwrap.moduli["energy_kwh"] == 0.5 * 2**64
    assert "wip_parts" not in unwrap.moduli  # a level
    assert "flow_time_sum_s" not in unwrap.moduli  # a float64 total never wraps
    read = [Counters(good_parts=65530, wip_parts=9), Counters(good_parts=65535, wip_parts=4),
            Counters(good_parts=3, wip_parts=6), Counters(good_parts=3, wip_parts=6),
            Counters(good_parts=65534, wip_parts=2), Counters(good_parts=10, wip_parts=1)]  # fmt: skip
    out = [unwrap(c) for c in read]
    assert [c.good_parts for c in out] == [65530, 65535, 65539, 65539, 131070, 131082]
    assert [c.wip_parts for c in out] == [9, 4, 6, 6, 2, 1]
    assert out[-1].since(out[0], 0.0).good_parts == 65552
    unwrap.restart()
    assert unwrap(Counters(good_parts=7)).good_parts == 7  # after a restart: taken as read


@pytest.mark.parametrize(
    ("before", "after", "named"),
    [
        (Counters(good_parts=1000), Counters(good_parts=0), "good_parts went from 1000 to 0"),  # uint16: 64,536 ahead
        (Counters(good_parts=30000), Counters(good_parts=0), "good_parts went from 30000 to 0"),
        (Counters(scrap_parts=5), Counters(scrap_parts=0), "scrap_parts went from 5 to 0"),  # the default map
        (Counters(flow_time_sum_s=9.5), Counters(flow_time_sum_s=1.0), "flow_time_sum_s went from 9.5 to 1"),
        (Counters(state_time_s=(0, 0, 0, 0, 60.0, 0, 0, 0, 0)), Counters(), "state_time_s.busy went from 60 to 0"),
    ],
)
def test_a_counter_that_went_down_further_than_a_wrap_was_reset(rmap, before, after, named):
    unwrap = CounterUnwrap(rmap)
    unwrap(before)
    with pytest.raises(CounterReset, match=named):
        unwrap(after)
    assert unwrap(before) == before  # nothing of the reset read was kept
    unwrap.restart()
    assert unwrap(after) == after  # attached afresh: counted from the reset


def test_a_counter_that_went_down_by_less_than_half_its_range_wrapped(rmap):
    unwrap = CounterUnwrap(rmap)
    unwrap(Counters(good_parts=40000))
    assert unwrap(Counters(good_parts=7000)).good_parts == 65536 + 7000  # 32,536 ahead: under half of 65,536


@pytest.mark.parametrize(
    ("after", "named"),
    [
        (Counters(good_parts=0, scrap_parts=5, flow_time_sum_s=9.5), "good_parts went from 3 to 0"),
        (Counters(good_parts=3, scrap_parts=0, flow_time_sum_s=9.5), "scrap_parts went from 5 to 0"),
        (Counters(good_parts=3, scrap_parts=5, flow_time_sum_s=1.0), "flow_time_sum_s went from 9.5 to 1"),
    ],
)
def test_a_reset_after_a_wrap_is_still_a_reset(rmap, after, named):
    """Once a counter had wrapped, every later reset passed as a wrap: parts jumped by 65,536, floats went down."""
    unwrap = CounterUnwrap(rmap)
    unwrap(Counters(good_parts=65530, scrap_parts=5, flow_time_sum_s=9.5))
    wrapped = unwrap(Counters(good_parts=3, scrap_parts=5, flow_time_sum_s=9.5))
    assert wrapped.good_parts == 65539
    with pytest.raises(CounterReset, match=named):
        unwrap(after)
    assert unwrap(Counters(good_parts=4, scrap_parts=5, flow_time_sum_s=9.5)).good_parts == 65540  # nothing kept
