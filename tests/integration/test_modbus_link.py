"""The Modbus link under `ModbusLine`: answers a device should not give, and a TLS server that refuses the client.

A few lines of socket code stand in for devices pymodbus's server will not imitate (an answer with
another function code than the request's); the TLS server is the fake PLC of `test_modbus_line`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hardware.modbus import Block, ModbusDisconnected, ModbusLineError, ModbusTimeout, Table, make_certs, server_context
from hardware.modbus.client import ModbusLine
from hardware.modbus.tls import TlsFiles
from hardware.modbus.transport import Transport
from tests.integration.test_modbus_line import FAST, HOST, MAP, FakePlc, task_spec

Answer = Callable[[int, int, int], bytes]  # (function code, address, count) -> the PDU to answer with


@pytest.fixture
def raw_server() -> Iterator[Callable[[Answer], int]]:
    """Serve Modbus TCP requests on loopback with `answer`'s PDUs, one thread per connection; the port."""
    sockets: list[socket.socket] = []

    def start(answer: Answer, unit_back: int | None = None) -> int:
        """Serve `answer`'s PDUs under the request's device id, or `unit_back` (a device that does not echo it)."""
        server = socket.create_server((HOST, 0))
        server.settimeout(10.0)
        sockets.append(server)

        def handle(conn: socket.socket) -> None:
            with conn:
                while len(header := conn.recv(7)) == 7:
                    tid, _, length, unit = struct.unpack(">HHHB", header)
                    fc, address, count = struct.unpack(">BHH", conn.recv(length - 1)[:5])
                    pdu = answer(fc, address, count)
                    unit = unit if unit_back is None else unit_back
                    conn.sendall(struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu)

        def accept() -> None:
            try:
                while True:
                    conn, _ = server.accept()
                    threading.Thread(target=handle, args=(conn,), daemon=True).start()
            except OSError:  # closed at the end of the test
                return

        threading.Thread(target=accept, daemon=True).start()
        return int(server.getsockname()[1])

    yield start
    for s in sockets:
        s.close()


def plain_transport(port: int, timeout_s: float, read_retries: int) -> Transport:
    """A plain Modbus TCP transport to `port` on loopback, reconnecting fast."""
    backoff = (0.05, 0.2)
    return Transport(
        HOST, port, tls=None, timeout_s=timeout_s, read_retries=read_retries, reconnect_backoff_s=backoff, window=None
    )


def registers_with(fc: int) -> Answer:
    """Answer every read with `count` zero registers under function code `fc`."""
    return lambda _, address, count: struct.pack(f">BB{count}H", fc, 2 * count, *([0] * count))


@pytest.mark.parametrize(("table", "asked", "answered"), [(Table.INPUT, 4, 3), (Table.HOLDING, 3, 4)])
def test_an_answer_with_another_function_code_is_refused_naming_both(raw_server, table, asked, answered):
    port = raw_server(registers_with(answered))
    transport = plain_transport(port, timeout_s=1.0, read_retries=0)
    try:
        with pytest.raises(
            ModbusLineError,
            match=rf"^{HOST}:{port} device 1 {table.value} 0-9: the answer has function code {answered}, the "
            rf"request function code {asked}: refused$",
        ):
            transport.read(Block(1, table, 0, 10))
    finally:
        transport.close()
    line = ModbusLine(task_spec(), MAP, HOST, raw_server(registers_with(3)), **FAST)
    try:
        with pytest.raises(ModbusLineError, match="the answer has function code 3, the request function code 4"):
            line.reset()
        assert line.plc_frame is None
    finally:
        line.close()


def test_an_answer_under_another_device_id_is_named_not_taken_for_no_answer(raw_server):
    port = raw_server(registers_with(4), unit_back=255)  # a device that answers as 255, whatever was asked
    transport = plain_transport(port, timeout_s=0.3, read_retries=0)
    try:
        with pytest.raises(
            ModbusTimeout,
            match=rf"^{HOST}:{port} device 1 input 0-9: no answer to this request within 0\.3 s; one came under "
            r"device id 255, transaction 1, protocol 0, which pymodbus skips: the device must echo the request's "
            r"device id and transaction \(protocol 0\)$",
        ):
            transport.read(Block(1, Table.INPUT, 0, 10))
    finally:
        transport.close()


def test_a_connection_the_plc_closed_while_idle_is_read_again_on_a_new_one():
    server = socket.create_server((HOST, 0))

    def handle(conn: socket.socket) -> None:
        conn.settimeout(0.2)  # the PLC closes a connection idle for 0.2 s, as many do
        with conn, contextlib.suppress(OSError):
            while len(header := conn.recv(7)) == 7:
                tid, _, length, unit = struct.unpack(">HHHB", header)
                fc, _, count = struct.unpack(">BHH", conn.recv(length - 1)[:5])
                pdu = struct.pack(f">BB{count}H", fc, 2 * count, *range(count))
                conn.sendall(struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu)

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                threading.Thread(target=handle, args=(server.accept()[0],), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    port = server.getsockname()[1]
    transport = plain_transport(port, timeout_s=1.0, read_retries=1)
    try:
        assert transport.read(Block(1, Table.INPUT, 0, 3)) == [0, 1, 2]
        time.sleep(0.4)  # the PLC hangs up
        assert transport.read(Block(1, Table.INPUT, 0, 3)) == [0, 1, 2]  # not a lost connection: it is up
    finally:
        transport.close()
        server.close()


@pytest.fixture
def tls_plc(tmp_path: Path) -> Iterator[tuple[int, TlsFiles]]:
    """A fake PLC behind mutual TLS; its port, and client files whose certificate another CA signed."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    plant, stranger = make_certs(tmp_path / "plant"), make_certs(tmp_path / "stranger")
    plc = FakePlc(loop)
    port = plc.serve(sslctx=server_context(plant.server))
    yield port, TlsFiles(stranger.client.cert, stranger.client.key, plant.ca)  # trusts the PLC, is not trusted
    plc.stop()
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


def test_a_client_refused_by_mutual_tls_is_told_why_and_backs_off(tls_plc):
    port, files = tls_plc
    line = ModbusLine(task_spec(), MAP, HOST, port, tls=files, **{**FAST, "reconnect_backoff_s": (0.2, 0.8)})
    try:
        with pytest.raises(
            ModbusDisconnected,
            match=r"input 0-\d+: connection lost before any answer; with TLS on, the server may have refused this "
            r"client's certificate \(.*closed.*\); the next attempt is due in 0\.20 s$",
        ):
            line.reset()  # TLS 1.3: the handshake completes, the server closes on the first request
        started = time.monotonic()
        with pytest.raises(
            ModbusDisconnected, match=r"not connected; the next connection attempt is due in 0\.[12]\d s"
        ):
            line.reset()  # the connect that "succeeded" did not reset the backoff: no new attempt yet
        assert time.monotonic() - started < 0.1
        time.sleep(0.25)
        with pytest.raises(ModbusDisconnected, match=r"refused this client's certificate .*due in 0\.40 s$"):
            line.reset()  # the backoff doubled
        assert line.plc_frame is None
    finally:
        line.close()
