"""`ModbusLine` against a small fake PLC on loopback: frames, commands, echoes and every way the link fails.

The fake PLC publishes `PlcFrame`s through `InputImage` (as the virtual PLC does), answers reads from
them, and in lockstep steps its clock one control period per accepted new sequence number.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer, ModbusTlsServer
from pymodbus.simulator import DataType, SimData, SimDevice

from hardware import ActuatorSpec, Command, Decision, DecisionKind, Dispatch, Kpis, Lever, LineSpec, SensorSpec
from hardware.counters import Counters, derive_kpis
from hardware.interface import StationState
from hardware.modbus import (
    CommandBlock,
    CommandImage,
    InputImage,
    PlcFrame,
    PlcStatus,
    RegisterMap,
    Role,
    StatusBit,
    default_map,
    make_certs,
    server_context,
)
from hardware.modbus.client import ModbusLine
from hardware.modbus.errors import (
    AnotherController,
    BadFrame,
    CommandNotAccepted,
    IncompatiblePlc,
    LeverLocal,
    ModbusDisconnected,
    ModbusException,
    ModbusTimeout,
    StaleData,
)

HOST = "127.0.0.1"
PERIOD_S = 60.0
T0 = 1_764_547_200.0  # the fake PLC's clock at the start, s since the epoch
STALE_AFTER = r"(0\.[3-9]|1\.[0-4])\d s"  # what a 0.3 s stale bound reports: the bound and a poll, on a loaded machine
READY = StatusBit.REMOTE | StatusBit.PERMISSIVE
SETPOINT_LEVERS = frozenset({Lever.SPEED, Lever.MODE, Lever.MAINTENANCE, Lever.REORDER})
TASK_LEVERS = frozenset({Lever.SPEED, Lever.MODE})
FAST = {
    "timeout_s": 1.0,  # a loopback answer never takes this long, even on a loaded machine; timeout tests set their own
    "read_retries": 1,
    "echo_timeout_s": 0.2,
    "heartbeat_timeout_s": 0.3,
    "reconnect_backoff_s": (0.05, 0.2),
    "poll_s": 0.002,
    "sequence_origin": "echo",  # numbered on from the echo: the tests read the sequence numbers written
}


def full_spec() -> LineSpec:
    """A two-station line with every setpoint lever, actuators in the twin's order."""
    actuators = []
    for i, st in enumerate(("a", "b")):
        actuators += [
            ActuatorSpec(f"{st}.speed", "ratio", 0.5, 1.5, 1.0, Lever.SPEED, i),
            ActuatorSpec(f"{st}.mode", "0 off/1 standby/2 run", 0.0, 2.0, 2.0, Lever.MODE, i),
            ActuatorSpec(f"{st}.maintain", "request", 0.0, 1.0, 0.0, Lever.MAINTENANCE, i),
        ]
    actuators.append(ActuatorSpec("line.reorder_units", "units", 0.0, 500.0, 0.0, Lever.REORDER))
    sensors = (
        SensorSpec("a.state", "code", 0.0, 8.0, 0),
        SensorSpec("a.vibration", "mm/s", 0.0, 50.0, 0, dropouts=True),
        SensorSpec("b.state", "code", 0.0, 8.0, 1),
        SensorSpec("line.power_kw", "kW", 0.0, 100.0),
    )
    return LineSpec("fake", ("a", "b"), ("A",), sensors, tuple(actuators), SETPOINT_LEVERS, PERIOD_S)


def task_spec(levers: frozenset[Lever] = TASK_LEVERS) -> LineSpec:
    """The line as a task sees it: only the actuators of its levers."""
    full = full_spec()
    return dataclasses.replace(full, actuators=tuple(a for a in full.actuators if a.lever in levers), levers=levers)


FULL = full_spec()
MAP = default_map(FULL)


