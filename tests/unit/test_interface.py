import dataclasses

import numpy as np
import pytest

from hardware import Command, Frame, Kpis, Line, LineSpec
from hardware.twin import TwinLine
from tests.lines import FLOW5, JOBSHOP


@pytest.mark.parametrize("path", [FLOW5, JOBSHOP])
def test_twin_satisfies_line_protocol(path):
    line = TwinLine.from_yaml(path, seed=0)
    assert isinstance(line, Line)
    assert isinstance(line.spec, LineSpec)


def test_frame_is_immutable_and_in_spec_order():
    line = TwinLine.from_yaml(FLOW5, seed=0)
    frame = line.reset()
    assert isinstance(frame, Frame)
    assert frame.values.dtype == np.float64
    assert frame.values.shape == frame.stamps.shape == (len(line.spec.sensors),)
    with pytest.raises(ValueError, match="read-only"):
        frame.values[0] = 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        frame.time = 5.0  # type: ignore[misc]
    assert line.spec.sensors[line.spec.sensor_index("line.price_per_kwh")].unit == "currency/kWh"


def test_frames_are_sequenced_and_kpis_typed():
    line = TwinLine.from_yaml(FLOW5, seed=0)
    first = line.reset()
    second = line.advance(600.0)
    assert second.seq > first.seq
    assert second.time == pytest.approx(600.0)
    assert isinstance(second.kpis, Kpis)
    assert {"good_parts", "scrap_parts", "energy_kwh", "energy_cost", "co2_kg"} <= set(Kpis.names())
    assert line.read() is second


def test_use_before_reset_and_bad_dt_are_refused():
    line = TwinLine.from_yaml(FLOW5, seed=0)
    with pytest.raises(RuntimeError, match="reset"):
        line.advance(1.0)
    line.reset()
    for dt in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="dt"):
            line.advance(dt)


def test_setpoints_need_matching_shape():
    line = TwinLine.from_yaml(FLOW5, seed=0)
    line.reset()
    with pytest.raises(ValueError, match="shape"):
        line.write(Command(setpoints=np.array([1.0])))


def test_a_frame_built_on_a_view_does_not_change_with_the_array_it_viewed():
    buffer = np.zeros(4)
    frame = Frame(time=0.0, seq=0, values=buffer[:2], stamps=buffer[2:], pending=())
    buffer[:] = 5.0
    assert frame.values.tolist() == [0.0, 0.0]
    assert frame.stamps.tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="read-only"):
        frame.values[0] = 1.0
