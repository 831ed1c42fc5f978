"""`ModbusLine` without a PLC: what it refuses at construction, and setpoint checks identical to the twin's."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import yaml

from hardware import Command, Lever
from hardware.interface import SetpointLimits
from hardware.modbus import default_map
from hardware.modbus.client import ModbusLine
from hardware.modbus.connect import modbus_line
from hardware.twin import TwinLine
from tests.lines import FLOW5, single_station

ALL_SETPOINT_LEVERS = ["speed", "mode", "maintenance"]


@pytest.fixture(scope="module")
def twin() -> TwinLine:
    definition = single_station(60.0, 30.0)
    line = TwinLine.from_definition(definition, control={"levers": ALL_SETPOINT_LEVERS, "control_period_s": 60.0})
    line.reset(seed=0)
    return line


def test_no_network_at_construction_and_a_full_map_serves_any_subset_of_levers(twin):
    rmap = default_map(twin.spec)
    spec = dataclasses.replace(
        twin.spec,
        actuators=tuple(a for a in twin.spec.actuators if a.lever is Lever.MODE),
        levers=frozenset({Lever.MODE}),
    )
    line = ModbusLine(spec, rmap, "127.0.0.1", 9)  # port 9 (discard): nothing listens, nothing is tried
    with pytest.raises(RuntimeError, match=r"call reset\(\) before using it"):
        line.read()


def test_a_lever_the_map_does_not_carry_is_refused_naming_the_actuator_and_the_map(twin):
    speed_only = dataclasses.replace(
        twin.spec,
        actuators=tuple(a for a in twin.spec.actuators if a.lever is Lever.SPEED),
        levers=frozenset({Lever.SPEED}),
    )
    rmap = dataclasses.replace(default_map(speed_only), source="maps/single.yaml")
    with pytest.raises(ValueError, match=r"maps/single.yaml has no command entry for actuator 's.mode' \(lever mode\)"):
        ModbusLine(twin.spec, rmap)


def test_dispatch_is_refused_at_construction(twin):
    spec = dataclasses.replace(twin.spec, levers=twin.spec.levers | {Lever.DISPATCH})
    with pytest.raises(ValueError, match="dispatch over Modbus is not supported by this map"):
        ModbusLine(spec, default_map(twin.spec))


def test_a_map_of_another_line_is_refused(twin):
    other = dataclasses.replace(default_map(twin.spec), line="other")
    with pytest.raises(ValueError, match="is for line 'other', not 'single'"):
        ModbusLine(twin.spec, other)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("timeout_s", 0.0),
        ("poll_s", float("nan")),
        ("read_retries", -1),
        ("read_retries", 1.5),  # was a TypeError at the first frame read, naming nothing
        ("reconnect_backoff_s", (1.0, 0.5)),
    ],
)
def test_options_out_of_range_are_refused(twin, option, value):
    with pytest.raises(ValueError, match=option):
        ModbusLine(twin.spec, default_map(twin.spec), **{option: value})


@pytest.mark.parametrize(
    ("setpoints", "message"),
    [
        ([1.0, 2.0], r"setpoints: expected shape \(3,\) for actuators"),
        ([1.0, 2.0, 0.0, 0.0], r"expected shape \(3,\)"),
        ([9.0, 2.0, 0.0], r"setpoint s\.speed = 9\.0 is outside its limits \[0\.5, 1\.2\] ratio"),
        ([np.nan, -1.0, np.nan], r"setpoint s\.mode = -1\.0 is outside its limits \[0\.0, 2\.0\]"),
        ([np.inf, 2.0, 0.0], r"setpoint s\.speed = inf is outside"),
        ([1.0, 1.5, 0.0], r"setpoint s\.mode = 1\.5: mode is 0 \(off\), 1 \(standby\) or 2 \(run\)"),
    ],
)
def test_setpoints_the_twin_refuses_are_refused_the_same_way(twin, setpoints, message):
    """One check (`SetpointLimits`) serves the twin and `ModbusLine`: the twin's refusals, named."""
    with pytest.raises(ValueError, match=message):
        twin.write(Command(setpoints=np.array(setpoints)))
    with pytest.raises(ValueError, match=message):
        SetpointLimits(twin.spec).check(setpoints)


def test_keep_and_valid_setpoints_pass_as_floats(twin):
    out = SetpointLimits(twin.spec).check([np.nan, 1, 0.5])
    np.testing.assert_array_equal(out, [np.nan, 1.0, 0.5])
    assert out.dtype == np.float64


def test_sequence_numbers_run_over_the_whole_register_but_0():
    """A uint16 sequence number wraps from 65535 to 1: 0 is what a PLC holds at power-up."""
    from hardware.modbus.sequence import next_sequence

    assert [next_sequence(s, 0x10000) for s in (0, 1, 65534, 65535)] == [1, 2, 65535, 1]


def test_a_random_origin_lies_past_the_echo_and_never_on_the_number_the_window_holds():
    from hardware.modbus.sequence import JUMP, advance, next_sequence, origin

    assert advance(65534, 3, 0x10000) == 2  # 65535, 1, 2
    assert advance(0, 1, 0x10000) == 1
    assert origin(7, None, 0x10000, "echo") == (7, None)
    assert origin(7, 8, 0x10000, "echo") == (8, 8)  # 8 is pending in the window: count on from it
    for _ in range(200):
        last, pending = origin(65530, 65531, 0x10000, "random")
        nxt = next_sequence(last, 0x10000)
        assert pending == 65531
        assert nxt not in (65530, 65531, 0)
        assert (nxt - 65532) % 65535 < JUMP  # within the jump past the pending block, across the wrap


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"reconnect_backoff_s": [0.05]}, r"reconnect_backoff_s: expected \[first, longest\] in s, got \[0\.05\]"),
        ({"reconnect_backoff_s": 0.05}, r"reconnect_backoff_s: expected \[first, longest\] in s, got 0\.05"),
        ({"tls": {"cert": "c.pem", "key": "c.key"}}, r"tls: expected a mapping with the client's cert, key and the ca"),
        ({"tls": "certs/"}, r"tls: expected a mapping .*, got 'certs/'"),
    ],
)
def test_the_hardware_config_refuses_a_malformed_backoff_or_tls_by_name(option, message):
    with pytest.raises(ValueError, match=message):
        modbus_line(yaml.safe_load(FLOW5.read_text()), ["speed"], None, **option)