class FakePlc:
    """A PLC in a few lines: `publish` encodes its state with `InputImage`; writes go through `action`."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.image = InputImage(MAP, FULL)
        self.commands = CommandImage(MAP)
        self.status = READY
        self.remote = SETPOINT_LEVERS
        self.period_s = PERIOD_S
        self.time_s = T0
        self.heartbeat = 0
        self.frame_seq = 1
        self.echo = 0
        self.last_sequence = 0
        self.values = np.array([4.0, 1.2345678, 3.0, 17.3])
        self.ages = np.array([0.0, 0.25, 0.0, 1.5])
        self.active = np.array([a.default for a in FULL.actuators])
        self.counters = Counters(
            jobs_released=120, jobs_done=100, good_parts=97, scrap_parts=3, energy_kwh=812.5, wip_parts=4,
            state_time_s=(0.0, 0.0, 60.0, 900.0, 30_000.0, 250.0, 400.0, 0.0, 0.0), operations=210,
            scrapped_operations=3, ideal_busy_s=28_000.0, last_completion_s=T0 - 30.0,
        )  # fmt: skip
        self.lockstep = True  # a new accepted sequence steps the clock one control period
        self.local_on_command: frozenset[Lever] = frozenset()  # levers the operator takes local as a command arrives
        self.frozen = False  # the scan counter stands still
        self.tear = 0  # frame reads still to tear by publishing between the requests of one read
        self.hang_s = 0.0  # every request waits this long before it is answered
        self.refuse: dict[int, ExcCodes] = {}  # function code -> exception response
        self.requests: list[tuple[int, int, int, list[int] | None]] = []  # function code, address, count, values
        self.server: ModbusTcpServer | None = None
        self.inputs: list[int] = []
        self.publish()

    def frame(self) -> PlcFrame:
        """What the PLC publishes now."""
        status = PlcStatus(
            self.heartbeat, self.frame_seq, self.time_s, self.status, 0, self.remote, self.echo, self.period_s
        )
        return PlcFrame(status, self.values, self.ages, self.active, self.counters, self.frame_seq)

    def publish(self) -> None:
        """Encode the frame into the whole input table."""
        flat = [0] * sum(b.count for b in self.image.plan)
        for block, regs in zip(self.image.plan, self.image.encode(self.frame()), strict=True):
            flat[block.address : block.address + block.count] = regs
        self.inputs = flat

    def step(self) -> None:
        """One control period of a busy two-station line: 3 good parts, energy, busy time."""
        c = self.counters
        states = list(c.state_time_s)
        states[StationState.BUSY] += 100.0
        states[StationState.IDLE] += 20.0
        self.time_s += self.period_s
        self.frame_seq += 1
        self.counters = dataclasses.replace(
            c, jobs_done=c.jobs_done + 3, good_parts=c.good_parts + 3, operations=c.operations + 6,
            energy_kwh=c.energy_kwh + 0.75, ideal_busy_s=c.ideal_busy_s + 90.0, flow_time_sum_s=300.0,
            state_time_s=tuple(states), last_completion_s=self.time_s - 5.0,
        )  # fmt: skip

    async def action(
        self, fc: int, start: int, address: int, count: int, registers: list[int], values: Any
    ) -> ExcCodes | None:
        """Log every request; scan, tear, hang or refuse as told; act on a command block."""
        self.requests.append((fc, address, count, None if values is None else list(values)))
        if self.hang_s:
            await asyncio.sleep(self.hang_s)
        if fc in self.refuse:
            return self.refuse[fc]
        if fc == 4:
            if address == self.image.plan[0].address and not self.frozen:
                self.heartbeat += 1
            elif address != self.image.plan[0].address and self.tear:
                self.tear -= 1
                self.frame_seq += 1
            self.publish()
            registers[:] = self.inputs
        elif fc == 16 and count == self.commands.window.count:
            self.command(self.commands.decode(values))
        return None

    def command(self, block: CommandBlock) -> None:
        """Act on a new sequence number when remote control is permitted: echo it, apply, step."""
        if block.sequence == self.last_sequence:
            return
        self.last_sequence = block.sequence
        self.remote -= self.local_on_command
        if (
            StatusBit.REMOTE not in self.status
            or StatusBit.PERMISSIVE not in self.status
            or StatusBit.ESTOP in self.status
        ):
            return
        self.echo = block.sequence
        for name, v in zip(self.commands.names, block.setpoints.tolist(), strict=True):
            if not np.isnan(v):
                self.active[FULL.actuator_index(name)] = v
        if self.lockstep:
            self.step()
        self.publish()

    def writes(self) -> list[tuple[int, int, list[int] | None]]:
        """The FC16 requests so far: address, count, registers."""
        return [(address, count, values) for fc, address, count, values in self.requests if fc == 16]

    def serve(self, port: int = 0, sslctx: ssl.SSLContext | None = None) -> int:
        """Start serving on `port` (0: any free one); return the port."""
        window = self.commands.window
        bits = [SimData(0, values=False, datatype=DataType.BITS)]
        holding = [SimData(window.address, count=window.count, values=0, datatype=DataType.REGISTERS)]
        inputs = [SimData(0, count=len(self.inputs), values=0, datatype=DataType.REGISTERS)]
        device = SimDevice(1, simdata=(bits, list(bits), holding, inputs), action=self.action)

        async def start() -> ModbusTcpServer:
            server = (
                ModbusTcpServer(device, address=(HOST, port))
                if sslctx is None
                else ModbusTlsServer(device, address=(HOST, port), sslctx=sslctx)
            )
            await server.serve_forever(background=True)
            return server

        self.server = asyncio.run_coroutine_threadsafe(start(), self.loop).result(5)
        return int(self.server.transport.sockets[0].getsockname()[1])

    def stop(self) -> None:
        """Shut the server down (it closes its connections)."""
        if self.server is not None:
            asyncio.run_coroutine_threadsafe(self.server.shutdown(), self.loop).result(5)
            self.server = None


@pytest.fixture
def plc(loop: asyncio.AbstractEventLoop) -> Iterator[FakePlc]:
    fake = FakePlc(loop)
    yield fake
    fake.stop()


@pytest.fixture
def connect(plc: FakePlc) -> Iterator[Callable[..., ModbusLine]]:
    """Serve the fake PLC and make lines attached to it (closed afterwards)."""
    port = plc.serve()
    lines: list[ModbusLine] = []

    def make(spec: LineSpec | None = None, rmap: RegisterMap = MAP, **options: Any) -> ModbusLine:
        line = ModbusLine(spec or task_spec(), rmap, HOST, port, **{**FAST, **options})
        lines.append(line)
        return line

    yield make
    for line in lines:
        line.close()


def f32(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=np.float32).astype(np.float64)


def assert_kpis(actual: Kpis, expected: Kpis) -> None:
    for name in Kpis.names():
        assert getattr(actual, name) == pytest.approx(getattr(expected, name), rel=1e-9, abs=1e-9, nan_ok=True), name


def where(plc: FakePlc, table: str, address: int, count: int) -> str:
    return f"{HOST}:{plc.server.transport.sockets[0].getsockname()[1]} device 1 {table} {address}-{address + count - 1}"


def test_reset_decodes_exactly_what_the_plc_published_in_the_fewest_requests(plc, connect):
    line = connect()
    frame = line.reset(seed=123)
    assert frame.time == pytest.approx(T0, abs=1e-6)
    np.testing.assert_array_equal(frame.values, f32(plc.values))  # NaN where the sensor dropped out
    plc.values[1] = np.nan
    plc.ages[1] = np.nan
    frame = line.read()
    np.testing.assert_array_equal(frame.values, f32(plc.values))
    np.testing.assert_allclose(frame.stamps, [T0, np.nan, T0, T0 - 1.5], rtol=0, atol=1e-6)  # age missing: no stamp
    assert frame.pending == ()
    assert frame.jobs is None
    assert_kpis(frame.kpis, derive_kpis(Counters(wip_parts=4), 0.0, 2))
    status = line.plc_status
    assert status is not None
    assert (status.frame_seq, status.command_echo, status.status) == (1, 0, READY)
    assert status.remote_levers == SETPOINT_LEVERS
    active = line.plc_frame.active
    np.testing.assert_array_equal(active, [1.0, 2.0, 1.0, 2.0])  # a.speed, a.mode, b.speed, b.mode
    plan = InputImage(MAP, FULL).plan
    assert len(plan) >= 2
    reads = [(fc, a, n) for fc, a, n, _ in plc.requests if fc == 4]
    assert reads == [(4, b.address, b.count) for b in plan] * 2  # one request per block, per frame
    assert [(fc, a, n) for fc, a, n, _ in plc.requests if fc == 3] == [(3, 0, 2)]  # the window's header, once


def test_a_command_is_one_fc16_block_echoed_and_a_lockstep_advance_derives_kpis(plc, connect):
    line = connect()
    start = plc.counters
    line.reset()
    line.write(Command(setpoints=np.array([1.2, 2.0, np.nan, 1.0])))
    window = CommandImage(MAP).window
    expected = CommandBlock(1, 1, np.array([1.2, 2.0, np.nan, np.nan, 1.0, np.nan, np.nan]))
    assert plc.writes() == [(window.address, window.count, CommandImage(MAP).encode(expected))]
    assert plc.echo == 1
    frame = line.advance(PERIOD_S)
    assert len(plc.writes()) == 1  # the written block moved the line; advance added none
    assert frame.time == pytest.approx(T0 + PERIOD_S, abs=1e-6)
    assert frame.pending == (Decision(DecisionKind.TICK),)
    assert frame.kpis.good_parts == 3
    assert frame.kpis.jobs_done == 3
    assert_kpis(frame.kpis, derive_kpis(plc.counters.since(start, T0), PERIOD_S, 2))
    assert frame.kpis.last_completion_s == pytest.approx(PERIOD_S - 5.0, abs=1e-6)
    np.testing.assert_array_equal(line.plc_frame.active, f32([1.2, 2.0, 1.0, 1.0]))  # b.speed kept
    frame = line.advance(PERIOD_S)  # no write: a keep block steps the line
    keep = CommandImage(MAP).decode(plc.writes()[-1][2])
    assert (keep.heartbeat, keep.sequence, np.isnan(keep.setpoints).all()) == (2, 2, True)
    assert frame.time == pytest.approx(T0 + 2 * PERIOD_S, abs=1e-6)
    assert frame.kpis.good_parts == 6
    after = line.read()
    assert (after.seq, after.pending) == (frame.seq + 1, (Decision(DecisionKind.TICK),))  # pending carried over


def test_a_short_advance_returns_at_its_time_without_a_tick(plc, connect):
    line = connect()
    line.reset()
    plc.lockstep = False  # free-running: the test moves the clock
    plc.time_s = T0 + 10.0
    frame = line.advance(10.0)
    assert frame.time == pytest.approx(T0 + 10.0, abs=1e-6)
    assert frame.pending == ()
    plc.time_s = T0 + 61.0  # past the tick
    frame = line.advance(100.0)
    assert frame.pending == (Decision(DecisionKind.TICK),)


def test_a_torn_frame_is_read_again_and_one_torn_on_every_read_is_refused(plc, connect):
    line = connect(read_retries=1)
    line.reset()
    plc.requests.clear()
    plc.tear = 1
    frame = line.read()
    assert line.plc_status.frame_seq == line.plc_frame.frame_seq_end == 2
    assert frame.time == pytest.approx(T0, abs=1e-6)
    assert sum(1 for fc, *_ in plc.requests if fc == 4) == 2 * len(InputImage(MAP, FULL).plan)
    plc.tear = 2
    with pytest.raises(BadFrame, match=r"device 1 input 0-\d+: frame torn on 2 reads \(frame_seq 3, frame_seq_end 4\)"):
        line.read()


@pytest.mark.parametrize(
    ("status", "why"),
    [
        (StatusBit.PERMISSIVE, "REMOTE off"),
        (READY | StatusBit.ESTOP, "E-STOP"),
        (StatusBit(0), "REMOTE off, PERMISSIVE off"),
    ],
)
def test_a_command_the_plc_does_not_echo_is_not_accepted_and_the_status_says_why(plc, connect, status, why):
    line = connect(echo_timeout_s=2.0)
    line.reset()  # attaching needs no REMOTE
    plc.status = status
    plc.publish()
    started = time.monotonic()
    with pytest.raises(CommandNotAccepted, match=rf"holding 0-15: command 1 was refused \(echo 0, .*\): {why}$") as err:
        line.write(Command(setpoints=np.array([1.2, 2.0, 1.0, 2.0])))
    assert time.monotonic() - started < 1.0  # the status explains the refusal: no waiting for the deadline
    assert (err.value.sequence, err.value.status) == (1, status)
    assert len(plc.writes()) == 1  # never re-sent
    assert plc.time_s == T0


def test_a_reattach_never_repeats_a_sequence_number_the_plc_has_seen(plc, connect):
    line = connect()
    line.reset()
    line.write(Command(setpoints=np.full(4, np.nan)))  # sequence 1, accepted
    plc.status = StatusBit.PERMISSIVE
    with pytest.raises(CommandNotAccepted):
        line.write(Command(setpoints=np.full(4, np.nan)))  # sequence 2, seen and refused
    plc.status = READY
    again = connect()
    again.reset()
    again.write(Command(setpoints=np.full(4, np.nan)))  # 2 would be no change to the PLC: 3
    assert [CommandImage(MAP).decode(v).sequence for _, _, v in plc.writes()] == [1, 2, 3]
    assert plc.echo == 3


def test_a_command_of_another_controller_is_refused_on_every_read_until_a_reattach(plc, connect):
    ours, theirs, watcher = connect(), connect(), connect(read_only=True)
    ours.reset()
    ours.write(Command(setpoints=np.full(4, np.nan)))  # sequence 1, accepted
    ours.advance(PERIOD_S)
    watcher.reset()
    theirs.reset()
    theirs.write(Command(setpoints=np.array([0.7, 2.0, np.nan, 1.0])))  # sequence 2, accepted
    rival = r"input 11-11: the PLC accepted command 2, which this client did not send \(its last: 1; echo before: 1\)"
    for call in (ours.read, lambda: ours.advance(PERIOD_S), lambda: ours.write(Command())):
        with pytest.raises(AnotherController, match=rival + ": another controller writes to line 'fake'"):
            call()
    assert theirs.read().time == watcher.read().time  # the writer and a read-only watcher are not refused
    ours.reset()  # attaching afresh takes the PLC as it is now
    ours.write(Command(setpoints=np.full(4, np.nan)))
    assert plc.echo == 3


def test_an_earlier_block_of_its_own_re_sent_by_another_client_is_another_controller(plc, connect):
    """An HMI restoring the window it read: the PLC ran the old setpoints under the old number, and nothing was seen."""
    ours = connect()
    ours.reset()
    ours.write(Command(setpoints=np.array([0.7, 2.0, np.nan, 1.0])))  # sequence 1
    ours.write(Command(setpoints=np.array([1.1, 2.0, np.nan, 1.0])))  # sequence 2
    assert ours.read().time > T0
    plc.command(CommandImage(MAP).decode(plc.writes()[0][2]))  # block 1 again, from another client
    assert (plc.echo, plc.active[0]) == (1, pytest.approx(0.7))
    with pytest.raises(
        AnotherController, match=r"the PLC's echo went back from 2 to 1, a command this client sent before"
    ):
        ours.read()


def leave_a_command_pending(plc: FakePlc, line: ModbusLine) -> None:
    """Attach `line`; the PLC accepts its sequence 1, and sequence 2 goes out but is not acted on in time."""
    line.reset()
    line.write(Command(setpoints=np.full(4, np.nan)))
    plc.status = StatusBit.PERMISSIVE
    with pytest.raises(CommandNotAccepted):
        line.write(Command(setpoints=np.full(4, np.nan)))


def test_a_late_echo_of_its_own_command_or_a_restarted_plc_is_no_other_controller(plc, connect):
    line = connect()
    leave_a_command_pending(plc, line)
    plc.status, plc.echo = READY, 2  # the PLC acted on it late
    line.read()
    plc.echo = 0  # a PLC that powered up again holds 0
    line.read()
    plc.echo = 5
    with pytest.raises(AnotherController, match="accepted command 5"):
        line.read()


def test_numbers_sent_again_after_a_plc_restart_are_ordered_by_their_latest_send(plc, connect):
    """Of the 64 numbers a client remembers 63 are from before the restart; one sent again counts by its latest send."""
    line = connect(sequence_origin="echo")
    line.reset()
    for _ in range(63):
        line.write(Command(setpoints=np.full(4, np.nan)))
    assert plc.echo == 63
    plc.echo = plc.last_sequence = 0  # the PLC powered up again
    line.reset()
    for sequence in (1, 2, 3):  # the 2 sent before the restart comes before this 1: no echo going back
        line.write(Command(setpoints=np.full(4, np.nan)))
        assert plc.echo == sequence
    line.read()
    plc.command(CommandImage(MAP).decode(plc.writes()[-2][2]))  # block 2 again, from another client
    with pytest.raises(AnotherController, match=r"the PLC's echo went back from 3 to 2"):
        line.read()


def test_a_fresh_client_takes_a_late_echo_of_the_block_pending_at_its_attach_as_no_other_controller(plc, connect):
    first = connect()
    leave_a_command_pending(plc, first)
    first.close()
    second = connect()  # a restarted controller
    second.reset()
    plc.status, plc.echo = READY, 2  # the PLC acts on 2 late
    second.read()
    second.write(Command(setpoints=np.full(4, np.nan)))
    assert plc.echo == 3


def test_two_controllers_attached_at_one_echo_number_apart_and_see_each_other(plc, connect):
    ours, theirs = connect(sequence_origin="random"), connect(sequence_origin="random")
    ours.reset()
    theirs.reset()
    while theirs._sequence == ours._sequence:  # the same draw of 16,384: draw again
        theirs.reset()
    ours.write(Command(setpoints=np.full(4, np.nan)))
    theirs.write(Command(setpoints=np.array([0.7, 2.0, np.nan, 1.0])))
    with pytest.raises(AnotherController, match=f"accepted command {plc.echo}, which this client did not send"):
        ours.read()
    first = CommandImage(MAP).decode(plc.writes()[0][2]).sequence
    assert first != 1  # numbered on from a random point past the echo (0), not from 1


@pytest.mark.parametrize(
    ("fc", "code", "call", "table", "count"),
    [
        (4, ExcCodes.DEVICE_FAILURE, lambda line: line.read(), "input", None),
        (16, ExcCodes.ILLEGAL_ADDRESS, lambda line: line.write(Command()), "holding", 16),
    ],
)
def test_an_exception_response_names_the_registers_and_the_code(plc, connect, fc, code, call, table, count):
    line = connect()
    line.reset()
    plc.refuse[fc] = code
    first = InputImage(MAP, FULL).plan[0]
    span = where(plc, table, 0, count or first.count)
    with pytest.raises(ModbusException, match=rf"^{span}: exception response {int(code)} \({code.name}\)$") as err:
        call(line)
    assert (err.value.code, err.value.code_name) == (int(code), code.name)


def test_a_window_the_plc_does_not_have_gets_exception_2(plc, connect):
    shifted = tuple(
        dataclasses.replace(r, address=r.address + 100) if r.role is Role.COMMAND else r for r in MAP.registers
    )
    line = connect(rmap=RegisterMap(MAP.line, shifted, "shifted map"))
    line.reset()  # the window's header cannot be read: the echo alone gives the next sequence number
    with pytest.raises(ModbusException, match=r"device 1 holding 100-115: exception response 2 \(ILLEGAL_ADDRESS\)"):
        line.write(Command())


def test_the_heartbeat_alone_is_one_register(plc, connect):
    line = connect()
    line.reset()
    line.heartbeat()
    line.heartbeat()
    assert plc.writes() == [(0, 1, [1]), (0, 1, [2])]
    assert (plc.echo, plc.time_s) == (0, T0)


def test_no_answer_is_a_timeout_within_the_bound_and_the_next_read_recovers(plc, connect):
    line = connect(timeout_s=0.2, read_retries=1)
    line.reset()
    plc.hang_s = 2.0
    plc.requests.clear()
    started = time.monotonic()
    with pytest.raises(ModbusTimeout, match=r"device 1 input 0-\d+: no answer within 0.2 s$"):
        line.read()
    assert 0.4 <= time.monotonic() - started < 1.2  # well short of the hang
    assert [fc for fc, *_ in plc.requests] == [4, 4]  # 1 + read_retries attempts, none after
    plc.hang_s = 0.0
    assert line.read().time == pytest.approx(T0, abs=1e-6)


def test_the_status_is_as_old_as_its_request_however_long_the_rest_of_the_frame_takes(plc, connect):
    """The guard's deadline on status age counts from the status request, not from the frame's last answer."""
    line = connect(timeout_s=1.0)
    plc.hang_s = 0.1  # every request answered 0.1 s late
    for read in (line.reset, line.read):
        sent = time.time()
        read()
        done = time.time()
        read_at = line.status().read_at_s
        assert sent <= read_at < sent + 0.05
        assert done - read_at >= 0.1 * len(plc.image.plan)


def test_a_stopped_plc_fails_fast_and_a_restarted_one_is_reconnected(plc, connect):
    line = connect(reconnect_backoff_s=(0.3, 0.6), timeout_s=0.2)
    line.reset()
    port = plc.server.transport.sockets[0].getsockname()[1]
    plc.stop()
    started = time.monotonic()
    with pytest.raises(  # the connection is found closed; read again on a new one, it finds the PLC gone
        ModbusDisconnected,
        match=rf"^{HOST}:{port} device 1 input 0-\d+: cannot connect; the next attempt is due in 0\.30 s$",
    ):
        line.read()
    for _ in range(2):
        with pytest.raises(ModbusDisconnected, match="not connected; the next connection attempt is due in"):
            line.read()  # within the backoff: no attempt, no wait
    assert time.monotonic() - started < 0.2  # none of the three waited for the 0.2 s timeout
    plc.serve(port)
    deadline = time.monotonic() + 1.5  # the backoff: 0.3 s, then 0.6 s
    while True:
        try:
            frame = line.read()
            break
        except ModbusDisconnected:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    assert frame.time == pytest.approx(T0, abs=1e-6)
    line.write(Command(setpoints=np.array([1.0, 2.0, 1.0, 2.0])))
    assert plc.echo == 1


def test_a_write_after_the_plc_hung_up_an_idle_connection_goes_out_on_a_new_one(plc, connect):
    line = connect(heartbeat_every_s=0.05)
    line.reset()
    port = plc.server.transport.sockets[0].getsockname()[1]
    plc.stop()  # the PLC hangs up the idle connection (and is up again at once)
    plc.serve(port)
    time.sleep(0.1)  # the agent thinks
    line.write(Command(setpoints=np.array([1.0, 2.0, 1.0, 2.0])))
    assert plc.echo == 1


def test_a_frozen_heartbeat_is_stale_data_within_its_bound(plc, connect):
    line = connect(heartbeat_timeout_s=0.3)
    line.reset()
    plc.frozen = True
    plc.lockstep = False
    started = time.monotonic()  # just after the last read that saw the heartbeat move
    with pytest.raises(StaleData, match=rf"device 1 input 0-0: the PLC heartbeat stood at \d+ for {STALE_AFTER}"):
        line.advance(PERIOD_S)
    assert time.monotonic() - started < 1.5  # the 0.3 s bound and a poll, with room for a loaded machine


def test_a_stopped_clock_is_stale_data_while_waiting(plc, connect):
    line = connect(heartbeat_timeout_s=0.3)
    line.reset()
    plc.lockstep = False  # accepts the keep block, but the clock does not move
    with pytest.raises(StaleData, match=rf"input 3-6: the line clock stood at 1764547200.000 s for {STALE_AFTER}"):
        line.advance(PERIOD_S)


def test_a_timestamp_going_back_is_stale_data(plc, connect):
    line = connect()
    line.reset()
    plc.time_s = T0 - 1.0
    with pytest.raises(
        StaleData, match=r"input 3-6: the timestamp went back from 1764547200.000 s to 1764547199.000 s"
    ):
        line.read()


def test_attaching_checks_the_control_period(plc, connect):
    plc.period_s = 30.0
    with pytest.raises(IncompatiblePlc, match="control period of 30 s; line 'fake' expects 60 s"):
        connect().reset()
    plc.period_s = PERIOD_S
    assert connect().reset().time == pytest.approx(T0, abs=1e-6)


def test_attaching_to_a_plc_that_lacks_the_maps_registers_is_an_incompatible_plc(plc, connect):
    """A PLC serving another line answered exception 2 at every attach, retried for ever as a passing fault."""
    plc.refuse[4] = ExcCodes.ILLEGAL_ADDRESS
    with pytest.raises(
        IncompatiblePlc,
        match=r"exception response 2 \(ILLEGAL_ADDRESS\): the PLC does not serve the register map of line 'fake' "
        r"\(4 sensors\); is it running another line\?",
    ):
        connect().reset()
    plc.refuse[4] = ExcCodes.DEVICE_FAILURE  # a PLC that fails for now: a fault to retry, not another line
    with pytest.raises(ModbusException, match=r"exception response 4 \(DEVICE_FAILURE\)$"):
        connect().reset()


def test_a_lever_kept_local_refuses_the_first_attach_and_later_gates_the_writes_of_it(plc, connect):
    plc.remote = frozenset({Lever.SPEED, Lever.REORDER})  # the operator keeps mode to the line's rules
    with pytest.raises(
        IncompatiblePlc,
        match=r"input 10-10: the PLC keeps levers \['mode'\] local \(remote: \['reorder', 'speed'\]\); line "
        r"'fake' gives them to the agent: hand them over \(a PLC set up to serve them\) before the first attach",
    ):
        connect().reset()
    shadow = connect(read_only=True)  # a line that only reads watches the plant whatever it hands over
    assert shadow.reset() is not None
    assert shadow.status().local_levers == ("mode",)
    assert connect(spec=task_spec(frozenset({Lever.SPEED}))).reset() is not None  # a task of speed alone
    plc.remote = SETPOINT_LEVERS
    line = connect()
    line.reset()
    plc.remote = frozenset({Lever.SPEED, Lever.REORDER})  # taken local once attached: no refusal, a gate
    line.reset()  # a re-attach (after a PLC restart) finds it local too
    assert line.status().local_levers == ("mode",)
    sent = len(plc.writes())
    with pytest.raises(
        LeverLocal,
        match=r"input 10-10: the PLC keeps levers \['mode'\] local \(remote: \['reorder', 'speed'\]\); "
        r"line 'fake': the command was not sent",
    ) as refused:
        line.write(Command(setpoints=np.array([1.2, np.nan, 1.0, 1.0])))
    assert (len(plc.writes()), refused.value.echo) == (sent, None)
    line.write(Command(setpoints=np.array([1.2, np.nan, 1.0, np.nan])))  # speeds alone go out
    assert len(plc.writes()) == sent + 1
    assert plc.active[FULL.actuator_index("a.speed")] == pytest.approx(1.2)
    plc.remote = SETPOINT_LEVERS  # handed back: the next read shows it, and modes go out again
    line.read()
    assert line.status().local_levers == ()
    line.write(Command(setpoints=np.array([1.2, 1.0, 1.0, 1.0])))
    assert plc.active[FULL.actuator_index("b.mode")] == 1.0
    plc.local_on_command = frozenset({Lever.MODE})  # taken local as the next block goes out: it says so
    with pytest.raises(
        LeverLocal, match=r"\['mode'\] local .*: command \d+ was sent and their setpoints were not taken"
    ) as taken:
        line.write(Command(setpoints=np.array([1.1, 2.0, 1.0, 2.0])))
    assert len(plc.writes()) == sent + 3
    assert taken.value.echo == plc.echo != 0  # echoed: the record keeps it


def test_a_dispatch_is_refused_before_anything_is_sent(plc, connect):
    line = connect()
    line.reset()
    with pytest.raises(ValueError, match="takes no dispatch decisions over Modbus"):
        line.write(Command(dispatch=(Dispatch(0, 1),)))
    with pytest.raises(ValueError, match=r"setpoint a.speed = 9.0 is outside its limits \[0.5, 1.5\] ratio"):
        line.write(Command(setpoints=np.array([9.0, 2.0, 1.0, 2.0])))
    assert plc.writes() == []


def test_mutual_tls(plc, tmp_path):
    certs = make_certs(tmp_path)
    port = plc.serve(sslctx=server_context(certs.server))
    line = ModbusLine(task_spec(), MAP, HOST, port, tls=certs.client, **FAST)
    try:
        assert line.reset().time == pytest.approx(T0, abs=1e-6)
        line.write(Command(setpoints=np.array([1.2, 2.0, 1.0, 2.0])))
        assert line.advance(PERIOD_S).pending == (Decision(DecisionKind.TICK),)
    finally:
        line.close()
