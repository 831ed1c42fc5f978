"""The virtual PLC: a twin behind a Modbus TCP (or TLS) server that keeps a PLC's authority over it.

`VirtualPLC` serves a `RegisterMap` on a real pymodbus server: the input registers carry the frame,
the holding registers only the command window (any other address answers exception 2, coils and
discrete inputs too). Its program (`hardware.modbus.plc_program`) says what the PLC does with the
twin and with the agent's writes; this module runs it: a scan every `scan_s` wall seconds (a new
frame every `publish_s` in free mode), every
request through the faults in force (`hardware.modbus.plc_faults`) and the program, the frame
published before a write that moved the twin is answered.

Everything touching the twin or the PLC's state runs in the server's event loop, in a thread of its
own; the public methods hand their work to it and wait for it.

A task of its own that fails (a scan that cannot publish its frame, a restart that cannot listen
again: bugs, not faults to show) halts the PLC as a CPU fault stops a real one: the error is logged,
the server goes down and stays down, `failure` says why and operator and fault commands are refused,
so clients lose the PLC instead of reading a frame that no longer moves from a PLC that looks up.
"""

from __future__ import annotations

import asyncio
import logging
import math
import ssl
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar, cast

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer, ModbusTlsServer

from hardware.interface import Lever, LineSpec
from hardware.modbus.plc_devices import WRITE_FCS, check_servable, plc_devices, refused_function
from hardware.modbus.plc_faults import Fault, FaultKind, FaultSet
from hardware.modbus.plc_program import MODES, PlcProgram
from hardware.modbus.regmap import RegisterMap, Role, StatusBit
from hardware.modbus.tls import TlsFiles, server_context
from hardware.twin import TwinLine

_FC_INPUT = 4
_CALL_TIMEOUT_S = 10.0

log = logging.getLogger(__name__)
T = TypeVar("T")

__all__ = ["MODES", "Fault", "FaultKind", "VirtualPLC"]


