"""`python -m experiments.plc`: serve driven from stdin, the exported map, certificates, one-line config errors."""

from __future__ import annotations

import csv
import io
import queue
import re
import threading
import time

import pytest
import yaml
from pymodbus.client import ModbusTcpClient

from experiments.plc import compose_config, main, setup_serve
from hardware.interface import Lever
from hardware.modbus import InputImage, Role, StatusBit, TlsFiles, client_context, default_map, load_map
from hardware.modbus.image import bits_levers
from hardware.modbus.maps import setpoint_spec
from tests.lines import FLOW5

FULL = setpoint_spec(yaml.safe_load(FLOW5.read_text()))
MAP = default_map(FULL)


class Console(io.TextIOBase):
    """A stdin whose lines the test types while `main` runs, and a stdout it can wait on."""

    def __init__(self) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.text = ""
        self._seen = 0  # where the next `wait_for` starts looking
        self._lock = threading.Lock()

    @classmethod
    def install(cls, monkeypatch: pytest.MonkeyPatch) -> Console:
        """A console as `sys.stdin` and `sys.stdout` (from the test's body: pytest's capture swaps them before)."""
        console = cls()
        monkeypatch.setattr("sys.stdin", console)
        monkeypatch.setattr("sys.stdout", console)
        return console

    def type(self, line: str) -> None:
        """Type a line into stdin."""
        self.lines.put(f"{line}\n")

    def readline(self, size: int | None = -1) -> str:
        """The next typed line (waits for it)."""
        return self.lines.get(timeout=10.0)

    def write(self, text: str) -> int:
        """Take what was printed."""
        with self._lock:
            self.text += text
        return len(text)

    def wait_for(self, pattern: str, timeout_s: float = 5.0) -> re.Match[str]:
        """Wait until text printed after the previous match matches `pattern` (an older line never answers)."""
        start = time.monotonic()
        while (found := re.compile(pattern).search(self.text, self._seen)) is None:
            assert time.monotonic() - start < timeout_s, f"no {pattern!r} in:\n{self.text[self._seen :]}"
            time.sleep(0.01)
        self._seen = found.end()
        return found


def status_word(client: ModbusTcpClient) -> StatusBit:
    reg = MAP.entry(Role.STATUS, "status")
    return StatusBit(client.read_input_registers(reg.address, count=1, device_id=1).registers[0])


def read_levers(client: ModbusTcpClient) -> frozenset[Lever]:
    reg = MAP.entry(Role.STATUS, "remote_levers")
    return bits_levers(client.read_input_registers(reg.address, count=1, device_id=1).registers[0])


def test_serve_answers_over_modbus_and_obeys_the_operator_on_stdin(monkeypatch):
    console = Console.install(monkeypatch)
    server = threading.Thread(target=main, args=(["serve", "port=0", "mode=free", "time_factor=600"],))
    server.start()
    try:
        port = int(console.wait_for(r"Modbus TCP on 127\.0\.0\.1:(\d+)").group(1))
        assert "mode free at 600x, control period 60 s, levers speed" in console.text
        client = ModbusTcpClient("127.0.0.1", port=port, timeout=1.0, retries=0)
        assert client.connect()
        image = InputImage(MAP, FULL)
        frame = image.decode([client.read_input_registers(b.address, count=b.count).registers for b in image.plan])
        assert frame.status.status == StatusBit.REMOTE | StatusBit.PERMISSIVE
        console.type("remote off")
        console.wait_for(r"status PERMISSIVE,")
        assert status_word(client) & StatusBit.REMOTE == 0
        console.type("lever speed local")
        console.wait_for(r"levers with local rules \(kept local: speed\)")
        assert read_levers(client) == frozenset()
        console.type("lever mode local")
        console.wait_for(r"lever 'mode': this PLC serves levers \['speed'\]")
        console.type("lever speed")
        console.wait_for(r"lever: give the lever and local or remote, e.g. `lever speed local`")
        console.type("lever brake local")
        console.wait_for(r"no lever 'brake'; levers: speed, mode, maintenance, reorder")
        console.type("lever speed remote")
        console.wait_for(r"levers with local rules, active")
        assert read_levers(client) == {Lever.SPEED}
        console.type("fault exception 4.7")
        console.wait_for(r"fault exception: expected a whole number, got '4\.7'")
        console.type("fault exception 4")
        console.wait_for(r"fault in force: exception 4")
        assert client.read_input_registers(0, count=1, device_id=1).exception_code == 4
        console.type("clear")
        console.wait_for(r"faults none")
        assert not client.read_input_registers(0, count=1, device_id=1).isError()
        console.type("fault nan cut.vibration_mm_s 1e39")
        console.wait_for(r"sensor 'cut.vibration_mm_s' cannot read 1e\+39: its float32 register carries -3.4")
        scanning = r"(?m)^up, .* heartbeat (\d+), .* faults none$"
        console.type("status")
        first = int(console.wait_for(scanning).group(1))
        time.sleep(0.1)
        console.type("status")
        assert int(console.wait_for(scanning).group(1)) > first  # the scan goes on, the fault not in force
        console.type("fault late")
        console.wait_for(r"fault late: give the seconds late")
        console.type("make coffee")
        console.wait_for(r"unknown command 'make coffee'\ncommands, one per line:")
        client.close()
    finally:
        console.type("quit")
        server.join(timeout=10.0)
    assert not server.is_alive()


