"""`ModbusLine` and the virtual PLC at the edges of their registers, on loopback.

A real PLC's counters run over their register's whole range and wrap (a scan counter through 65535
to 0, a uint16 parts meter through 65535); an age timer reads missing before the first sample; a
hand-written map carries a setpoint on a coarse grid. The fake PLC of `test_modbus_line` publishes
its frame and then lets a test set raw registers as such a PLC would.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import yaml
from pymodbus.client import ModbusTcpClient

from hardware import Command
from hardware.counters import window_kpis
from hardware.guard import Guard, GuardConfig, GuardedLine, Interlock
from hardware.modbus import (
    CommandBlock,
    CommandImage,
    InputImage,
    ModbusLineError,
    RegisterMap,
    Role,
    default_map,
    map_from_mapping,
)
from hardware.modbus.client import ModbusLine
from hardware.modbus.maps import setpoint_spec
from hardware.modbus.plc import VirtualPLC
from hardware.twin import TwinLine
from tests.integration.test_modbus_line import FAST, FULL, HOST, MAP, PERIOD_S, T0, FakePlc, task_spec
from tests.lines import FLOW5

Patch = Callable[[FakePlc, list[int]], None]


class RawPlc(FakePlc):
    """The fake PLC on any map, with `patch(plc, registers)` applied to the input registers it publishes."""

    def __init__(self, loop: asyncio.AbstractEventLoop, rmap: RegisterMap = MAP, patch: Patch | None = None) -> None:
        self.patch = patch
        super().__init__(loop)
        self.image = InputImage(rmap, FULL)
        self.commands = CommandImage(rmap)
        self.publish()

    def publish(self) -> None:
        """Encode the frame, then set what `patch` sets."""
        super().publish()
        if self.patch is not None:
            self.patch(self, self.inputs)


@pytest.fixture
def serve(loop: asyncio.AbstractEventLoop) -> Iterator[Callable[..., tuple[RawPlc, Callable[..., ModbusLine]]]]:
    """Serve a `RawPlc`; its lines (task spec, `FAST` options unless given) are closed afterwards."""
    plcs: list[RawPlc] = []
    lines: list[ModbusLine] = []

    def start(rmap: RegisterMap = MAP, patch: Patch | None = None) -> tuple[RawPlc, Callable[..., ModbusLine]]:
        plc = RawPlc(loop, rmap, patch)
        port = plc.serve()
        plcs.append(plc)

        def connect(spec: Any = None, **options: Any) -> ModbusLine:
            line = ModbusLine(spec or task_spec(), rmap, HOST, port, **{**FAST, **options})
            lines.append(line)
            return line

        return plc, connect

    yield start
    for line in lines:
        line.close()
    for plc in plcs:
        plc.stop()


def hand_written(change: Callable[[dict[str, Any]], None]) -> RegisterMap:
    """The fake line's default map as a YAML file would carry it, with `change` made to its rows."""
    data = yaml.safe_load(MAP.to_yaml())
    for row in data["registers"]:
        change(row)
    return map_from_mapping(data, FULL, "plant_map.yaml")


def test_a_sensor_whose_age_reads_missing_has_no_stamp_and_the_guard_calls_it_stale(serve):
    age = MAP.entry(Role.AGE, "a.vibration").address
    vib = FULL.sensor_index("a.vibration")

    def never_sampled(plc: FakePlc, registers: list[int]) -> None:
        registers[age] = 0xFFFF  # the uint16 age timer reads missing

    _, connect = serve(patch=never_sampled)
    line = connect(spec=FULL)
    frame = line.reset()
    assert math.isnan(frame.stamps[vib])
    others = [i for i in range(len(FULL.sensors)) if i != vib]
    np.testing.assert_allclose(frame.stamps[others], [T0, T0, T0 - 1.5], rtol=0, atol=1e-6)
    keep = np.full(len(FULL.actuators), np.nan)
    verdict = Guard(FULL, GuardConfig(max_data_age_s=5.0)).check(keep, frame, line.status(), time.time())
    assert verdict.reasons == ("gate:stale_data",)
    assert verdict.setpoints is None  # nothing but the heartbeat goes out

    no_age = tuple(r for r in MAP.registers if r.key != (Role.AGE, "a.vibration"))
    _, connect = serve(RegisterMap(MAP.line, no_age, "map without the age"), patch=never_sampled)
    line = connect(spec=FULL)
    frame = line.reset()
    assert frame.stamps[vib] == pytest.approx(T0, abs=1e-6)  # no age in the map: the frame's time
    assert Guard(FULL, GuardConfig(max_data_age_s=5.0)).check(keep, frame, line.status(), time.time()).reasons == ()


