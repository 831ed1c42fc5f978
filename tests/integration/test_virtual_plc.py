"""The virtual PLC on a real pymodbus server, read and written by a plain pymodbus client.

The client is pymodbus's own `ModbusTcpClient`, not `ModbusLine`: what it reads at the addresses the
default map documents must be the twin's values, and what the PLC does with its writes must follow
the protocol (window allow-list, sequence numbers, limits, watchdog, operator inputs, faults, TLS).
"""

from __future__ import annotations

import math
import re
import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from pymodbus.client import ModbusTcpClient, ModbusTlsClient
from pymodbus.exceptions import ModbusException, ModbusIOException

from hardware.interface import StationState
from hardware.modbus import (
    CommandBlock,
    CommandImage,
    InputImage,
    PlcFrame,
    Role,
    StatusBit,
    TlsFiles,
    client_context,
    default_map,
    load_map,
    make_certs,
    map_from_mapping,
)
from hardware.modbus.maps import setpoint_spec
from hardware.modbus.plc import Fault, FaultKind, VirtualPLC
from hardware.twin import TwinLine
from tests.lines import FLOW5, RELIABLE

HOST = "127.0.0.1"
ORIGIN = 1_764_547_200.0  # 2025-12-01T00:00Z
DEFINITION = yaml.safe_load(FLOW5.read_text())
FULL = setpoint_spec(DEFINITION)
MAP = default_map(FULL)
IMAGE = InputImage(MAP, FULL)
COMMAND = CommandImage(MAP)
WINDOW = MAP.command_window
SENSORS = [s.name for s in FULL.sensors]
ACTUATORS = [a.name for a in FULL.actuators]
STATES = [SENSORS.index(f"{st}.state") for st in FULL.stations]
CUT_SPEED = ACTUATORS.index("cut.speed")
REMOTE_OK = StatusBit.REMOTE | StatusBit.PERMISSIVE


def line(hours: float = 1.0, definition: dict[str, Any] = DEFINITION, levers: tuple[str, ...] = ("speed",)) -> TwinLine:
    """A running flow5 twin (seed 3) that hands the agent `levers`, `hours` into its run."""
    twin = TwinLine.from_definition(definition, seed=3, control={"levers": list(levers)})
    frame = twin.reset()
    while frame.time < hours * 3600.0:
        frame = twin.advance(hours * 3600.0 - frame.time)
    return twin


@contextmanager
def serving(twin: TwinLine, **options: Any) -> Iterator[tuple[VirtualPLC, ModbusTcpClient]]:
    """A started PLC in front of `twin` and a connected client; both closed on exit."""
    with VirtualPLC(twin, options.pop("rmap", MAP), FULL, clock_origin_s=ORIGIN, **options) as plc:
        client = ModbusTcpClient(HOST, port=plc.port, timeout=1.0, retries=0)
        assert client.connect()
        try:
            yield plc, client
        finally:
            client.close()


def read_frame(client: ModbusTcpClient) -> PlcFrame:
    blocks = []
    for b in IMAGE.plan:
        response = client.read_input_registers(b.address, count=b.count, device_id=1)
        assert not response.isError(), response
        blocks.append(response.registers)
    return IMAGE.decode(blocks)


def command(client: ModbusTcpClient, heartbeat: int, sequence: int, setpoints: dict[str, float] | None = None) -> Any:
    """Write a block as any client could: setpoints as given, outside their limits too (the PLC clamps them)."""
    registers = COMMAND.encode(CommandBlock(heartbeat, sequence, np.full(len(COMMAND.names), math.nan)))
    for name, value in (setpoints or {}).items():
        r = MAP.entry(Role.COMMAND, name)
        registers[r.address - WINDOW.address : r.end - WINDOW.address] = r.encoding.encode(value)
    return client.write_registers(WINDOW.address, registers, device_id=1)