def test_export_map_writes_the_default_map_as_a_tag_table(tmp_path, monkeypatch):
    console = Console.install(monkeypatch)
    out = tmp_path / "map.csv"
    main(["export-map", "format=csv", f"out={out}"])
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == len(MAP.registers)
    words = {table: sum(int(r["registers"]) for r in rows if r["table"] == table) for table in ("input", "holding")}
    assert words == {"input": 311, "holding": 34}  # the 311 of a full-frame read (BENCHMARKS.md)
    written = f"written: {out} ({len(rows)} entries in 345 registers, 311 input, 34 holding, of line flow5)"
    assert written in console.text
    vibration = next(r for r in rows if r["tag"] == "cut.vibration_mm_s" and r["role"] == "sensor")
    assert int(vibration["address"]) == MAP.entry(Role.SENSOR, "cut.vibration_mm_s").address
    assert (vibration["fc"], vibration["type"]) == ("4", "float32")
    main(["export-map", "format=yaml", f"out={tmp_path / 'map.yaml'}"])
    assert load_map(tmp_path / "map.yaml", FULL).registers == MAP.registers
    main(["export-map"])
    assert "| cut.speed | command |" in console.text


def test_make_certs_writes_files_the_tls_contexts_accept(tmp_path, monkeypatch):
    console = Console.install(monkeypatch)
    main(["make-certs", f"dir={tmp_path}"])
    assert f"tls.cert={tmp_path / 'server.pem'}" in console.text
    client_context(TlsFiles(tmp_path / "client.pem", tmp_path / "client.key", tmp_path / "ca.pem"))
    ca = (tmp_path / "ca.pem").read_bytes()
    (tmp_path / "file").write_text("")
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    refused = {
        f"dir={tmp_path}": "dir: .* already holds a CA",
        "dir=": "dir: name the folder",
        f"dir={tmp_path / 'file'}": "dir: .*file is a file",
    }
    for argument, expected in refused.items():
        with pytest.raises(SystemExit, match=f"^config error: {expected}"):
            main(["make-certs", argument])
    assert (tmp_path / "ca.pem").read_bytes() == ca  # kept, not overwritten
    with pytest.raises(SystemExit, match=r"^config error: out: .* is a folder; name the file"):
        main(["export-map", f"out={tmp_path}"])


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["mode=fast"], "mode: must be one of lockstep, free, got 'fast'"),
        (["levers=[speed,dispatch]"], "levers: 'dispatch' is not a setpoint lever"),
        (["line=flow6"], "line=flow6: no such option (did you mean flow5?)"),
        (["portt=1"], "portt: no such key (did you mean port?)"),
        (["tls.cert=server.pem"], "tls.key: give tls.cert, tls.key and tls.ca together"),
        (["rate_limits={cut.sped: 0.1}"], "rate_limits.cut.sped: expected a positive rate"),
        (["map=missing.yaml"], "map: register map missing.yaml: cannot read it"),
        (["line.stations.1.buffer_capacity_parts=0"], "line: line config 'flow5': stations[1].buffer_capacity_parts"),
        (["port=99999"], "port: must be a TCP port, a whole number 0-65535"),
        (["port=abc"], "port: must be a TCP port, a whole number 0-65535 (0: any free one), got 'abc'"),
        (["seed=abc"], "seed: must be a whole number, got 'abc'"),
        (["host="], "host: name the address to listen on"),
        (["tls=on"], "tls: give tls.cert, tls.key and tls.ca, or tls=null for plain Modbus TCP; got 'on'"),
        (["levers=speed"], "levers: must be a list of setpoint levers, e.g. levers=[speed], got 'speed'"),
        (["levers=null"], "levers: must be a list of setpoint levers, e.g. levers=[speed], got None"),
        (["watchdog_s=abc"], "watchdog_s: must be a number, got 'abc'"),
        (["time_factor=abc"], "time_factor: must be a number, got 'abc'"),
        (["scan_s=[0.01]"], "scan_s: must be a number, got [0.01]"),
        (["rate_limits={cut.speed: fast}"], "rate_limits.cut.speed: must be a number of units per s, got 'fast'"),
        (["rate_limits=0.1"], "rate_limits: must map actuators to rates, e.g. {cut.speed: 0.001}, got 0.1"),
    ],
)
def test_a_config_error_is_one_line_naming_the_key(monkeypatch, overrides, expected):
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with pytest.raises(SystemExit) as exited:
        main(["serve", "port=0", *overrides])
    message = str(exited.value.code)
    assert message.startswith(f"config error: {expected}"), message
    assert "\n" not in message


def test_tls_null_serves_plain_modbus_tcp_as_the_hardware_config_writes_it():
    plc = setup_serve(compose_config(["port=0", "tls=null"]))
    assert plc.tls is None


def test_without_a_subcommand_it_prints_usage():
    with pytest.raises(SystemExit, match=r"usage: python -m experiments.plc \{serve,export-map,make-certs\}"):
        main([])
    with pytest.raises(SystemExit, match=r"^error: 'exportmap' is not a command \(did you mean export-map\?\)\nusage:"):
        main(["exportmap", "line=flow5"])  # it printed the usage alone