def test_the_plc_heartbeat_and_frame_sequence_wrap_through_their_top_value(serve):
    heartbeat = MAP.entry(Role.STATUS, "heartbeat").address

    def uint_counter(plc: FakePlc, registers: list[int]) -> None:
        registers[heartbeat] = plc.heartbeat % 0x10000  # a PLC's UINT scan counter: 65535, then 0

    plc, connect = serve(patch=uint_counter)
    plc.heartbeat = 65532
    line = connect()
    line.reset()
    seen = []
    for _ in range(5):
        line.read()
        seen.append(line.plc_status.heartbeat)
    assert seen == [65534, 65535, 0, 1, 2]  # each frame read bumps the fake's scan counter once

    ends = [MAP.entry(Role.STATUS, n).address for n in ("frame_seq", "frame_seq_end")]

    def top_sequence(plc: FakePlc, registers: list[int]) -> None:
        for at in ends:
            registers[at : at + 2] = [0xFFFF, 0xFFFF]  # a UDINT frame counter just before it wraps

    _, connect = serve(patch=top_sequence)
    line = connect()
    line.reset()
    assert line.plc_status.frame_seq == line.plc_frame.frame_seq_end == 0xFFFFFFFF


def test_the_agent_heartbeat_and_the_command_sequence_wrap_through_65535(serve):
    plc, connect = serve()
    plc.echo = plc.last_sequence = 65534  # the PLC accepted 65534 last
    writer = ModbusTcpClient(HOST, port=plc.server.transport.sockets[0].getsockname()[1], timeout=1.0, retries=0)
    assert writer.connect()
    try:
        assert not writer.write_registers(0, [65534], device_id=1).isError()  # the window holds heartbeat 65534
    finally:
        writer.close()
    line = connect()
    line.reset()
    line.heartbeat()
    line.heartbeat()
    keep = np.full(len(task_spec().actuators), np.nan)
    line.write(Command(setpoints=keep))
    assert plc.echo == 65535
    line.write(Command(setpoints=keep))
    assert plc.echo == 1  # past 65535 the sequence skips 0, which a PLC holds at power-up
    writes = plc.writes()[1:]
    assert [w[2] for w in writes[:2]] == [[65535], [0]]  # heartbeat alone: 65535, then 0
    blocks = [CommandImage(MAP).decode(w[2]) for w in writes[2:]]
    assert [(b.heartbeat, b.sequence) for b in blocks] == [(1, 65535), (2, 1)]


def test_the_virtual_plc_takes_an_agent_heartbeat_and_a_sequence_of_65535():
    definition = yaml.safe_load(FLOW5.read_text())
    full = setpoint_spec(definition)
    rmap = default_map(full)
    twin = TwinLine.from_definition(definition, seed=3, control={"levers": ["speed"]})
    twin.reset()
    block = CommandImage(rmap).encode(CommandBlock(1, 1, np.full(len(rmap.setpoints), np.nan)))
    with VirtualPLC(twin, rmap, full, clock_origin_s=T0) as plc:
        client = ModbusTcpClient(HOST, port=plc.port, timeout=1.0, retries=0)
        assert client.connect()
        try:
            for beat in (65534, 65535, 0):
                assert not client.write_register(0, beat, device_id=1).isError(), beat  # FC6, heartbeat alone
            reply = client.write_registers(0, [65535, 65535, *block[2:]], device_id=1)  # a third-party agent's block
            assert not reply.isError()
            assert plc.command_echo == 65535
            frame = InputImage(rmap, full).decode(
                [client.read_input_registers(b.address, count=b.count, device_id=1).registers for b in rmap.read_plan()]
            )
        finally:
            client.close()
    assert frame.status.command_echo == 65535


def test_a_narrow_kpi_counter_is_unwrapped_so_kpis_keep_counting(serve):
    def uint16(row: dict[str, Any]) -> None:
        if (row["role"], row["name"]) == ("counter", "good_parts"):
            row["type"] = "uint16"
            row.pop("word_order", None)

    rmap = hand_written(uint16)
    parts = rmap.entry(Role.COUNTER, "good_parts").address
    offset = 65535 - 97 - 3  # the PLC's meter reads 65535 after one period, then wraps

    def meter(plc: FakePlc, registers: list[int]) -> None:
        registers[parts] = (plc.counters.good_parts + offset) % 0x10000

    plc, connect = serve(rmap, meter)
    line = connect()
    frames = [line.reset()]
    raw = []
    for _ in range(4):
        line.write(Command(setpoints=np.full(len(task_spec().actuators), np.nan)))
        frames.append(line.advance(PERIOD_S))
        raw.append(line.plc_frame.counters.good_parts)
    assert raw == [65535, 2, 5, 8]  # as read: at the top, then wrapped
    assert [f.kpis.good_parts for f in frames] == [0, 3, 6, 9, 12]
    assert frames[-1].kpis.throughput_per_h == pytest.approx(180.0)
    assert [f.counters.good_parts for f in frames] == [65532, 65535, 65538, 65541, 65544]
    assert window_kpis(frames[1], frames[3], 2).good_parts == 6  # a window across the wrap
    assert plc.counters.good_parts == 97 + 12


def coarse_speed(row: dict[str, Any]) -> None:
    """a.speed's command register on a grid of 0.007: 0.5 is 71.4 steps (71 is 0.497), 0.9 is 128.57 (129 is 0.903)."""
    if (row["role"], row["name"]) == ("command", "a.speed"):
        row.update(type="uint32", scale=0.007)


