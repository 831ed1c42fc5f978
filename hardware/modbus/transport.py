"""The connection under a `ModbusLine`: one sync pymodbus client, bounded requests, typed errors, backoff.

Every request is bounded by the timeout; pymodbus itself never re-sends (`retries=0`): reads are
re-read here on a timeout or on a connection found closed, writes are never re-sent. A timeout or
a broken connection closes the socket, so that a late answer can never be taken for the answer to
a later request. An answer with another function code than the request's is refused; one pymodbus
skips (another device id or transaction) is named in the timeout, not taken for silence. The next
call reconnects; while reconnecting fails, attempts are spaced by an exponential backoff and a
call made before the next attempt is due fails at once with `ModbusDisconnected` instead of
waiting. A connection counts as made only once it has answered a request: one lost before its
first answer (a TLS server refusing the client's certificate lets the handshake finish, then
closes) is a failed attempt, and only an answer resets the backoff.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Sequence

from pymodbus.client import ModbusTcpClient, ModbusTlsClient
from pymodbus.constants import ExcCodes
from pymodbus.exceptions import ConnectionException, ModbusIOException
from pymodbus.exceptions import ModbusException as PymodbusError
from pymodbus.pdu import ModbusPDU

from hardware.modbus.errors import ModbusDisconnected, ModbusException, ModbusLineError, ModbusTimeout
from hardware.modbus.regmap import Block, Table
from hardware.modbus.tls import TlsFiles, client_context

_FC_READ = {Table.INPUT: 4, Table.HOLDING: 3}  # read input registers, read holding registers
_FC_WRITE = 16  # write multiple registers


class Transport:
    """A Modbus TCP (or TLS) connection to one PLC that raises only `ModbusLineError`s.

    Args:
        host: the PLC's address.
        port: its TCP port (502 plain, 802 TLS by convention).
        tls: the client's certificate, key and CA for Modbus/TCP Security; None for plain TCP.
        timeout_s: limit on connecting and on each request's answer, s.
        read_retries: re-reads of a read request that got no answer.
        reconnect_backoff_s: (first, max) wait between failed connection attempts, s; doubles each time.
        window: the only holding registers a write may touch (the map's command window): the client's
            end of the write allow-list, the PLC keeps the other. None: no write at all (read-only).
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        tls: TlsFiles | None,
        timeout_s: float,
        read_retries: int,
        reconnect_backoff_s: tuple[float, float],
        window: Block | None,
    ) -> None:
        self.host = host
        self.window = window
        self.port = port
        self.timeout_s = timeout_s
        self.read_retries = read_retries
        self._backoff_first, self._backoff_max = reconnect_backoff_s
        self._backoff = self._backoff_first
        self._retry_at = 0.0  # monotonic time before which no connection attempt is made
        self._answered = False  # the open connection has answered a request
        self.tls = tls is not None
        self._heard = b""  # what came back for the request in flight, as pymodbus last framed it
        self._client: ModbusTcpClient = (
            ModbusTcpClient(host, port=port, timeout=timeout_s, retries=0, trace_packet=self._trace)
            if tls is None
            else ModbusTlsClient(
                host, port=port, sslctx=client_context(tls), timeout=timeout_s, retries=0, trace_packet=self._trace
            )
        )

    @property
    def connected(self) -> bool:
        """Whether a connection is open now."""
        return bool(self._client.connected)

    def where(self, device_id: int, table: Table, address: int, count: int) -> str:
        """The prefix of error messages about `count` registers from `address`."""
        return f"{self.host}:{self.port} device {device_id} {table.value} {address}-{address + count - 1}"

    def read(self, block: Block) -> list[int]:
        """The registers of `block` (FC4 for input, FC3 for holding registers), re-read on a timeout.

        A connection that answered before and is found closed (a PLC that hangs up idle connections,
        or restarted) is read again on a new one, within the same `1 + read_retries` attempts.

        Raises:
            ModbusTimeout: no answer on any of the `1 + read_retries` attempts.
            ModbusException: the PLC answered with an exception response.
            ModbusDisconnected: no connection, or one lost on every attempt.
            ModbusLineError: an answer with the wrong function code or number of registers.
        """
        where = self.where(block.device_id, block.table, block.address, block.count)
        fn = self._client.read_input_registers if block.table is Table.INPUT else self._client.read_holding_registers
        fc = _FC_READ[block.table]
        attempts = 0
        while True:
            attempts += 1
            reused = self._answered and self._client.connected  # an open connection that answered before
            try:
                response = self._request(
                    where, fc, lambda: fn(block.address, count=block.count, device_id=block.device_id)
                )
            except ModbusTimeout:
                if attempts > self.read_retries:
                    raise
                continue
            except ModbusDisconnected:
                if not reused or attempts > self.read_retries:
                    raise
                continue
            registers = list(response.registers)
            if len(registers) != block.count:
                raise ModbusLineError(f"{where}: the answer carries {len(registers)} registers, not {block.count}")
            return registers

    def write(self, device_id: int, address: int, values: Sequence[int]) -> None:
        """Write holding registers from `address` in one FC16 request, never re-sent.

        Raises:
            ValueError: a write that would touch a register outside the command window (nothing is sent).
            ModbusTimeout: no answer (the PLC may or may not have applied the write).
            ModbusException: the PLC answered with an exception response (the write was not applied).
            ModbusDisconnected: no connection.
            ModbusLineError: an answer with the wrong function code.
        """
        where = self.where(device_id, Table.HOLDING, address, len(values))
        w = self.window
        if w is None:
            raise ValueError(f"{where}: refused, this connection is read-only; nothing was sent")
        if device_id != w.device_id or address < w.address or address + len(values) > w.address + w.count:
            raise ValueError(
                f"{where}: refused, outside the command window (device {w.device_id} holding {w.address}-"
                f"{w.address + w.count - 1}); nothing was sent"
            )
        self._request(
            where, _FC_WRITE, lambda: self._client.write_registers(address, list(values), device_id=device_id)
        )

    def close(self) -> None:
        """Close the connection; the next request reconnects at once."""
        self._client.close()
        self._retry_at = 0.0
        self._backoff = self._backoff_first

    def _request(self, where: str, fc: int, send: Callable[[], ModbusPDU]) -> ModbusPDU:
        """Send one request of function code `fc` and return its answer; an answer resets the backoff."""
        self._connect(where)
        self._heard = b""
        try:
            response = send()
        except ConnectionException as exc:
            raise ModbusDisconnected(self._lost(where, exc.string)) from exc
        except ModbusIOException as exc:
            self._client.close()  # a late answer must not be read as the answer to the next request
            if "No response" not in exc.string:
                raise ModbusTimeout(f"{where}: no valid answer ({exc.string}) within {self.timeout_s} s") from exc
            heard = self._heard
            tid, protocol, length, unit = struct.unpack(">HHHB", heard[:7]) if len(heard) >= 7 else (0, 0, 0, 0)
            if len(heard) < 7 or len(heard) < 6 + length:  # nothing came, or part of an answer
                raise ModbusTimeout(f"{where}: no answer within {self.timeout_s} s") from exc
            raise ModbusTimeout(
                f"{where}: no answer to this request within {self.timeout_s} s; one came under device id {unit}, "
                f"transaction {tid}, protocol {protocol}, which pymodbus skips: the device must echo the request's "
                "device id and transaction (protocol 0)"
            ) from exc
        except (PymodbusError, OSError) as exc:
            self._client.close()
            raise ModbusDisconnected(f"{where}: connection failed: {exc}") from exc
        answered = response.function_code & 0x7F  # an exception response sets the top bit
        if answered != fc:
            self._client.close()  # an answer that cannot be trusted: the next request starts afresh
            raise ModbusLineError(
                f"{where}: the answer has function code {answered}, the request function code {fc}: refused"
            )
        self._answered, self._backoff = True, self._backoff_first
        if response.isError():
            code = response.exception_code
            name = next((c.name for c in ExcCodes if c == code), "UNKNOWN")
            raise ModbusException(f"{where}: exception response {code} ({name})", code, name)
        return response

    def _trace(self, sending: bool, data: bytes) -> bytes:
        """The packet hook of pymodbus: keep the bytes received, unchanged (a frame it skips leaves no other trace)."""
        if not sending:
            self._heard = data
        return data

    def _lost(self, where: str, cause: str) -> str:
        """Close a connection that broke; the error message, with the cause and, if it never answered, the backoff."""
        self._client.close()
        cause = cause.removeprefix("[Connection] ")
        if self._answered:
            return f"{where}: connection lost ({cause})"  # it worked: the next call reconnects at once
        hint = "; with TLS on, the server may have refused this client's certificate" if self.tls else ""
        wait = self._defer()
        return f"{where}: connection lost before any answer{hint} ({cause}); the next attempt is due in {wait:.2f} s"

    def _connect(self, where: str) -> None:
        if self._client.connected:
            return
        now = time.monotonic()
        if now < self._retry_at:
            raise ModbusDisconnected(
                f"{where}: not connected; the next connection attempt is due in {self._retry_at - now:.2f} s"
            )
        if self._client.connect():
            self._answered = False
            return
        raise ModbusDisconnected(f"{where}: cannot connect; the next attempt is due in {self._defer():.2f} s")

    def _defer(self) -> float:
        """Count a failed connection attempt: the next is due after the backoff, which doubles; the wait, s."""
        wait = self._backoff
        self._retry_at = time.monotonic() + wait
        self._backoff = min(2.0 * wait, self._backoff_max)
        return wait