def wait_until(condition: Callable[[], bool], timeout_s: float = 2.0) -> float:
    """Poll `condition` until it holds; the seconds it took."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout_s, "condition not met in time"
        time.sleep(0.01)
    return time.monotonic() - start


def f32(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


def test_an_independent_client_reads_the_twin_at_the_documented_addresses():
    with serving(line()) as (plc, client):
        truth = plc.inspect(lambda t: t.read())
        counters = plc.inspect(lambda t: t.counters())
        for i, name in enumerate(SENSORS):
            reg = MAP.entry(Role.SENSOR, name)
            registers = client.read_input_registers(reg.address, count=2, device_id=1).registers
            value = client.convert_from_registers(registers, client.DATATYPE.FLOAT32)
            np.testing.assert_array_equal(f32(value), f32(truth.values[i]), err_msg=name)  # NaN: a dropout
        frame = read_frame(client)
    s = frame.status
    assert truth.time == 3600.0
    assert s.timestamp_s == pytest.approx(ORIGIN + truth.time, abs=1e-3)
    assert s.timestamp_s % 86400.0 == pytest.approx(truth.time % 86400.0, abs=1e-3)
    assert s.status == REMOTE_OK
    assert s.alarms == sum(1 << i for i, k in enumerate(STATES) if truth.values[k] == StationState.DOWN)
    assert {lv.value for lv in s.remote_levers} == {"speed"}
    assert (s.control_period_s, s.command_echo) == (60.0, 0)
    assert s.frame_seq == frame.frame_seq_end == plc.frame_seq
    np.testing.assert_allclose(frame.ages, truth.time - truth.stamps, atol=0.006)
    assert frame.counters == replace(counters, last_completion_s=frame.counters.last_completion_s)
    assert frame.counters.last_completion_s == pytest.approx(ORIGIN + counters.last_completion_s, abs=1e-3)
    assert counters.good_parts > 0
    speeds = [i for i, a in enumerate(FULL.actuators) if a.lever.value == "speed"]
    np.testing.assert_array_equal(frame.active[speeds], 1.0)
    assert np.isnan(np.delete(frame.active, speeds)).all()  # setpoints the twin does not own


def test_a_map_on_device_0_is_refused_naming_the_map_as_pymodbus_would_serve_it_to_every_id():
    data = yaml.safe_load(MAP.to_yaml())
    for r in data["registers"]:
        r["device_id"] = 0
    on_0 = map_from_mapping(data, FULL, "plant_unit0.yaml")  # a valid map: a client may use device 0
    with pytest.raises(
        ValueError,
        match=re.escape(
            "register map plant_unit0.yaml: entry 0 ('heartbeat', status): the virtual PLC cannot serve device_id 0"
        ),
    ):
        VirtualPLC(line(hours=0.0), on_0, FULL)


def test_lockstep_a_command_moves_the_line_one_control_period_and_is_echoed():
    with serving(line()) as (plc, client):
        before = read_frame(client)
        assert not command(client, 1, 1, {"cut.speed": 1.1}).isError()
        after = read_frame(client)  # right after the write: the new frame is already there
        assert after.status.timestamp_s - before.status.timestamp_s == pytest.approx(60.0, abs=1e-3)
        assert plc.inspect(lambda t: t.read().time) == 3660.0
        assert (after.status.command_echo, after.status.frame_seq) == (1, before.status.frame_seq + 1)
        assert after.active[CUT_SPEED] == f32(1.1)
        assert after.values[SENSORS.index("cut.speed_ratio")] == f32(1.1)
        assert not client.write_register(WINDOW.address, 2, device_id=1).isError()  # the heartbeat alone
        assert not command(client, 3, 1, {"cut.speed": 0.9}).isError()  # the same sequence number again
        same = read_frame(client)
        assert same.status.timestamp_s == after.status.timestamp_s
        assert (same.status.command_echo, same.active[CUT_SPEED]) == (1, f32(1.1))
        command(client, 4, 2)  # NaN everywhere: a new command that keeps every setpoint
        last = read_frame(client)
        assert last.status.timestamp_s - after.status.timestamp_s == pytest.approx(60.0, abs=1e-3)
        assert (last.status.command_echo, last.active[CUT_SPEED]) == (2, f32(1.1))
        assert plc.accepted_commands == 2


def test_only_the_whole_window_or_the_heartbeat_may_be_written():
    with serving(line()) as (plc, client):
        command(client, 1, 1, {"cut.speed": 1.1})
        before = read_frame(client)
        window = client.read_holding_registers(WINDOW.address, count=WINDOW.count, device_id=1).registers
        outside = [(WINDOW.address + WINDOW.count, 1), (WINDOW.address, WINDOW.count + 1), (500, 2)]
        for address, count in outside:
            response = client.write_registers(address, [7] * count, device_id=1)
            assert response.exception_code == 2, (address, count)
        assert client.read_holding_registers(WINDOW.count, count=1, device_id=1).exception_code == 2
        assert client.read_coils(0, count=1, device_id=1).exception_code == 2
        assert client.write_coil(0, True, device_id=1).exception_code == 2
        partial = COMMAND.encode(CommandBlock(5, 9, np.full(len(COMMAND.names), 0.7)))[2:6]
        assert client.write_registers(WINDOW.address + 2, partial, device_id=1).exception_code == 3
        whole = COMMAND.encode(CommandBlock(5, 9, np.full(len(COMMAND.names), 0.7)))
        both = client.readwrite_registers(
            read_address=500, read_count=1, write_address=WINDOW.address, values=whole, device_id=1
        )
        assert both.exception_code == 1  # FC23 would land its write before refusing its read
        assert (
            client.mask_write_register(
                address=WINDOW.address + 2, and_mask=0, or_mask=0xFFFF, device_id=1
            ).exception_code
            == 1
        )
        assert client.read_input_registers(0, count=1, device_id=7).exception_code == 11  # no device 7 here
        after = read_frame(client)
        assert client.read_holding_registers(WINDOW.address, count=WINDOW.count, device_id=1).registers == window
        assert after.status.timestamp_s == before.status.timestamp_s
        assert (after.status.command_echo, after.status.frame_seq) == (1, before.status.frame_seq)
        np.testing.assert_array_equal(after.active, before.active)
        assert plc.accepted_commands == 1


def test_a_setpoint_outside_its_range_is_clamped_and_flagged():
    with serving(line()) as (plc, client):
        command(client, 1, 1, {"cut.speed": 5.0, "press.speed": -1.0, "cut.mode": 0.0})
        frame = read_frame(client)
        assert frame.status.status == REMOTE_OK | StatusBit.SP_LIMITED
        assert frame.active[CUT_SPEED] == f32(1.2)  # cnc's top speed
        assert frame.active[ACTUATORS.index("press.speed")] == f32(0.5)
        assert plc.active["cut.speed"] == 1.2
        assert math.isnan(frame.active[ACTUATORS.index("cut.mode")])  # not the twin's lever: ignored
        command(client, 2, 2, {"cut.speed": 1.0})
        frame = read_frame(client)
        assert frame.status.status == REMOTE_OK  # the next command needed no limit
        assert frame.values[STATES[0]] != StationState.OFF
        command(client, 3, 3, {"cut.speed": 1.0, "cut.mode": 0.0})  # a lever the PLC keeps local: not taken
        frame = read_frame(client)
        assert (frame.status.command_echo, frame.status.status) == (3, REMOTE_OK | StatusBit.SP_LIMITED)
        assert math.isnan(frame.active[ACTUATORS.index("cut.mode")])


def rate_limited_map(tmp_path: Path) -> Any:
    """The default map with a rate limit of 0.001 per s on `cut.speed`, as a hand-written file."""
    data = yaml.safe_load(MAP.to_yaml())
    for row in data["registers"]:
        if (row["name"], row["role"]) == ("cut.speed", "command"):
            row["rate_per_s"] = 0.001
    path = tmp_path / "map.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_map(path, FULL)


@pytest.mark.parametrize("source", ["argument", "map"])
def test_a_rate_limit_holds_per_second_of_line_time(tmp_path, source):
    options = {"rate_limits": {"cut.speed": 0.001}} if source == "argument" else {"rmap": rate_limited_map(tmp_path)}
    with serving(line(), **options) as (_, client):  # 0.001 per s: 0.06 per 60 s control period
        expected = [(0.8, 0.94, True), (0.8, 0.88, True), (0.85, 0.85, False), (1.2, 0.91, True)]
        for k, (asked, active, limited) in enumerate(expected, start=1):
            command(client, k, k, {"cut.speed": asked})
            frame = read_frame(client)
            assert frame.active[CUT_SPEED] == pytest.approx(active, abs=1e-6), k
            assert (StatusBit.SP_LIMITED in frame.status.status) is limited, k


def test_the_watchdog_trips_without_heartbeat_and_hands_the_levers_back():
    with serving(line(), mode="free", time_factor=600.0, watchdog_s=0.3) as (plc, client):
        command(client, 1, 1, {"cut.speed": 1.1})
        written = time.monotonic()
        assert read_frame(client).active[CUT_SPEED] == f32(1.1)
        wait_until(lambda: StatusBit.WD_TRIPPED in read_frame(client).status.status)
        assert time.monotonic() - written >= 0.3
        frame = read_frame(client)
        assert frame.active[CUT_SPEED] == 1.0
        assert frame.values[SENSORS.index("cut.speed_ratio")] == 1.0
        assert not plc.agent_in_control
        assert plc.handovers == 1
        command(client, 1, 2, {"cut.speed": 1.1})  # tripped, heartbeat unchanged: refused
        assert read_frame(client).status.command_echo == 1
        client.write_register(WINDOW.address, 2, device_id=1)  # the heartbeat again: the trip clears
        frame = read_frame(client)
        assert StatusBit.WD_TRIPPED not in frame.status.status
        assert frame.active[CUT_SPEED] == 1.0  # bumpless: local setpoints until the next accepted command
        command(client, 3, 3, {"cut.speed": 1.1})
        frame = read_frame(client)
        assert (frame.status.command_echo, frame.active[CUT_SPEED]) == (3, f32(1.1))
        assert plc.agent_in_control
        assert plc.handovers == 1  # taking the levers back is not a handover


@pytest.mark.parametrize(
    ("inputs", "shown"),
    [
        ({"remote": False}, StatusBit.PERMISSIVE),
        ({"permissive": False}, StatusBit.REMOTE),
        ({"estop": True}, REMOTE_OK | StatusBit.ESTOP),
    ],
)
def test_a_command_is_refused_without_remote_and_permissive_or_under_estop(inputs, shown):
    with serving(line()) as (plc, client):
        plc.set_operator(**inputs)
        assert read_frame(client).status.status & ~StatusBit.ALARM == shown
        command(client, 1, 1, {"cut.speed": 1.1})
        frame = read_frame(client)
        assert (frame.status.command_echo, frame.active[CUT_SPEED], plc.accepted_commands) == (0, 1.0, 0)
        assert frame.status.timestamp_s == pytest.approx(ORIGIN + 3660.0, abs=1e-3)  # lockstep time moved on
        plc.set_operator(remote=True, permissive=True, estop=False)
        command(client, 2, 2, {"cut.speed": 1.1})
        frame = read_frame(client)
        assert (frame.status.command_echo, frame.active[CUT_SPEED]) == (2, f32(1.1))


def test_estop_stops_every_station_and_release_runs_them_again():
    reliable = {**DEFINITION, "machines": {k: {**m, **RELIABLE} for k, m in DEFINITION["machines"].items()}}
    with serving(line(definition=reliable)) as (plc, client):
        plc.set_operator(estop=True)
        for k in range(1, 31):  # half an hour of line time
            command(client, k, k)
        stopped = read_frame(client)
        states = stopped.values[STATES]
        assert set(states) <= {StationState.OFF, StationState.BLOCKED}
        assert StationState.OFF in states
        command(client, 31, 31)
        busy = StationState.BUSY
        assert read_frame(client).counters.state_time_s[busy] == stopped.counters.state_time_s[busy]
        plc.set_operator(estop=False)
        for k in range(32, 62):  # longer than the slowest warm-up from off (20 min)
            command(client, k, k)
        running = read_frame(client)
        assert StationState.OFF not in running.values[STATES]
        assert running.counters.state_time_s[busy] > stopped.counters.state_time_s[busy]


def test_a_plc_that_stops_answering_makes_clients_time_out_and_loses_their_writes():
    with serving(line()) as (plc, client):
        hung = ModbusTcpClient(HOST, port=plc.port, timeout=0.3, retries=0)
        assert hung.connect()
        plc.inject(Fault(FaultKind.STOP_ANSWERING))
        start = time.monotonic()
        with pytest.raises(ModbusIOException):
            hung.read_input_registers(0, count=2, device_id=1)
        assert 0.25 < time.monotonic() - start < 1.0
        with pytest.raises(ModbusIOException):
            command(hung, 1, 1, {"cut.speed": 1.1})
        assert plc.running
        plc.clear(FaultKind.STOP_ANSWERING)
        frame = read_frame(client)
        assert (frame.status.command_echo, frame.active[CUT_SPEED]) == (0, 1.0)
        hung.close()


def test_late_and_exception_faults_combine():
    with serving(line()) as (plc, client):
        plc.inject(Fault(FaultKind.LATE, delay_s=0.3))
        start = time.monotonic()
        read_frame(client)  # one request per read block, each 0.3 s late
        assert time.monotonic() - start >= 0.3 * len(IMAGE.plan)
        plc.inject(Fault(FaultKind.EXCEPTION, code=4))
        start = time.monotonic()
        response = client.read_input_registers(0, count=2, device_id=1)
        assert response.isError()
        assert response.exception_code == 4
        assert time.monotonic() - start >= 0.3
        plc.clear(FaultKind.LATE)
        written = command(client, 1, 1, {"cut.speed": 1.1})
        assert written.isError()
        assert written.exception_code == 4
        plc.clear()
        frame = read_frame(client)
        assert (frame.status.command_echo, frame.active[CUT_SPEED]) == (0, 1.0)  # the refused write did nothing


def test_a_frozen_heartbeat_stands_still_while_the_line_runs_on():
    with serving(line(), mode="free", time_factor=600.0) as (plc, client):
        plc.inject(Fault(FaultKind.FROZEN_HEARTBEAT))
        first = read_frame(client).status
        time.sleep(0.15)
        second = read_frame(client).status
        assert second.heartbeat == first.heartbeat
        assert second.timestamp_s > first.timestamp_s
        assert second.frame_seq > first.frame_seq
        plc.clear()
        wait_until(lambda: read_frame(client).status.heartbeat > second.heartbeat)


def test_a_nan_sensor_reads_nan_until_cleared():
    wip = SENSORS.index("line.wip_parts")  # never drops out
    with serving(line()) as (plc, client):
        truth = plc.inspect(lambda t: t.read().values)
        with pytest.raises(ValueError, match="no sensor"):
            plc.inject(Fault(FaultKind.NAN_SENSOR, sensor="cut.vibration"))
        plc.inject(Fault(FaultKind.NAN_SENSOR, sensor="line.wip_parts"))
        values = read_frame(client).values
        assert math.isnan(values[wip])
        assert truth[wip] > 0
        np.testing.assert_array_equal(np.delete(values, wip), f32(np.delete(truth, wip)))
        plc.clear(FaultKind.NAN_SENSOR)
        assert read_frame(client).values[wip] == truth[wip]


def test_a_reading_its_register_cannot_carry_is_refused_and_the_plc_scans_on():
    with serving(line(), mode="free", time_factor=60.0) as (plc, client):
        with pytest.raises(
            ValueError,
            match=r"^sensor 'cut.vibration_mm_s' cannot read 1e\+39: its float32 register carries "
            r"-3.40282e\+38 to 3.40282e\+38$",
        ):
            plc.inject(Fault(FaultKind.NAN_SENSOR, sensor="cut.vibration_mm_s", value=1e39))
        assert plc.faults == ()
        before = read_frame(client).status
        wait_until(lambda: read_frame(client).status.heartbeat >= before.heartbeat + 5)
        assert (plc.running, plc.failure) == (True, None)


def test_a_scan_that_cannot_publish_halts_the_plc_and_takes_it_off_the_network(monkeypatch):
    """Not a PLC that answers with a frame that stands still while it looks up."""

    def unpublishable(new: bool, forced: frozenset[tuple[str, float]] = frozenset()) -> Any:
        raise ValueError("value 1e+39 is outside the float32 encoding's range")

    with serving(line(), mode="free", time_factor=60.0) as (plc, _):
        port = plc.port
        monkeypatch.setattr(plc.program, "registers", unpublishable)
        wait_until(lambda: not plc.running)
        failure = "the scan failed: ValueError: value 1e+39 is outside the float32 encoding's range"
        assert plc.failure == failure
        assert not ModbusTcpClient(HOST, port=port, timeout=0.3, retries=0).connect()
        for order in (plc.clear, lambda: plc.inject(Fault(FaultKind.RESTART, down_s=0.0))):
            with pytest.raises(RuntimeError, match=re.escape(f"the virtual PLC halted ({failure}): stop it and start")):
                order()
        time.sleep(0.1)
        assert not plc.running


def test_a_restart_comes_back_on_the_same_port_with_its_state_reset():
    with serving(line(), mode="free", time_factor=60.0) as (plc, client):
        command(client, 1, 1, {"cut.speed": 1.1})
        wait_until(lambda: read_frame(client).status.heartbeat > 20)
        before = read_frame(client).status
        assert plc.agent_in_control
        handovers = plc.handovers
        port = plc.port
        plc.inject(Fault(FaultKind.RESTART, down_s=0.5))
        assert not plc.running
        assert not ModbusTcpClient(HOST, port=port, timeout=0.3, retries=0).connect()
        wait_until(lambda: plc.running, timeout_s=3.0)
        fresh = ModbusTcpClient(HOST, port=port, timeout=1.0, retries=0)
        assert fresh.connect()
        frame = read_frame(fresh)
        s = frame.status
        assert s.heartbeat < 20
        assert s.frame_seq < 20
        assert s.command_echo == 0
        assert s.timestamp_s - before.timestamp_s >= 0.5 * 60.0  # the machine ran on while the PLC was down
        assert frame.active[CUT_SPEED] == 1.0
        assert not plc.agent_in_control
        assert plc.handovers == handovers + 1
        command(fresh, 1, 1, {"cut.speed": 1.1})  # the PLC forgot the last sequence number: 1 is new
        assert read_frame(fresh).status.command_echo == 1
        fresh.close()


def test_tls_serves_a_client_with_a_certificate_and_nobody_else(tmp_path):
    certs = make_certs(tmp_path / "plant")
    stranger = make_certs(tmp_path / "stranger").client  # signed by another CA
    with VirtualPLC(line(hours=0.0), MAP, FULL, tls=certs.server) as plc:
        good = ModbusTlsClient(HOST, port=plc.port, sslctx=client_context(certs.client), timeout=1.0, retries=0)
        assert good.connect()
        assert read_frame(good).status.status == REMOTE_OK
        good.close()
        anonymous = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        anonymous.check_hostname = False
        anonymous.load_verify_locations(certs.ca)
        contexts = [anonymous, client_context(TlsFiles(stranger.cert, stranger.key, certs.ca))]
        clients: list[ModbusTcpClient] = [
            ModbusTlsClient(HOST, port=plc.port, sslctx=ctx, timeout=0.5, retries=0) for ctx in contexts
        ]
        clients.append(ModbusTcpClient(HOST, port=plc.port, timeout=0.5, retries=0))  # no TLS at all
        for client in clients:
            client.connect()  # may succeed: TLS 1.3 finishes the handshake before the server checks the client
            with pytest.raises(ModbusException):
                client.read_input_registers(0, count=2, device_id=1)
            client.close()