def test_a_setpoint_on_a_coarse_grid_is_written_inside_its_limits(serve):
    rmap = hand_written(coarse_speed)
    plc, connect = serve(rmap)
    line = connect()
    line.reset()
    speed = FULL.actuator_index("a.speed")
    written = []
    for value in (0.5, 1.0, 1.5):
        setpoints = np.full(len(task_spec().actuators), np.nan)
        setpoints[task_spec().actuator_index("a.speed")] = value
        line.write(Command(setpoints=setpoints))
        written.append(plc.active[speed])
    assert written == pytest.approx([72 * 0.007, 143 * 0.007, 214 * 0.007])  # 0.504, 1.001, 1.498
    assert all(0.5 <= v <= 1.5 for v in written)


def test_a_setpoint_held_to_a_tripped_interlock_is_written_inside_its_bound_on_a_coarse_grid(serve):
    rmap = hand_written(coarse_speed)
    plc, connect = serve(rmap)
    line = connect()
    frame = line.reset()
    spec = task_spec()
    vibration = Interlock(sensor="a.vibration", actuator="a.speed", below=1e9, max=0.9)  # tripped by any reading
    verdict = Guard(spec, GuardConfig(interlocks=[vibration])).check(
        np.array([1.2, math.nan, math.nan, math.nan]), frame, line.status(), time.time()
    )
    assert verdict.setpoints is not None
    assert verdict.setpoints[spec.actuator_index("a.speed")] == 0.9
    line.write(Command(setpoints=verdict.setpoints, bounds=verdict.bounds))
    assert plc.active[FULL.actuator_index("a.speed")] == pytest.approx(128 * 0.007)  # 0.896, not 0.903


def test_bounds_no_register_value_lies_inside_refuse_the_command_and_send_nothing(serve):
    rmap = hand_written(coarse_speed)
    plc, connect = serve(rmap)
    line = connect()
    line.reset()
    setpoints = np.array([1.0, math.nan, math.nan, math.nan])
    pinned = (np.array([1.0, 0.0, 0.5, 0.0]), np.array([1.0, 2.0, 1.5, 2.0]))  # 1.0 lies between 0.994 and 1.001
    echo = plc.echo
    with pytest.raises(ModbusLineError, match=r"command not sent: no uint32 value .* lies inside \[1, 1\]"):
        line.write(Command(setpoints=setpoints, bounds=pinned))
    assert plc.echo == echo
    line.write(Command(setpoints=setpoints))  # the numbering goes on as if nothing was tried
    assert plc.echo != echo


def test_a_guarded_line_over_modbus_writes_inside_a_tripped_interlock_on_a_coarse_grid(serve):
    rmap = hand_written(coarse_speed)
    plc, connect = serve(rmap)
    vibration = Interlock(sensor="a.vibration", actuator="a.speed", below=1e9, max=0.9)  # tripped by any reading
    line = GuardedLine(connect(), Guard(task_spec(), GuardConfig(interlocks=[vibration])))
    line.reset()
    line.write(Command(setpoints=np.array([1.2, math.nan, math.nan, math.nan])))
    assert plc.active[FULL.actuator_index("a.speed")] == pytest.approx(128 * 0.007)  # 0.896, not 0.903


class Forwarding:
    """A decorator line of the kind a deployment stacks (a recorder, a rate limiter): it passes every call on."""

    def __init__(self, line: ModbusLine) -> None:
        self.line = line

    def __getattr__(self, name: str) -> Any:
        """The wrapped line's attribute."""
        return getattr(self.line, name)


def test_a_guard_over_a_decorated_modbus_line_still_writes_inside_the_interlock_on_a_coarse_grid(serve):
    rmap = hand_written(coarse_speed)
    plc, connect = serve(rmap)
    vibration = Interlock(sensor="a.vibration", actuator="a.speed", below=1e9, max=0.9)  # tripped by any reading
    line = GuardedLine(Forwarding(connect()), Guard(task_spec(), GuardConfig(interlocks=[vibration])))
    line.reset()
    line.write(Command(setpoints=np.array([1.2, math.nan, math.nan, math.nan])))
    assert plc.active[FULL.actuator_index("a.speed")] == pytest.approx(128 * 0.007)  # the bounds travel in the command


@pytest.mark.parametrize(
    ("bounds", "match"),
    [
        ((np.zeros(3), np.ones(3)), r"bounds: low of shape \(3,\), expected \(4,\)"),
        ((np.zeros(4),), r"bounds: expected a \(low, high\) pair"),
        ((np.full(4, 2.0), np.ones(4)), r"bounds: a.speed = \[2.0, 1.0\] is not a range"),
        ((np.zeros(4), np.array([2.0, math.nan, 2.0, 2.0])), r"bounds: a.mode = \[0.0, nan\] is not a range"),
    ],
)
def test_malformed_bounds_are_refused_by_name_and_send_nothing(serve, bounds, match):
    plc, connect = serve(hand_written(coarse_speed))
    line = connect()
    line.reset()
    echo = plc.echo
    with pytest.raises(ValueError, match=match):
        line.write(Command(setpoints=np.array([1.0, math.nan, math.nan, math.nan]), bounds=bounds))
    assert plc.echo == echo
