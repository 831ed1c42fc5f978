"""The virtual PLC's rules without a server: limits, the watchdog on a given clock, faults, and the twin's hooks."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import yaml

from hardware.interface import Command, Lever, StationState
from hardware.modbus import CommandBlock, CommandImage, StatusBit, default_map
from hardware.modbus.maps import setpoint_spec
from hardware.modbus.plc_faults import Fault, FaultKind, FaultSet
from hardware.modbus.plc_program import PlcProgram, limit_setpoint, utc_midnight
from hardware.twin import TwinLine
from tests.lines import FLOW5

DEFINITION = yaml.safe_load(FLOW5.read_text())
FULL = setpoint_spec(DEFINITION)
MAP = default_map(FULL)
COMMAND = CommandImage(MAP)
WINDOW = MAP.command_window
F32_1_1 = float(np.float32(1.1))  # 1.1 as the float32 setpoint register carries it


def twin(*levers: str, **control: Any) -> TwinLine:
    line = TwinLine.from_definition(DEFINITION, seed=1, control={"levers": list(levers), **control})
    line.reset()
    return line


def program(*levers: str, **options: Any) -> PlcProgram:
    p = PlcProgram(twin(*levers), MAP, FULL, clock_origin_s=0.0, **options)
    p.power_up()
    return p


def block(heartbeat: int, sequence: int, **setpoints: float) -> list[int]:
    values = np.full(len(COMMAND.names), math.nan)
    for name, value in setpoints.items():
        values[COMMAND.names.index(name.replace("__", "."))] = value
    return COMMAND.encode(CommandBlock(heartbeat, sequence, values))


def write(p: PlcProgram, registers: list[int], wall_s: float = 0.0) -> tuple[Any, bool]:
    return p.write(WINDOW.address, len(registers), registers, wall_s)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((1.1, 1.0, 0.5, 1.2, None, 60.0), (1.1, False)),
        ((5.0, 1.0, 0.5, 1.2, None, 60.0), (1.2, True)),
        ((-math.inf, 1.0, 0.5, 1.2, None, 60.0), (0.5, True)),
        ((1.2, 1.0, 0.5, 1.2, 0.001, 60.0), (1.06, True)),
        ((0.7, 1.0, 0.5, 1.2, 0.001, 120.0), (0.88, True)),
        ((1.05, 1.0, 0.5, 1.2, 0.001, 60.0), (1.05, False)),
        ((9.0, 1.0, 0.5, 1.2, 0.001, 600.0), (1.2, True)),  # clamped first, then within the rate
    ],
)
def test_limit_setpoint_clamps_then_rate_limits(args, expected):
    value, limited = limit_setpoint(*args)
    assert value == pytest.approx(expected[0])
    assert limited is expected[1]


def test_utc_midnight():
    assert utc_midnight(1_764_590_400.0) == 1_764_547_200.0  # 2025-12-01 12:00Z -> 00:00Z
    assert utc_midnight() % 86400.0 == 0.0


def test_the_watchdog_trips_after_watchdog_s_of_wall_time_and_clears_on_a_new_heartbeat():
    p = program("speed", watchdog_s=5.0)
    assert p.scan(1000.0) is False
    assert p.heartbeat == 1
    assert write(p, block(7, 1, cut__speed=1.1), wall_s=100.0) == (None, True)
    assert p.agent_owns
    assert p.active["cut.speed"] == F32_1_1
    assert write(p, block(7, 1), wall_s=104.0) == (None, False)  # same heartbeat: not fed
    assert p.scan(104.99) is False
    assert p.scan(105.0) is True
    assert StatusBit.WD_TRIPPED in p.status
    assert p.active["cut.speed"] == 1.0
    assert not p.agent_owns
    assert twin_speed(p) == 1.0
    assert p.scan(200.0) is False  # latched, not tripped again
    assert write(p, block(8, 2, cut__speed=1.1), wall_s=201.0) == (None, True)  # back, but the trip latched
    assert StatusBit.WD_TRIPPED not in p.status  # re-armed ...
    assert (p.echo, p.active["cut.speed"], p.agent_owns) == (1, 1.0, False)  # ... and this block not acted on
    assert p.scan(250.0) is True  # silent again: trips again
    assert p.write(WINDOW.address, 1, block(9, 2)[:1], 251.0) == (None, True)  # the heartbeat alone re-arms
    assert StatusBit.WD_TRIPPED not in p.status
    assert p.active["cut.speed"] == 1.0
    write(p, block(10, 3, cut__speed=1.1), wall_s=252.0)
    assert p.agent_owns
    assert p.active["cut.speed"] == F32_1_1
    assert p.echo == 3


def twin_speed(p: PlcProgram) -> float:
    return float(p.twin.read().values[p.twin.spec.sensor_index("cut.speed_ratio")])


def test_shapes_of_writes_other_than_the_block_or_the_heartbeat_are_refused():
    p = program("speed")
    registers = block(1, 1, cut__speed=1.1)
    assert p.write(WINDOW.address + 2, 2, registers[2:4], 0.0)[0] == 3
    assert p.write(WINDOW.address, 2, registers[:2], 0.0)[0] == 3
    assert (p.echo, p.accepted, p.frame_seq) == (0, 0, 0)


def test_a_mode_setpoint_is_a_whole_number():
    p = program("mode")
    write(p, block(1, 1, cut__mode=1.4))
    assert p.active["cut.mode"] == 1.0
    assert StatusBit.SP_LIMITED in p.status
    write(p, block(2, 2, cut__mode=2.0))
    assert p.active["cut.mode"] == 2.0
    assert StatusBit.SP_LIMITED not in p.status


def test_a_lever_taken_local_goes_to_the_line_rules_alone_and_comes_back_with_the_next_command():
    p = program("speed", "reorder")
    supply = p.twin._plant.supply  # the twin's runtime state, read for the check only
    write(p, block(1, 1, cut__speed=0.8, press__speed=0.9, line__reorder_units=100.0))
    assert (p.agent_owns, supply.auto_reorder) == (True, False)
    p.hand_lever(Lever.SPEED, remote=False)
    assert p.remote_levers == {Lever.REORDER}
    assert (p.active["cut.speed"], p.active["press.speed"], twin_speed(p)) == (1.0, 1.0, 1.0)  # the line's rule
    assert (p.agent_owns, supply.auto_reorder) == (True, False)  # the reorders stay the agent's
    assert p.active["line.reorder_units"] == 100.0
    assert p.handovers == 1
    write(p, block(2, 2, cut__speed=0.8))
    assert (p.echo, p.active["cut.speed"], twin_speed(p)) == (2, 1.0, 1.0)  # accepted, the speed not taken
    assert StatusBit.SP_LIMITED in p.status
    p.hand_lever(Lever.REORDER, remote=False)
    assert (p.agent_owns, supply.auto_reorder) == (False, True)
    p.hand_lever(Lever.SPEED, remote=True)
    assert not p.agent_owns  # handed back, run by the line's rule until the agent's next command
    write(p, block(3, 3, cut__speed=0.8))
    assert (p.active["cut.speed"], twin_speed(p)) == (pytest.approx(0.8), pytest.approx(0.8))
    assert (p.agent_owns, supply.auto_reorder) == (True, True)  # the reorder lever is still local
    assert StatusBit.SP_LIMITED not in p.status
    with pytest.raises(ValueError, match=r"lever 'mode': this PLC serves levers \['reorder', 'speed'\]"):
        p.hand_lever(Lever.MODE, remote=False)
    p.power_up()  # a restart: the operator's choice stands, the line's rules run every lever
    assert p.remote_levers == {Lever.SPEED}
    assert (p.agent_owns, supply.auto_reorder) == (False, True)
    write(p, block(4, 4, cut__speed=0.9, line__reorder_units=50.0))
    assert (p.active["cut.speed"], p.active["line.reorder_units"]) == (pytest.approx(0.9), 0.0)
    assert supply.auto_reorder


def test_estop_takes_the_levers_and_holds_the_stations_off_through_local_control():
    p = program("speed")
    write(p, block(1, 1, cut__speed=0.8))
    p.operate(estop=True)
    assert not p.agent_owns
    assert p.active["cut.speed"] == 1.0
    p.operate(remote=False)  # local control again while halted must not restart the stations
    t = p.twin.advance(3600.0).time
    while t < 7200.0:
        t = p.twin.advance(7200.0 - t).time
    states = p.twin.read().values[[p.twin.spec.sensor_index(f"{s}.state") for s in p.twin.spec.stations]]
    assert set(states) <= {StationState.OFF, StationState.BLOCKED}


@pytest.mark.parametrize(
    ("levers", "options", "message"),
    [
        (("dispatch",), {}, "levers: the virtual PLC serves setpoint levers"),
        (("speed",), {"mode": "fast"}, "mode: must be one of lockstep, free"),
        (("speed",), {"watchdog_s": 0.0}, "watchdog_s: must be a positive number"),
        (("speed",), {"rate_limits": {"cut.mode": 1.0}}, r"rate_limits\.cut\.mode: expected a positive rate"),
    ],
)
def test_a_program_it_cannot_run_is_refused(levers, options, message):
    with pytest.raises(ValueError, match=message):
        PlcProgram(twin(*levers), MAP, FULL, **options)


def test_faults_combine_and_clear_by_kind():
    faults = FaultSet()
    for fault in (
        Fault(FaultKind.LATE, delay_s=0.2),
        Fault(FaultKind.NAN_SENSOR, sensor="a"),
        Fault(FaultKind.NAN_SENSOR, sensor="b", value=999.0),  # out of range rather than missing
        Fault(FaultKind.RESTART, down_s=1.0),  # an event, not kept
    ):
        faults.add(fault)
    readings = dict(faults.forced)
    assert set(readings) == {"a", "b"}
    assert np.isnan(readings["a"])
    assert readings["b"] == 999.0
    assert faults.has(FaultKind.LATE)
    assert not faults.has(FaultKind.RESTART)
    assert len(faults.active) == 3
    faults.clear(FaultKind.NAN_SENSOR)
    assert not faults.forced
    assert faults.has(FaultKind.LATE)
    faults.clear()
    assert faults.active == ()
    with pytest.raises(ValueError, match="delay_s"):
        Fault(FaultKind.LATE)
    with pytest.raises(ValueError, match="exception code 9"):
        Fault(FaultKind.EXCEPTION, code=9)
    with pytest.raises(ValueError, match="sensor"):
        Fault(FaultKind.NAN_SENSOR)


def test_twin_local_control_takes_and_returns_the_levers():
    line = twin("speed", "mode", "maintenance", "reorder")
    plant = line._plant  # the twin's runtime state, read for the check only
    assert plant is not None
    assert plant.supply is not None
    assert not plant.supply.auto_reorder
    setpoints = np.full(len(line.spec.actuators), math.nan)
    setpoints[line.spec.actuator_index("cut.speed")] = 0.6
    setpoints[line.spec.actuator_index("press.mode")] = 1.0
    line.write(Command(setpoints=setpoints))
    line.local_control(True)
    assert plant.supply.auto_reorder
    assert [st.speed_setpoint for st in plant.stations] == [1.0] * 5
    assert [int(st.mode) for st in plant.stations] == [2] * 5
    assert line.read().values[line.spec.sensor_index("cut.speed_ratio")] == 1.0
    line.local_control(False)
    assert not plant.supply.auto_reorder


def test_twin_halt_switches_every_station_off_and_release_runs_them():
    line = twin()
    line.advance(600.0)
    line.halt(True)
    line.local_control(True)
    frame = line.advance(3 * 3600.0)
    states = frame.values[[line.spec.sensor_index(f"{s}.state") for s in line.spec.stations]]
    assert set(states) <= {StationState.OFF, StationState.BLOCKED}
    assert StationState.OFF in states
    line.halt(False)
    t = frame.time
    while t < frame.time + 3600.0:
        t = line.advance(frame.time + 3600.0 - t).time
    states = line.read().values[[line.spec.sensor_index(f"{s}.state") for s in line.spec.stations]]
    assert StationState.OFF not in states


def test_twin_counters_run_from_time_zero():
    line = twin()
    frame = line.advance(7200.0)
    counters = line.counters()
    assert counters.good_parts == frame.kpis.good_parts > 0
    assert sum(counters.state_time_s) == pytest.approx(5 * 7200.0)


def test_a_limit_as_float32_carries_it_is_not_an_excess():
    top = float(np.float32(1.2))  # slightly above 1.2
    assert top > 1.2
    assert limit_setpoint(top, 1.0, 0.5, 1.2, None, 60.0) == (1.2, False)
    assert limit_setpoint(1.21, 1.0, 0.5, 1.2, None, 60.0) == (1.2, True)


def test_waiting_earns_no_rate_credit_beyond_one_control_period():
    p = program("speed", rate_limits={"cut.speed": 0.001})  # 0.06 per 60 s period
    for seq in range(1, 11):  # ten periods with nothing to change
        write(p, block(seq, seq), wall_s=float(seq))
    write(p, block(11, 11, cut__speed=1.2), wall_s=11.0)
    assert p.active["cut.speed"] == pytest.approx(1.06)
    assert StatusBit.SP_LIMITED in p.status


def test_any_first_sequence_number_is_new_after_power_up():
    p = program("speed")
    write(p, block(5, 0, cut__speed=1.1), wall_s=1.0)
    assert (p.echo, p.accepted) == (0, 1)
    assert p.active["cut.speed"] == F32_1_1
    p.power_up()  # a restart: the PLC forgets the sequence it saw
    write(p, block(6, 0, cut__speed=0.9), wall_s=2.0)
    assert p.accepted == 2
