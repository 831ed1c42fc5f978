"""`ModbusLine`: a `Line` read from a PLC's input registers and commanded through its command window.

A frame is the PLC's input registers read whole and fresh (`hardware.modbus.reader`) and decoded by
the same `InputImage` the virtual PLC encodes with. A command is one FC16 block {agent heartbeat,
sequence number, setpoints} written to the command window and never re-sent; the PLC acts on a new
sequence number only, and the write counts only once the PLC echoes it. Heartbeat and sequence
number wrap over their registers' whole range (the sequence skips 0, which a PLC holds at power-up).
The line clock is the PLC's timestamp, s since the Unix epoch; KPIs count from the frame `reset`
read, derived by `hardware.counters.derive_kpis` like the twin's from the counters unwrapped past
their registers' wraps (at most one wrap between two frame reads). A sensor's stamp is the frame's
time less its age; a sensor whose age reads missing has a NaN stamp (stale to the guard), one the map
gives no age has the frame's time.

The PLC runs free (time passes by itself, scaled) or in lockstep (each accepted block steps the line
one control period before the write is answered); `advance` works with both: it writes a block when
none was written since the last advance and waits for the PLC's clock.
"""

from __future__ import annotations

import math
import time

import numpy as np

from hardware.counters import Counters, derive_kpis
from hardware.interface import Command, Decision, DecisionKind, Frame, Lever, LineSpec, LineStatus, SetpointLimits
from hardware.modbus.errors import (
    AnotherController,
    CommandNotAccepted,
    CommandNotSent,
    IncompatiblePlc,
    LeverLocal,
    ModbusException,
    StaleData,
)
from hardware.modbus.image import CommandImage, InputImage, PlcFrame, PlcStatus
from hardware.modbus.reader import FrameReader
from hardware.modbus.regmap import TIME_EPS_S, Block, RegisterMap, Role, StatusBit, Table
from hardware.modbus.sequence import ORIGINS, EchoWatch, next_sequence, origin
from hardware.modbus.tls import TlsFiles
from hardware.modbus.transport import Transport

_NOT_THIS_MAP = (1, 2, 3)  # exception codes ILLEGAL_FUNCTION, ADDRESS, VALUE: registers the PLC does not have

_REFUSALS = (
    (StatusBit.REMOTE, False, "REMOTE off"),
    (StatusBit.PERMISSIVE, False, "PERMISSIVE off"),
    (StatusBit.ESTOP, True, "E-STOP"),
    (StatusBit.WD_TRIPPED, True, "watchdog tripped"),
)


