"""The virtual PLC at the command line: serve a twin over Modbus, export its register map, make test certificates.

python -m experiments.plc serve                                  # flow5, lockstep, 127.0.0.1:5020
python -m experiments.plc serve mode=free time_factor=60 levers=[speed,maintenance] port=5021
python -m experiments.plc export-map format=csv out=flow5_map.csv
python -m experiments.plc make-certs dir=certs

`serve` then reads operator and fault commands from stdin, one per line (`help` lists them).
Settings are Hydra overrides of `configs/plc.yaml`; a wrong one ends with one line on stderr.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO, cast

from hydra import compose, initialize_config_module
from omegaconf import DictConfig, ListConfig, OmegaConf

from experiments.errors import FULL_ERROR, HINT, ConfigError, did_you_mean, explain
from hardware import Lever, LineSpec
from hardware.modbus import MapError, RegisterMap, StatusBit, Table, TlsFiles, default_map, load_map, make_certs
from hardware.modbus.maps import SETPOINT_LEVERS, setpoint_spec
from hardware.modbus.plc import Fault, FaultKind, VirtualPLC
from hardware.twin import LineDefinitionError, TwinLine

USAGE = "usage: python -m experiments.plc {serve,export-map,make-certs} [key=value ...]"
HELP = """commands, one per line:
  remote on|off          the operator hands the line to remote (agent) control, or takes it back
  permissive on|off      the process permits remote setpoints, or not
  estop on|off           emergency stop: every station switches off; off releases it
  lever <l> local|remote take lever <l> (speed, mode, maintenance, reorder) to the line's own rules, or back
  fault stop             stop answering (clients time out)
  fault late <s>         answer every request <s> seconds late
  fault exception <n>    answer every request with Modbus exception <n> (e.g. 4, device failure)
  fault freeze           freeze the PLC's heartbeat
  fault nan <sensor> [<v>]  publish NaN for a sensor (e.g. cut.vibration_mm_s), or the reading <v>
  fault stale            the PLC's inputs stop updating (the timestamp stands; the heartbeat goes on)
  restart [<s>]          restart the PLC, down for <s> seconds (default 1)
  clear [<fault>]        end every fault, or one kind: stop, late, exception, freeze, nan, stale
  status                 the PLC's state
  quit                   stop serving"""
_FORMATS = ("markdown", "csv", "yaml")


def compose_config(overrides: Sequence[str]) -> DictConfig:
    """The `plc` config with Hydra overrides applied."""
    with initialize_config_module(config_module="configs", version_base="1.3"):
        return compose(config_name="plc", overrides=list(overrides))


def setup_map(cfg: DictConfig) -> tuple[dict[str, Any], LineSpec, RegisterMap]:
    """The line definition, the spec with every setpoint lever, and the map (`map`, or the line's default).

    Raises:
        ConfigError: an invalid line definition or map.
    """
    definition = cast(dict[str, Any], OmegaConf.to_container(cfg.line, resolve=True))
    try:
        full = setpoint_spec(definition, cfg.control_period_s)
    except LineDefinitionError as exc:
        raise ConfigError(f"line: {exc}") from exc
    try:
        rmap = default_map(full) if cfg.map is None else load_map(cfg.map, full)
    except MapError as exc:
        raise ConfigError(f"map: {exc}") from exc
    return definition, full, rmap


def setup_serve(cfg: DictConfig) -> VirtualPLC:
    """A virtual PLC (not started yet) in front of the configured line, reset with `seed`.

    Raises:
        ConfigError: a setting the PLC cannot run with; the message names the key.
    """
    port = cfg.port
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError(f"port: must be a TCP port, a whole number 0-65535 (0: any free one), got {port!r}")
    if not isinstance(cfg.seed, int) or isinstance(cfg.seed, bool):
        raise ConfigError(f"seed: must be a whole number, got {cfg.seed!r}")
    if not cfg.host:
        raise ConfigError("host: name the address to listen on, e.g. host=127.0.0.1 (an empty one is every interface)")
    rates = _numbers(cfg)
    definition, full, rmap = setup_map(cfg)
    names = {lv.value for lv in SETPOINT_LEVERS}
    if not isinstance(cfg.levers, ListConfig):
        raise ConfigError(f"levers: must be a list of setpoint levers, e.g. levers=[speed], got {cfg.levers!r}")
    for lever in cfg.levers:
        if lever not in names:
            raise ConfigError(f"levers: {lever!r} is not a setpoint lever; choose from {', '.join(sorted(names))}")
    control: dict[str, Any] = {"levers": list(cfg.levers)}
    if cfg.control_period_s is not None:
        control["control_period_s"] = cfg.control_period_s
    twin = TwinLine.from_definition(definition, seed=cfg.seed, control=control)
    twin.reset(seed=cfg.seed)
    try:
        return VirtualPLC(
            twin,
            rmap,
            full,
            mode=cfg.mode,
            time_factor=cfg.time_factor,
            host=cfg.host,
            port=cfg.port,
            tls=_tls(cfg.tls),
            watchdog_s=cfg.watchdog_s,
            scan_s=cfg.scan_s,
            publish_s=cfg.publish_s,
            rate_limits=rates,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


def _numbers(cfg: DictConfig) -> dict[str, float] | None:
    """Check that the numeric settings are numbers, naming the key; the rate limits (None: the map's).

    Raises:
        ConfigError: a setting that is no number (a string, a list, a bool), or rate limits that are no mapping.
    """

    def number(value: Any) -> bool:
        return isinstance(value, int | float) and not isinstance(value, bool)

    for key in ("time_factor", "watchdog_s", "scan_s", "publish_s"):
        if not number(cfg[key]):
            raise ConfigError(f"{key}: must be a number, got {cfg[key]!r}")
    rates = cfg.rate_limits
    if rates is None:
        return None
    if not isinstance(rates, DictConfig):
        raise ConfigError(f"rate_limits: must map actuators to rates, e.g. {{cut.speed: 0.001}}, got {rates!r}")
    for name, rate in rates.items():
        if not number(rate):
            raise ConfigError(f"rate_limits.{name!s}: must be a number of units per s, got {rate!r}")
    return {str(k): float(v) for k, v in rates.items()}


def _tls(section: DictConfig | None) -> TlsFiles | None:
    """The server's TLS files; None (plain Modbus TCP) for `tls=null` or no file given."""
    if section is None:
        return None
    if not isinstance(section, DictConfig):
        raise ConfigError(f"tls: give tls.cert, tls.key and tls.ca, or tls=null for plain Modbus TCP; got {section!r}")
    given = {k: section[k] for k in ("cert", "key", "ca") if section[k] is not None}
    if not given:
        return None
    missing = [k for k in ("cert", "key", "ca") if k not in given]
    if missing:
        raise ConfigError(f"tls.{missing[0]}: give tls.cert, tls.key and tls.ca together (see make-certs)")
    files = TlsFiles(Path(given["cert"]), Path(given["key"]), Path(given["ca"]))
    for key, path in (("cert", files.cert), ("key", files.key), ("ca", files.ca)):
        if not path.is_file():
            raise ConfigError(f"tls.{key}: file {path} does not exist")
    return files


def run_serve(plc: VirtualPLC, commands: Iterable[str], out: TextIO) -> None:
    """Serve until `quit`: start, print where and how, then execute each command line and print its answer.

    When the commands run out (stdin closed) it serves on until interrupted.

    Raises:
        ConfigError: the server cannot listen where configured.
    """
    try:
        plc.start()
    except RuntimeError as exc:
        raise ConfigError(f"port: cannot listen on {plc.host}:{plc.port}: in use, or not an address here") from exc
    try:
        print(banner(plc), file=out, flush=True)
        print("type `help` for operator and fault commands, `quit` to stop", file=out, flush=True)
        for line in commands:
            try:
                answer = execute(plc, line)
            except ValueError as exc:
                answer = f"{exc}\n{HELP}"
            except RuntimeError as exc:  # a halted PLC: the command was right, the PLC cannot carry it out
                answer = str(exc)
            if answer is None:
                return
            if answer:
                print(answer, file=out, flush=True)
        print("stdin closed: serving until interrupted (Ctrl-C)", file=out, flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return
    finally:
        plc.stop()


def banner(plc: VirtualPLC) -> str:
    """Where the PLC listens and how it runs, in one line."""
    p = plc.program
    protocol = "Modbus/TCP Security (mutual TLS)" if plc.tls is not None else "Modbus TCP"
    mode = f"free at {p.time_factor:g}x" if p.mode == "free" else "lockstep"
    levers = ", ".join(sorted(lv.value for lv in p.twin.spec.levers)) or "none"
    window = plc.map.command_window
    return (
        f"virtual PLC of line {p.full_spec.name}: {protocol} on {plc.host}:{plc.port}, device {window.device_id}, "
        f"mode {mode}, control period {p.control_period_s:g} s, levers {levers}, watchdog {p.watchdog_s:g} s"
    )


def execute(plc: VirtualPLC, line: str) -> str | None:
    """Carry out one operator or fault command and say what it did (None: `quit`).

    Raises:
        ValueError: an unknown or malformed command; the message says which.
    """
    words = line.split()
    if not words:
        return ""
    head, args = words[0].lower(), words[1:]
    switches: dict[str, Callable[[bool], None]] = {
        "remote": lambda on: plc.set_operator(remote=on),
        "permissive": lambda on: plc.set_operator(permissive=on),
        "estop": lambda on: plc.set_operator(estop=on),
    }
    if head in ("quit", "exit"):
        return None
    if head == "help":
        return HELP
    if head == "status":
        return status_line(plc)
    if head in switches and len(args) == 1 and args[0] in ("on", "off"):
        switches[head](args[0] == "on")
        return status_line(plc)
    if head == "lever":
        if len(args) != 2 or args[1] not in ("local", "remote"):
            raise ValueError("lever: give the lever and local or remote, e.g. `lever speed local`")
        plc.hand_lever(_lever(args[0]), args[1] == "remote")
        return status_line(plc)
    if head == "restart" and len(args) <= 1:
        down_s = _number(args[0], "restart: seconds down") if args else 1.0
        plc.inject(Fault(FaultKind.RESTART, down_s=down_s))
        return f"restarting: down for {down_s:g} s"
    if head == "clear" and len(args) <= 1:
        plc.clear(_kind(args[0]) if args else None)
        return status_line(plc)
    if head == "fault" and args:
        fault = _fault(args)
        plc.inject(fault)
        return f"fault in force: {fault.describe()}"
    raise ValueError(f"unknown command {line.strip()!r}")


def _kind(word: str) -> FaultKind:
    try:
        return FaultKind(word)
    except ValueError:
        raise ValueError(f"no fault {word!r}; faults: {', '.join(k.value for k in FaultKind)}") from None


def _lever(word: str) -> Lever:
    try:
        return Lever(word)
    except ValueError:
        raise ValueError(f"no lever {word!r}; levers: {', '.join(lv.value for lv in SETPOINT_LEVERS)}") from None


def _number(word: str, what: str) -> float:
    try:
        return float(word)
    except ValueError:
        raise ValueError(f"{what}: expected a number, got {word!r}") from None


def _whole(word: str, what: str) -> int:
    """`word` as a whole number (an exception code: 4.7 is none, not 4)."""
    try:
        return int(word)
    except ValueError:
        raise ValueError(f"{what}: expected a whole number, got {word!r}") from None


def _fault(args: list[str]) -> Fault:
    kind = _kind(args[0])
    needs = {FaultKind.LATE: "seconds late", FaultKind.EXCEPTION: "exception code", FaultKind.NAN_SENSOR: "sensor"}
    if kind in needs and len(args) not in ((2, 3) if kind is FaultKind.NAN_SENSOR else (2,)):
        raise ValueError(f"fault {kind.value}: give the {needs[kind]}, e.g. `fault {kind.value} <{needs[kind]}>`")
    if kind is FaultKind.LATE:
        return Fault(kind, delay_s=_number(args[1], "fault late"))
    if kind is FaultKind.EXCEPTION:
        return Fault(kind, code=_whole(args[1], "fault exception"))
    if kind is FaultKind.NAN_SENSOR:
        value = _number(args[2], "fault nan") if len(args) == 3 else float("nan")
        return Fault(kind, sensor=args[1], value=value)
    if kind is FaultKind.RESTART:
        return Fault(kind, down_s=_number(args[1], "fault restart") if len(args) > 1 else 1.0)
    return Fault(kind)


def status_line(plc: VirtualPLC) -> str:
    """The PLC's state in one line: line time, heartbeat, frame, status bits, echo, setpoints, faults."""
    t = plc.inspect(lambda twin: twin.read().time)
    bits = "|".join(b.name or "" for b in StatusBit if b in plc.status) or "none"
    control = "agent" if plc.agent_in_control else "local rules"
    local = sorted(lv.value for lv in plc.program.served - plc.remote_levers)
    kept = f" (kept local: {', '.join(local)})" if local else ""
    active = ", ".join(f"{k}={v:g}" for k, v in plc.active.items() if not math.isnan(v)) or "none"
    faults = ", ".join(f.describe() for f in plc.faults) or "none"
    clock = time.strftime("%H:%M:%S", time.gmtime(plc.program.clock_origin_s + t))
    up = "up" if plc.running else "down" if plc.failure is None else f"halted ({plc.failure})"
    return (
        f"{up}, line time {t:.0f} s ({clock} UTC), heartbeat {plc.heartbeat}, frame {plc.frame_seq}, status {bits}, "
        f"echo {plc.command_echo}, levers with {control}{kept}, active {active}, faults {faults}"
    )


def run_export_map(cfg: DictConfig, out: TextIO) -> None:
    """Print the register map (or write it to `out=`) as a Markdown or CSV tag table, or as YAML.

    Raises:
        ConfigError: an unknown format.
    """
    if cfg.format not in _FORMATS:
        raise ConfigError(f"format: expected one of {', '.join(_FORMATS)}, got {cfg.format!r}")
    _, _, rmap = setup_map(cfg)
    text = {"markdown": rmap.to_markdown, "csv": rmap.to_csv, "yaml": rmap.to_yaml}[cfg.format]()
    if cfg.out is None:
        print(text, end="", file=out)
        return
    path = Path(cfg.out)
    if path.is_dir():
        raise ConfigError(f"out: {path} is a folder; name the file to write, e.g. out={path / 'map.csv'}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    except OSError as exc:
        raise ConfigError(f"out: cannot write {path}: {exc.strerror}") from exc
    words = {t: sum(r.width for r in rmap.registers if r.table is t) for t in Table}
    spread = ", ".join(f"{n} {t.value}" for t, n in words.items() if n)
    print(
        f"written: {path} ({len(rmap.registers)} entries in {sum(words.values())} registers, {spread}, "
        f"of line {rmap.line})",
        file=out,
    )


def run_make_certs(cfg: DictConfig, out: TextIO) -> None:
    """Write a throw-away CA, server and client certificate into `dir` and say how to use them.

    Raises:
        ConfigError: no `dir`, a `dir` that is a file, or one that already holds a CA (kept, not overwritten).
    """
    if not cfg.dir:
        raise ConfigError("dir: name the folder to write the certificates into, e.g. dir=certs")
    folder = Path(cfg.dir)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"dir: {folder} is a file, not a folder")
    if (folder / "ca.pem").exists():
        raise ConfigError(f"dir: {folder} already holds a CA (ca.pem); remove it or choose another folder")
    certs = make_certs(folder)
    s, c = certs.server, certs.client
    print(f"written: CA {certs.ca}, server {s.cert} + {s.key}, client {c.cert} + {c.key}", file=out)
    print(f"serve with: python -m experiments.plc serve tls.cert={s.cert} tls.key={s.key} tls.ca={s.ca}", file=out)
    print(f"connect with: hardware=modbus 'hardware.tls={{cert: {c.cert}, key: {c.key}, ca: {c.ca}}}'", file=out)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: the subcommand, then Hydra overrides; a config error ends with one line and status 1."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("help", "-h", "--help"):
        print(f"{USAGE}\n{__doc__}\n{HELP}")
        return
    commands = ("serve", "export-map", "make-certs")
    if not args:
        sys.exit(USAGE)
    if args[0] not in commands:
        sys.exit(f"error: {args[0]!r} is not a command{did_you_mean(args[0], commands)}\n{USAGE}")
    logging.getLogger("pymodbus").setLevel(logging.ERROR)  # its warnings repeat what the PLC reports
    try:
        cfg = compose_config(args[1:])
        if args[0] == "serve":
            run_serve(setup_serve(cfg), iter(sys.stdin.readline, ""), sys.stdout)
        elif args[0] == "export-map":
            run_export_map(cfg, sys.stdout)
        else:
            run_make_certs(cfg, sys.stdout)
    except Exception as exc:
        message = explain(exc)
        if message is None or os.environ.get(FULL_ERROR) == "1":
            raise
        sys.exit(f"config error: {message} ({HINT})")


if __name__ == "__main__":
    main()
