"""Reading a PLC's frames for `ModbusLine`: whole, fresh, with its cumulative counters unwrapped.

A frame is the PLC's input registers read in the fewest requests (`InputImage.plan`) and checked
whole (`frame_seq == frame_seq_end`, else re-read) and fresh (the PLC heartbeat moves, the timestamp
never goes backwards). The protocol's counters are compared for change only, which holds across
their wrap; the cumulative counters are carried past their registers' wraps (`CounterUnwrap`).
"""

from __future__ import annotations

import time

from hardware.counters import Counters
from hardware.modbus.errors import BadFrame, ClockWentBack, CountersWentBack, StaleData
from hardware.modbus.image import InputImage, PlcFrame, PlcStatus
from hardware.modbus.regmap import Role, Table
from hardware.modbus.transport import Transport
from hardware.modbus.unwrap import CounterReset, CounterUnwrap


class FrameReader:
    """The frames and status blocks of one PLC, read through `transport` and decoded by `image`.

    Args:
        transport: the connection to the PLC.
        image: the input registers of the line's map.
        heartbeat_timeout_s: how long the PLC heartbeat may stand still before a read is stale, s.
    """

    def __init__(self, transport: Transport, image: InputImage, heartbeat_timeout_s: float) -> None:
        self.transport = transport
        self.image = image
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.plc: PlcFrame | None = None  # the last frame read whole
        self.counters = Counters()  # its counters, unwrapped
        self.status: PlcStatus | None = None  # the last status read, alone or with a frame
        self.status_at: float | None = None  # wall clock (time.time()) when its request was sent
        self._unwrap = CounterUnwrap(image.map)
        self._last_time: float | None = None  # PLC timestamp of the last read, s
        self._heartbeat_seen: tuple[int, float] | None = None  # PLC heartbeat and when it was first seen

    def attach(self) -> None:
        """Start afresh: no timestamp or heartbeat seen yet; the next frame's counters pass as read."""
        self._last_time, self._heartbeat_seen = None, None
        self._unwrap.restart()

    def where(self, role: Role, name: str) -> str:
        """The prefix of error messages about the map's entry of `role` named `name`."""
        r = self.image.map.entry(role, name)
        return self.transport.where(r.device_id, r.table, r.address, r.width)

    def frame(self) -> PlcFrame:
        """Read a whole frame, re-reading a torn one, and check that it is fresh.

        Raises:
            BadFrame: torn on every re-read, or a status or counter register reads missing.
            StaleData: the PLC heartbeat stood still for `heartbeat_timeout_s`; `ClockWentBack` or
                `CountersWentBack` (both `LineRestarted`): the PLC's timestamp or counters went back.
            ModbusLineError: the PLC cannot be read.
        """
        transport, plan = self.transport, self.image.plan
        where = transport.where(
            plan[0].device_id, Table.INPUT, plan[0].address, plan[-1].address + plan[-1].count - plan[0].address
        )
        for _ in range(transport.read_retries + 1):
            sent = time.time()  # the status block is the first request's answer: no older than this
            blocks = [transport.read(b) for b in plan]
            try:
                plc = self.image.decode(blocks)
            except ValueError as exc:
                raise BadFrame(f"{where}: {exc}") from exc
            if plc.status.frame_seq == plc.frame_seq_end:
                break
        else:
            raise BadFrame(
                f"{where}: frame torn on {transport.read_retries + 1} reads (frame_seq "
                f"{plc.status.frame_seq}, frame_seq_end {plc.frame_seq_end}): the PLC publishes faster than it is read"
            )
        self._fresh(plc.status, sent)
        try:
            counters = self._unwrap(plc.counters)
        except CounterReset as exc:
            raise CountersWentBack(f"{where}: {exc}: the PLC's counters were reset (a restart?)") from exc
        self.plc, self.counters = plc, counters
        return plc

    def status_block(self) -> PlcStatus:
        """The status block alone, from the first request of a frame read, checked fresh.

        Raises:
            BadFrame: a status register reads missing.
            StaleData: as `frame`.
            ModbusLineError: the PLC cannot be read.
        """
        first = self.image.plan[0]
        sent = time.time()
        registers = self.transport.read(first)
        try:
            status = self.image.decode_status(registers)
        except ValueError as exc:
            where = self.transport.where(first.device_id, first.table, first.address, first.count)
            raise BadFrame(f"{where}: {exc}") from exc
        self._fresh(status, sent)
        return status

    def _fresh(self, st: PlcStatus, sent: float) -> None:
        """Refuse a status whose timestamp went back or whose heartbeat stood still too long; keep it.

        Its age counts from `sent`, when its request went out (wall clock): a slow answer and the
        rest of the frame's requests count against the status deadline.
        """
        now = time.monotonic()
        if self._last_time is not None and st.timestamp_s < self._last_time:
            raise ClockWentBack(
                f"{self.where(Role.STATUS, 'timestamp')}: the timestamp went back from "
                f"{self._last_time:.3f} s to {st.timestamp_s:.3f} s"
            )
        if self._heartbeat_seen is None or self._heartbeat_seen[0] != st.heartbeat:  # a change, wrapped or not
            self._heartbeat_seen = (st.heartbeat, now)
        elif now - self._heartbeat_seen[1] > self.heartbeat_timeout_s:
            raise StaleData(
                f"{self.where(Role.STATUS, 'heartbeat')}: the PLC heartbeat stood at {st.heartbeat} for "
                f"{now - self._heartbeat_seen[1]:.2f} s (limit {self.heartbeat_timeout_s} s)"
            )
        self._last_time, self.status, self.status_at = st.timestamp_s, st, sent