class VirtualPLC:
    """A Modbus server in front of a running `TwinLine`, with a PLC's watchdog, limits and operator inputs.

    Args:
        twin: the line; reset already (a PLC attaches to a running line), else `start` resets it.
        rmap: the register map to serve, laid out for `full_spec`.
        full_spec: the spec the map was made for (`maps.setpoint_spec`); the twin's sensors and
            actuators are found in it by name, and setpoints the twin lacks read NaN.
        mode: `lockstep` (each new command moves the twin one control period) or `free` (line time
            runs at `time_factor` x wall-clock time).
        time_factor: free mode: line seconds per wall second.
        host: address to listen on.
        port: port to listen on; 0 picks a free one (see `port`).
        tls: mutual-TLS files of the server; None serves plain Modbus TCP.
        watchdog_s: wall seconds without a change of the agent's heartbeat before the watchdog trips.
        scan_s: wall seconds between scans (each moves the heartbeat and checks the watchdog).
        publish_s: free mode: wall seconds between frames (the twin runs on and is read afresh); a
            scan in between only moves the heartbeat, so a frame read in several requests is rarely torn.
        clock_origin_s: epoch time of twin time 0, s; default UTC midnight of today.
        rate_limits: setpoint rate limits, units per s of line time, by actuator name (default: the
            map's `rate_per_s`).

    Raises:
        ValueError: a parameter out of range, a twin with the dispatch lever or without a control
            period, a twin actuator the map cannot command, or a map entry on device 0 (see
            `plc_devices.check_servable`).
    """

    def __init__(
        self,
        twin: TwinLine,
        rmap: RegisterMap,
        full_spec: LineSpec,
        *,
        mode: str = "lockstep",
        time_factor: float = 1.0,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: TlsFiles | None = None,
        watchdog_s: float = 5.0,
        scan_s: float = 0.01,
        clock_origin_s: float | None = None,
        rate_limits: dict[str, float] | None = None,
        publish_s: float = 0.1,
    ) -> None:
        for name, value in (("scan_s", scan_s), ("publish_s", publish_s)):
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name}: must be a positive number, got {value!r}")
        check_servable(rmap)
        self.program = PlcProgram(
            twin,
            rmap,
            full_spec,
            mode=mode,
            time_factor=time_factor,
            watchdog_s=watchdog_s,
            clock_origin_s=clock_origin_s,
            rate_limits=rate_limits,
        )
        self.twin, self.map, self.host, self.tls, self.scan_s = twin, rmap, host, tls, scan_s
        self.publish_s = publish_s
        self._port = port
        self._faults = FaultSet()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: ModbusTcpServer | None = None
        self._sslctx: ssl.SSLContext | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._failure: str | None = None

    # ---- life cycle (caller's thread) ----

    def start(self) -> None:
        """Start serving in a background thread; return once listening (see `port`).

        Raises:
            RuntimeError: already started, or the server cannot listen.
            FileNotFoundError: a TLS file is missing.
        """
        if self._loop is not None:
            raise RuntimeError("the virtual PLC is already running")
        try:
            self.twin.read()
        except RuntimeError:
            self.twin.reset()
        self._sslctx = server_context(self.tls) if self.tls is not None else None
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="virtual-plc", daemon=True)
        self._thread.start()
        try:
            self._call(self._boot())
        except BaseException:
            self._end_loop()
            raise

    def stop(self) -> None:
        """Stop serving and end the background thread; the twin stays as it is."""
        if self._loop is None:
            return
        try:
            self._call(self._shutdown())
        finally:
            self._end_loop()

    def __enter__(self) -> VirtualPLC:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- operator and test inputs (caller's thread) ----

    def set_operator(
        self, *, remote: bool | None = None, permissive: bool | None = None, estop: bool | None = None
    ) -> None:
        """Set the operator's inputs; None leaves one as it is. An E-stop halts every station until released.

        Raises:
            RuntimeError: the PLC halted.
        """
        self._order(self._operate(remote, permissive, estop))

    def hand_lever(self, lever: Lever, remote: bool) -> None:
        """The operator hands `lever` to remote control (`remote`) or takes it local, to the line's own rules.

        Raises:
            ValueError: a lever this PLC does not serve.
            RuntimeError: the PLC halted.
        """
        self._order(self._hand_lever(lever, remote))

    def inject(self, fault: Fault) -> None:
        """Put a fault in force; a restart returns once the server is down.

        Raises:
            ValueError: a NaN fault for a sensor the map does not carry, or with a reading its
                register cannot carry (the fault is not put in force).
            RuntimeError: the PLC halted.
        """
        if fault.kind is FaultKind.NAN_SENSOR:
            if fault.sensor not in self.program.sensor_names:
                raise ValueError(f"no sensor {fault.sensor!r} on line {self.program.full_spec.name!r}")
            encoding = self.map.entry(Role.SENSOR, fault.sensor).encoding
            if not (math.isnan(fault.value) or encoding.fits(fault.value, fault.value)):
                low, high = encoding.span()
                raise ValueError(
                    f"sensor {fault.sensor!r} cannot read {fault.value:g}: its {encoding.type.value} register "
                    f"carries {low:g} to {high:g}"
                )
        self._order(self._inject(fault))

    def clear(self, kind: FaultKind | None = None) -> None:
        """End the faults of one kind, or all of them.

        Raises:
            RuntimeError: the PLC halted.
        """
        self._order(self._clear(kind))

    def inspect(self, fn: Callable[[TwinLine], T]) -> T:
        """Run `fn(twin)` in the PLC's loop, where the twin may be touched, and return its result."""

        async def run() -> T:
            return fn(self.twin)

        return self._call(run())

    # ---- read-only state ----

    @property
    def port(self) -> int:
        """The port the server listens on (the one asked for until `start`)."""
        return self._port

    @property
    def running(self) -> bool:
        """Whether the server is up (False before `start`, after `stop`, while restarting and once halted)."""
        return self._server is not None

    @property
    def failure(self) -> str | None:
        """Why the PLC halted (a scan or restart failed; its server is down for good), or None if it has not."""
        return self._snapshot(lambda: self._failure)

    @property
    def status(self) -> StatusBit:
        """The status word as published."""
        return self._snapshot(lambda: self.program.status)

    @property
    def active(self) -> dict[str, float]:
        """The setpoints the line runs now, by the twin's actuator names."""
        return self._snapshot(lambda: self.program.active)

    @property
    def agent_in_control(self) -> bool:
        """Whether the agent holds any lever (else the line's own rules run them all)."""
        return self._snapshot(lambda: self.program.agent_owns)

    @property
    def remote_levers(self) -> frozenset[Lever]:
        """The levers the operator hands to remote control now."""
        return self._snapshot(lambda: self.program.remote_levers)

    @property
    def heartbeat(self) -> int:
        """Scans since start-up (the published heartbeat wraps to 0 after its register's top value, 65535)."""
        return self._snapshot(lambda: self.program.heartbeat)

    @property
    def frame_seq(self) -> int:
        """Frames published since start-up."""
        return self._snapshot(lambda: self.program.frame_seq)

    @property
    def command_echo(self) -> int:
        """Sequence number of the last accepted command block."""
        return self._snapshot(lambda: self.program.echo)

    @property
    def handovers(self) -> int:
        """Times the levers went from the agent to the line's own rules since the PLC was made.

        Watchdog trips, the operator (REMOTE off, E-stop, a lever taken local) and restarts count.
        A latch for what `agent_in_control` shows only while it lasts: after a restart the agent may
        take the levers back within a scan.
        """
        return self._snapshot(lambda: self.program.handovers)

    @property
    def accepted_commands(self) -> int:
        """Command blocks accepted since the PLC was made."""
        return self._snapshot(lambda: self.program.accepted)

    @property
    def faults(self) -> tuple[Fault, ...]:
        """The faults in force."""
        return self._snapshot(lambda: self._faults.active)

    # ---- inside the loop ----

    async def _boot(self) -> None:
        self.program.power_up()
        self.program.start_clock(time.monotonic())
        await self._serve()
        self._tasks = [self._watched(self._scan(), "scan")]

    async def _serve(self) -> None:
        devices = plc_devices(self.map, self.program.image.plan, self._on_request)
        address = (self.host, self._port)
        server = (
            ModbusTcpServer(devices, address=address)
            if self._sslctx is None
            else ModbusTlsServer(devices, address=address, sslctx=self._sslctx)
        )
        await server.serve_forever(background=True)
        self._port = cast(asyncio.Server, server.transport).sockets[0].getsockname()[1]
        self._server = server
        self._faults.closing = False
        await self._publish(new=True)

    async def _unserve(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            self._faults.closing = True
            await server.shutdown()

    async def _shutdown(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self._unserve()
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    async def _scan(self) -> None:
        published = time.monotonic()
        while True:
            await asyncio.sleep(self.scan_s)
            now = time.monotonic()
            due = self.program.mode == "free" and now - published >= self.publish_s
            if due or (self._server is None and self.program.mode == "free"):
                self.program.run_free(now)  # the machine runs on while the PLC restarts or its inputs stand still
            if due:
                published = now
            if self._server is None:
                continue
            tripped = self.program.scan(now, frozen=self._faults.has(FaultKind.FROZEN_HEARTBEAT))
            await self._publish((due or tripped) and not self._faults.has(FaultKind.STALE_FRAMES))

    async def _publish(self, new: bool) -> None:
        """Write the frame into the input registers; `new`: observe the twin afresh as a new frame."""
        registers = self.program.registers(new, self._faults.forced)
        server = self._server
        if server is not None:
            for block, values in registers:
                await server.async_setValues(block.device_id, _FC_INPUT, block.address, values)

    async def _on_request(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """Check a request before pymodbus serves it (a write before it lands): faults, allow-list, commands."""
        if values is not None and function_code == _FC_INPUT:  # the PLC's own publishing
            return None
        if values is None and function_code in WRITE_FCS:  # the read-back of a write, gated with it
            return None
        refused = await self._faults.gate()
        if refused is not None:
            return refused
        refused = refused_function(function_code)
        if refused is not None:
            return refused
        if values is None:
            return None
        refused, new = self.program.write(address, count, [int(v) for v in values], time.monotonic())
        if refused is None:  # before answering, so that a read right after the write sees its effect
            await self._publish(new)
        return refused

    async def _operate(self, remote: bool | None, permissive: bool | None, estop: bool | None) -> None:
        self.program.operate(remote, permissive, estop)
        await self._publish(new=True)

    async def _hand_lever(self, lever: Lever, remote: bool) -> None:
        self.program.hand_lever(lever, remote)
        await self._publish(new=True)

    async def _inject(self, fault: Fault) -> None:
        if fault.kind is FaultKind.RESTART:
            if self._server is not None:
                await self._unserve()
                self._tasks.append(self._watched(self._come_back(fault.down_s), "restart"))
            return
        self._faults.add(fault)
        await self._publish(new=False)

    async def _come_back(self, down_s: float) -> None:
        await asyncio.sleep(down_s)
        self.program.power_up()
        await self._serve()

    async def _clear(self, kind: FaultKind | None) -> None:
        self._faults.clear(kind)
        await self._publish(new=False)

    def _watched(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """A task of the PLC's loop (nobody awaits it) whose failure halts the PLC."""
        task = asyncio.create_task(coro, name=name)
        task.add_done_callback(self._halt)
        return task

    def _halt(self, task: asyncio.Task[None]) -> None:
        """Log a failed task and take the server down for good, as a PLC stops on a CPU fault."""
        exc = None if task.cancelled() else task.exception()
        if exc is None:
            return
        log.error("virtual PLC halted: task %s failed", task.get_name(), exc_info=exc)
        self._failure = f"the {task.get_name()} failed: {type(exc).__name__}: {exc}"
        for other in self._tasks:
            other.cancel()  # a pending restart would bring the server back
        self._tasks = [asyncio.create_task(self._unserve())]

    # ---- plumbing ----

    def _snapshot(self, fn: Callable[[], T]) -> T:
        """`fn()` evaluated in the PLC's loop while it runs (its state is the loop's), else here."""
        if self._loop is None:
            return fn()

        async def run() -> T:
            return fn()

        return self._call(run())

    def _order(self, coro: Coroutine[Any, Any, None]) -> None:
        """Carry out an operator or fault command in the PLC's loop; a halted PLC refuses it."""
        failure = self.failure
        if failure is not None:
            coro.close()
            raise RuntimeError(f"the virtual PLC halted ({failure}): stop it and start another")
        self._call(coro)

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        loop = self._loop
        if loop is None:
            coro.close()
            raise RuntimeError("the virtual PLC is not running: call start() first")
        return asyncio.run_coroutine_threadsafe(coro, loop).result(_CALL_TIMEOUT_S)

    def _end_loop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(_CALL_TIMEOUT_S)
        loop.close()
        self._loop = self._thread = None
        self._server = None