class ModbusLine:
    """A production line behind a PLC, over Modbus TCP or Modbus/TCP Security (TLS).

    `reset` attaches and never resets the plant. `write` sends one command block and waits for its
    echo. `advance(dt)` returns once the PLC's clock reaches the next control tick (then a `TICK`
    decision is pending) or the last frame's time + `dt`, whichever comes first; in lockstep the
    PLC steps a whole control period, so the frame may lie beyond `dt`. No call waits unboundedly:
    every request has a timeout, the echo a deadline, and a wait for the clock ends with
    `StaleData` once the PLC heartbeat or clock stands still for `heartbeat_timeout_s`.

    Args:
        spec: the task's view of the line; its actuators must be in the map's command window.
        rmap: the line's register map (validated against the line's full setpoint spec).
        host: the PLC's address.
        port: its TCP port.
        tls: the client's certificate, key and CA for Modbus/TCP Security; None for plain TCP.
        timeout_s: limit on connecting and on each request's answer, s.
        read_retries: re-reads of a read that got no answer, and of a frame read torn.
        echo_timeout_s: how long a command block's echo may take, s.
        heartbeat_timeout_s: how long the PLC heartbeat (or, while waiting, its clock) may stand still, s.
        reconnect_backoff_s: (first, max) wait between failed reconnection attempts, s.
        poll_s: pause between status reads while waiting for the echo or the clock, s.
        heartbeat_every_s: while waiting for the clock, write the agent heartbeat this often, s, so
            that the PLC's watchdog stays fed through a control period longer than it (so shorter
            than the watchdog); a command block after a longer silence reads the status first.
        read_only: hold no write path: `write` and `heartbeat` refuse, `advance` only waits for the
            PLC's clock (shadow mode on a line that runs by itself).
        keep_blocks: `advance` writes a keep block (all NaN) when no block was written since the
            last advance, which is what moves a lockstep PLC. Off for deployment, where a step
            whose command the guard refused writes nothing but the heartbeat.
        sequence_origin: where a writing line's command sequence numbers start at each attach:
            `random` (a jump of up to 16,383 past the PLC's echo, so that two controllers attached at
            one echo see each other's commands) or `echo` (the next number, for a reproducible trace).

    Before a command block after a watchdog trip, the agent heartbeat is written alone first: a PLC
    re-arms its watchdog on it and acts on no block that arrives with the trip still latched. After
    more than `heartbeat_every_s` without an agent heartbeat the status is read afresh to tell (a
    trip the last status read cannot show yet), on a new connection if the PLC hung up the idle one.

    A line that writes watches the PLC's echo on every status it reads: an echo that moves to a
    sequence number this client did not send (0, a PLC's power-up value, excepted) is another
    controller's command, and every read and write raises `AnotherController` until the next `reset`. A
    controller that writes only heartbeats, and no commands, is not seen this way.

    Raises:
        ValueError: the dispatch lever, an actuator the map has no command entry for, a map of
            another line, or an option out of range.
    """

    def __init__(
        self,
        spec: LineSpec,
        rmap: RegisterMap,
        host: str = "127.0.0.1",
        port: int = 502,
        *,
        tls: TlsFiles | None = None,
        timeout_s: float = 0.5,
        read_retries: int = 2,
        echo_timeout_s: float = 1.0,
        heartbeat_timeout_s: float = 2.0,
        reconnect_backoff_s: tuple[float, float] = (0.05, 2.0),
        poll_s: float = 0.005,
        heartbeat_every_s: float = 1.0,
        read_only: bool = False,
        keep_blocks: bool = True,
        sequence_origin: str = "random",
    ) -> None:
        for name, value in (
            ("timeout_s", timeout_s),
            ("echo_timeout_s", echo_timeout_s),
            ("heartbeat_timeout_s", heartbeat_timeout_s),
            ("poll_s", poll_s),
            ("heartbeat_every_s", heartbeat_every_s),
        ):
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"ModbusLine: {name} must be a positive number of seconds, got {value!r}")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ValueError(f"ModbusLine: port must be a TCP port, 1 to 65535, got {port!r}")
        if sequence_origin not in ORIGINS:
            raise ValueError(f"ModbusLine: sequence_origin must be one of {ORIGINS}, got {sequence_origin!r}")
        if isinstance(read_retries, bool) or not isinstance(read_retries, int) or read_retries < 0:
            raise ValueError(f"ModbusLine: read_retries must be a whole number, 0 or more, got {read_retries!r}")
        if not 0 < reconnect_backoff_s[0] <= reconnect_backoff_s[1]:
            raise ValueError(
                f"ModbusLine: reconnect_backoff_s must be (first, max), 0 < first <= max, got {reconnect_backoff_s!r}"
            )
        if Lever.DISPATCH in spec.levers:
            raise ValueError(f"line {spec.name!r}: dispatch over Modbus is not supported by this map ({rmap.source})")
        if rmap.line != spec.name:
            raise ValueError(f"register map {rmap.source} is for line {rmap.line!r}, not {spec.name!r}")
        self.spec = spec
        self._limits = SetpointLimits(spec)
        self.map = rmap
        self.echo_timeout_s = echo_timeout_s
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.poll_s = poll_s
        self.heartbeat_every_s = heartbeat_every_s
        self.read_only = read_only
        self.keep_blocks = keep_blocks and not read_only
        self.sequence_origin = sequence_origin
        self._command = CommandImage(rmap)
        names = self._command.names
        for a in spec.actuators:
            if a.name not in names:
                raise ValueError(
                    f"register map {rmap.source} has no command entry for actuator {a.name!r} (lever "
                    f"{a.lever.value}) of line {spec.name!r}; its command window carries {list(names)}"
                )
        self._slots = np.array([names.index(a.name) for a in spec.actuators], dtype=int)
        self._keep = self._command.setpoint_registers(np.full(len(names), math.nan))  # a block that changes nothing
        self._modulus = self._command.header[0].encoding.modulus  # of the heartbeat and the sequence number
        self._transport = Transport(
            host,
            port,
            tls=tls,
            timeout_s=timeout_s,
            read_retries=read_retries,
            reconnect_backoff_s=reconnect_backoff_s,
            window=None if read_only else rmap.command_window,
        )
        image = InputImage(rmap, spec)
        self._reader = FrameReader(self._transport, image, heartbeat_timeout_s)
        self._no_age = ~image.has_age  # sensors stamped with the frame's time
        self._attached = False
        self._start = Counters()
        self._start_s = 0.0
        self._time = 0.0  # time of the last frame handed out, s
        self._ticks = 0
        self._pending: tuple[Decision, ...] = ()
        self._written = False  # a block was written since the last advance
        self._beat_at = 0.0  # monotonic time the agent heartbeat was last written (or the line attached)
        self._echoed: PlcStatus | None = None  # the status that showed the last block's echo, not yet waited on
        self._sequence = 0
        self._heartbeat = 0
        self._seq = 0
        self._served = False  # a first attach found every lever of the spec remote (checked once, when writing)
        # whose commands the PLC's echo shows (watched only by a writing line)
        self._echoes = EchoWatch(self._reader.where(Role.STATUS, "command_echo"), spec.name)

    @property
    def plc_frame(self) -> PlcFrame | None:
        """The last PLC frame read whole (status bits, alarms, active setpoints, ages); None before any."""
        return self._reader.plc

    @property
    def plc_status(self) -> PlcStatus | None:
        """The status block of `plc_frame`; None before any read."""
        return self._reader.status

    def status(self) -> LineStatus:
        """The PLC's status word, clock and active setpoints as of the last read (the defaults before any)."""
        st, plc = self._reader.status, self._reader.plc
        if st is None:
            return LineStatus()
        return LineStatus(
            remote=StatusBit.REMOTE in st.status,
            permissive=StatusBit.PERMISSIVE in st.status,
            estop=StatusBit.ESTOP in st.status,
            watchdog_tripped=StatusBit.WD_TRIPPED in st.status,
            setpoint_limited=StatusBit.SP_LIMITED in st.status,
            heartbeat=st.heartbeat,
            clock_s=st.timestamp_s,
            read_at_s=self._reader.status_at,
            active=None if plc is None else plc.active.copy(),
            local_levers=tuple(sorted(lv.value for lv in self.spec.levers - st.remote_levers)),
        )

    def reset(self, seed: int | None = None) -> Frame:
        """Attach to the PLC (connecting if needed) and read a frame; never resets the plant.

        `seed` is ignored: a real line cannot be re-seeded. KPIs and control ticks count from this
        frame; command sequence numbers continue from the PLC's echo, so a re-attach never repeats
        one the PLC has seen.

        A writing line's first attach also needs every lever of the spec remote: a lever kept local
        then is a PLC not set up to serve it, or one the operator has not handed over yet. Later a
        lever taken local shows in `status().local_levers` (a guard gate) and refuses `write`.

        Raises:
            IncompatiblePlc: the PLC runs another control period, refuses the map's registers (an
                exception response 1-3: it serves another line or map), or at a writing line's
                first attach keeps a lever of the spec local.
            ModbusLineError: the PLC cannot be read (see `read`).
        """
        self._attached = False
        self._reader.attach()
        try:
            plc = self._reader.frame()
        except ModbusException as exc:
            if exc.code not in _NOT_THIS_MAP:
                raise
            raise IncompatiblePlc(
                f"{exc}: the PLC does not serve the register map of line {self.spec.name!r} "
                f"({len(self.spec.sensors)} sensors); is it running another line? "
                "(`python -m experiments.plc export-map` writes the map this line expects)"
            ) from exc
        self._check_plc(plc.status)
        if not self.read_only and not self._served:
            self._check_served(plc.status)
            self._served = True
        if not self.read_only:
            self._sequence, self._heartbeat, pending = self._command_origin(plc.status.command_echo)
            self._echoes.attach(plc.status.command_echo, pending)
        self._start, self._start_s = self._reader.counters, plc.status.timestamp_s
        self._ticks, self._pending, self._written = 0, (), False
        self._beat_at = time.monotonic()
        self._attached = True
        return self._frame(plc)

    def write(self, command: Command) -> None:
        """Send one command block (setpoints of the spec's actuators, NaN = keep) and check its echo.

        Each setpoint goes out rounded to its register's grid inside its limits and the command's
        `bounds` (a guard verdict's), so a coarse register never carries a value past them.

        Raises:
            ValueError: setpoints or bounds of the wrong shape, setpoints outside their limits (as the
                twin), or a dispatch.
            LeverLocal: a setpoint for a lever the last status read shows kept local (nothing is sent), or
                one the status that echoed the block shows kept local (sent, not taken).
            CommandNotAccepted: the PLC did not echo the block within `echo_timeout_s`.
            CommandNotSent: a setpoint's register carries no value inside its limits and bounds (nothing is sent).
            ModbusLineError: the block could not be written (never re-sent), or the echo could not be read.
        """
        self._live()
        values = np.full(len(self._command.names), math.nan)
        if command.setpoints is not None:
            values[self._slots] = self._limits.check(command.setpoints)
        if command.dispatch:
            raise ValueError(f"dispatch: line {self.spec.name!r} takes no dispatch decisions over Modbus")
        within = None
        if command.bounds is not None:
            within = (np.full(len(values), -math.inf), np.full(len(values), math.inf))
            within[0][self._slots], within[1][self._slots] = self._limits.bounds(command.bounds)
        try:  # a setpoint no register value carries: a refused command, before any heartbeat or number is used
            registers = self._command.setpoint_registers(values, within)
        except ValueError as exc:
            w = self._command.window
            where = self._transport.where(w.device_id, Table.HOLDING, w.address, w.count)
            raise CommandNotSent(f"{where}: command not sent: {exc}") from exc
        self._check_remote(values[self._slots], self._reader.status)
        self._send(registers)
        self._written = True
        self._check_remote(values[self._slots], self._echoed, sent=True)  # taken local as the block went out

    def advance(self, dt: float) -> Frame:
        """Wait until the PLC's clock reaches the next control tick or the last frame's time + `dt` s.

        Writes a keep block (all NaN) first when no block was written since the last advance and
        `keep_blocks` is on: in lockstep that is what moves the line.

        Raises:
            ValueError: `dt` is not a positive, finite number.
            StaleData: the PLC heartbeat or clock stood still for `heartbeat_timeout_s`.
            CommandNotAccepted: the keep block was not echoed.
            ModbusLineError: the PLC cannot be read or written.
        """
        self._live()
        if not (dt > 0 and math.isfinite(dt)):
            raise ValueError(f"advance(dt): dt must be a positive finite number of seconds, got {dt!r}")
        if self.keep_blocks and not self._written:
            self._send(self._keep)
        self._written = False
        period = self.spec.control_period_s
        next_tick = math.inf if period is None else self._start_s + (self._ticks + 1) * period
        target = min(self._time + dt, next_tick)
        clock = self._time  # the line clock must move past the last frame before the data count as live
        clock_since = beat_at = time.monotonic()
        while True:
            status, self._echoed = self._echoed or self._own(self._reader.status_block()), None  # fresh
            t = status.timestamp_s
            if t >= target - TIME_EPS_S:
                break
            now = time.monotonic()
            if t != clock:
                clock, clock_since = t, now
            elif now - clock_since > self.heartbeat_timeout_s:
                raise StaleData(
                    f"{self._reader.where(Role.STATUS, 'timestamp')}: the line clock stood at {t:.3f} s for "
                    f"{now - clock_since:.2f} s while waiting for {target:.3f} s"
                )
            alive = clock_since > beat_at  # the line clock moved since the last beat: the data are live
            if now - beat_at >= self.heartbeat_every_s and alive and not self.read_only:  # feed the watchdog
                self.heartbeat()
                beat_at = now
            time.sleep(self.poll_s)
        plc = self._reader.frame()
        self._own(plc.status)
        t = plc.status.timestamp_s
        self._pending = ()
        if period is not None and t >= next_tick - TIME_EPS_S:
            self._ticks = max(self._ticks + 1, math.floor((t - self._start_s + TIME_EPS_S) / period))
            self._pending = (Decision(DecisionKind.TICK),)
        return self._frame(plc)

    def read(self) -> Frame:
        """Read a fresh frame; what is pending carries over from the last `advance`.

        Raises:
            ModbusTimeout: no answer, after `read_retries` re-reads.
            ModbusException: the PLC answered with an exception response.
            ModbusDisconnected: no connection (a later call reconnects).
            BadFrame: torn on every re-read, or a status or counter register reads missing.
            StaleData: the PLC heartbeat stood still for `heartbeat_timeout_s`, or the timestamp went back.
        """
        self._live()
        plc = self._reader.frame()
        self._own(plc.status)
        return self._frame(plc)

    def heartbeat(self) -> None:
        """Write the agent heartbeat register alone (one FC16 request): the PLC sees the agent alive, nothing else.

        Raises:
            ModbusLineError: the write failed (it is never re-sent).
        """
        self._live()
        self._heartbeat = (self._heartbeat + 1) % self._modulus
        reg = self._command.header[0]
        self._transport.write(reg.device_id, reg.address, reg.encoding.encode(float(self._heartbeat)))
        self._beat_at = time.monotonic()

    def close(self) -> None:
        """Close the connection; `reset` attaches again."""
        self._attached = False
        self._transport.close()

    def _live(self) -> None:
        if not self._attached:
            raise RuntimeError(f"line {self.spec.name!r}: call reset() before using it")
        if self._echoes.rival is not None:
            raise AnotherController(self._echoes.rival)

    def _check_plc(self, status: PlcStatus) -> None:
        period = self.spec.control_period_s
        if period is not None and abs(status.control_period_s - period) > TIME_EPS_S:
            raise IncompatiblePlc(
                f"{self._reader.where(Role.STATUS, 'control_period')}: the PLC runs a control period of "
                f"{status.control_period_s:g} s; line {self.spec.name!r} expects {period:g} s"
            )

    def _check_remote(self, setpoints: np.ndarray, st: PlcStatus | None, sent: bool = False) -> None:
        """Raise if setpoints (spec order, NaN = keep) are for levers status `st` shows kept local.

        `sent`: the block went out, and `st` is the status that echoed it.
        """
        if st is None:
            return
        given = ~np.isnan(setpoints)
        local = sorted(
            {a.lever.value for a, g in zip(self.spec.actuators, given, strict=True) if g}
            - {lv.value for lv in st.remote_levers}
        )
        if local:
            remote = sorted(lv.value for lv in st.remote_levers)
            what = (
                f"command {self._sequence} was sent and their setpoints were not taken"
                if sent
                else "the command was not sent"
            )
            raise LeverLocal(
                f"{self._reader.where(Role.STATUS, 'remote_levers')}: the PLC keeps levers {local} local "
                f"(remote: {remote}); line {self.spec.name!r}: {what}",
                st.command_echo if sent else None,
            )

    def _check_served(self, status: PlcStatus) -> None:
        local = self.spec.levers - status.remote_levers
        if local:
            remote = sorted(lv.value for lv in status.remote_levers)
            raise IncompatiblePlc(
                f"{self._reader.where(Role.STATUS, 'remote_levers')}: the PLC keeps levers "
                f"{sorted(lv.value for lv in local)} local (remote: {remote}); line {self.spec.name!r} gives them to "
                "the agent: hand them over (a PLC set up to serve them) before the first attach"
            )

    def _own(self, status: PlcStatus) -> PlcStatus:
        """`status`, once its echo shows no command but this client's since the attach (`EchoWatch.check`)."""
        if not self.read_only:
            self._echoes.check(status.command_echo, self._sequence)
        return status

    def _command_origin(self, echo: int) -> tuple[int, int, int | None]:
        """The last sequence number and agent heartbeat to count on from, and a block still pending in the window.

        The numbers follow `sequence.origin` (after `sequence_origin`); the heartbeat continues from the window's.
        """
        hb_reg, seq_reg = self._command.header
        first = hb_reg.address
        try:
            regs = self._transport.read(Block(hb_reg.device_id, Table.HOLDING, first, seq_reg.end - first))
            hb = int(hb_reg.encoding.decode(regs[: hb_reg.width]))
            held: int | None = int(seq_reg.encoding.decode(regs[seq_reg.address - first :]))
        except ModbusException:  # a PLC that does not let the window be read: the echo alone
            hb, held = 0, None
        sequence, pending = origin(echo, held, self._modulus, self.sequence_origin)
        return sequence, hb, pending

    def _send(self, registers: list[int]) -> None:
        """Write the window's setpoint `registers` (`CommandImage.setpoint_registers`), stamped, and check the echo."""
        last = self._reader.status
        if time.monotonic() - self._beat_at > self.heartbeat_every_s:  # it may have tripped since `last`
            last = self._own(self._reader.status_block())  # a read: on a new connection if the PLC hung up
        if last is not None and StatusBit.WD_TRIPPED in last.status:
            self.heartbeat()  # the agent is back: the PLC re-arms its watchdog before it takes a command
        self._sequence = next_sequence(self._sequence, self._modulus)
        self._heartbeat = (self._heartbeat + 1) % self._modulus
        window = self._command.window
        self._echoes.sent.append(self._sequence)
        block = self._command.stamp(registers, self._heartbeat, self._sequence)
        self._transport.write(window.device_id, window.address, block)
        self._beat_at = time.monotonic()
        deadline = time.monotonic() + self.echo_timeout_s
        while True:
            st = self._own(self._reader.status_block())
            if st.command_echo == self._sequence:  # equal, wrapped or not
                self._echoed = st
                return
            why = ", ".join(text for bit, when_set, text in _REFUSALS if (bit in st.status) == when_set)
            if why or time.monotonic() >= deadline:  # a refusal the status explains needs no waiting
                where = self._transport.where(window.device_id, Table.HOLDING, window.address, window.count)
                what = "was refused" if why else f"was not echoed within {self.echo_timeout_s} s"
                raise CommandNotAccepted(
                    f"{where}: command {self._sequence} {what} (echo {st.command_echo}, status "
                    f"{st.status.name or 0}): "
                    + (why or "REMOTE and PERMISSIVE on, no E-STOP, yet the PLC did not act on it"),
                    self._sequence,
                    st.status,
                )
            time.sleep(self.poll_s)

    def _frame(self, plc: PlcFrame) -> Frame:
        """The `Frame` of the PLC frame just read: stamps from the ages, KPIs from the unwrapped counters."""
        t = plc.status.timestamp_s
        stamps = np.where(self._no_age, t, t - plc.ages)  # an age that reads missing: a NaN stamp, stale
        counters = self._reader.counters
        kpis = derive_kpis(counters.since(self._start, self._start_s), t - self._start_s, len(self.spec.stations))
        self._seq += 1
        self._time = t
        return Frame(t, self._seq, plc.values.copy(), stamps, self._pending, kpis, counters=counters)
