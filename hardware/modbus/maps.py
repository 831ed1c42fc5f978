"""Making and checking register maps: the default layout of any line, and hand-written maps validated.

`setpoint_spec(definition)` is the spec a line's map is laid out for, every setpoint lever included,
so a PLC and a client that hand the agent different levers still agree on the map.
`default_map(spec)` lays a map out for any `LineSpec`; `load_map(path, spec)` reads a hand-written
YAML map and validates it against the spec: overlapping registers, an unmapped sensor, status entry or
counter, a command outside the contiguous window, a range its encoding cannot carry. Each error names
the file and the entry.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from hardware.interface import Lever, LineSpec
from hardware.modbus.codec import Encoding, RegisterType, WordOrder
from hardware.modbus.regmap import (
    AGE_ENCODING,
    COMMAND_HEADER,
    MAX_WRITE,
    STATUS_ENCODING,
    STATUS_NAMES,
    MapError,
    Register,
    RegisterMap,
    Role,
    Table,
    counter_encoding,
    counter_names,
)
from hardware.twin import TwinLine

SETPOINT_LEVERS = (Lever.SPEED, Lever.MODE, Lever.MAINTENANCE, Lever.REORDER)


def setpoint_spec(definition: Mapping[str, Any], control_period_s: float | None = None) -> LineSpec:
    """The spec of a line definition with every setpoint lever handed to the agent.

    Its actuators are every setpoint the line has (reorder only with a raw-material supply), so
    the map laid out for it serves any choice of levers. `control_period_s` replaces the
    definition's control period (s) when given.

    Raises:
        hardware.twin.LineDefinitionError: the definition is invalid.
    """
    return line_spec(definition, SETPOINT_LEVERS, control_period_s)


def line_spec(
    definition: Mapping[str, Any], levers: Iterable[Lever | str], control_period_s: float | None = None
) -> LineSpec:
    """The spec of a line definition that hands the agent `levers` (Hydra's `_target_` keys ignored).

    Decisions tick every `control_period_s` seconds (None: the definition's period).

    Raises:
        hardware.twin.LineDefinitionError: the definition is invalid.
    """
    control: dict[str, Any] = {"levers": sorted(Lever(lv).value for lv in levers)}
    if control_period_s is not None:
        control["control_period_s"] = control_period_s
    return TwinLine.from_definition(definition, control=control).spec


def default_map(spec: LineSpec, device_id: int = 1) -> RegisterMap:
    """A map for any line: status, sensors (float32), ages, active setpoints, counters, then the window.

    Input registers run contiguously from address 0 (status, sensors, sensor ages, active setpoints,
    counters, the closing frame sequence); the command window starts at holding register 0.
    """
    regs: list[Register] = []
    at = 0

    def add(name: str, role: Role, enc: Encoding, unit: str, low: float, high: float, text: str) -> None:
        nonlocal at
        regs.append(Register(name, role, Table.INPUT, at, enc, unit, low, high, device_id, None, text))
        at += enc.width

    status_text = {
        "heartbeat": "PLC scan counter, wraps at 65535",
        "frame_seq": "sequence of the published frame",
        "timestamp": "frame timestamp, ms since the Unix epoch (UTC)",
        "status": "status word, see the status bits",
        "alarms": "bit i: station i has failed",
        "remote_levers": "levers the PLC hands to remote control, see the lever bits",
        "command_echo": "sequence number of the last accepted command block",
        "control_period": "the PLC's control period",
    }
    for name in STATUS_NAMES[:-1]:
        enc, unit = STATUS_ENCODING[name]
        add(name, Role.STATUS, enc, unit, -math.inf, math.inf, status_text[name])
    for s in spec.sensors:
        add(s.name, Role.SENSOR, Encoding(RegisterType.FLOAT32), s.unit, s.low, s.high, "measurement")
    for s in spec.sensors:
        add(
            s.name, Role.AGE, AGE_ENCODING, "s", 0.0, AGE_ENCODING.span()[1], "age of the sample at the frame timestamp"
        )
    for a in spec.actuators:
        add(a.name, Role.ACTIVE, Encoding(RegisterType.FLOAT32), a.unit, a.low, a.high, "setpoint the line runs")
    for name in counter_names():
        enc, unit = counter_encoding(name)
        add(name, Role.COUNTER, enc, unit, -math.inf, math.inf, "cumulative counter")
    enc, unit = STATUS_ENCODING["frame_seq_end"]
    add("frame_seq_end", Role.STATUS, enc, unit, -math.inf, math.inf, "frame_seq again: equal when a read is whole")
    cmd = [
        Register("heartbeat", Role.COMMAND, Table.HOLDING, 0, Encoding(RegisterType.UINT16), "count", 0, 65534,
                 device_id, None, "agent heartbeat: change it at least every watchdog period"),
        Register("sequence", Role.COMMAND, Table.HOLDING, 1, Encoding(RegisterType.UINT16), "count", 0, 65534,
                 device_id, None, "command sequence number: the PLC acts when it changes"),
    ]  # fmt: skip
    address = 2
    for a in spec.actuators:
        cmd.append(
            Register(a.name, Role.COMMAND, Table.HOLDING, address, Encoding(RegisterType.FLOAT32), a.unit,
                     a.low, a.high, device_id, None, f"setpoint ({a.lever.value}); NaN keeps the current one")
        )  # fmt: skip
        address += 2
    return validate(RegisterMap(spec.name, tuple(regs + cmd)), spec)


_FIELDS = {
    "name",
    "role",
    "table",
    "address",
    "type",
    "scale",
    "offset",
    "word_order",
    "unit",
    "low",
    "high",
    "device_id",
    "rate_per_s",
    "description",
}


def load_map(path: str | Path, spec: LineSpec) -> RegisterMap:
    """Read a YAML register map and validate it against `spec`.

    Raises:
        MapError: the file cannot be read or parsed, or an entry is malformed or does not fit the
            spec; the message names the file and the entry.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise MapError(f"register map {path}: cannot read it: {exc}") from exc
    return map_from_mapping(data, spec, str(path))


def map_from_mapping(data: Any, spec: LineSpec, source: str) -> RegisterMap:
    """Build and validate a map from its YAML form (`{line, registers: [...]}`); errors name `source`.

    Raises:
        MapError: see `load_map`.
    """
    if not isinstance(data, Mapping) or not isinstance(data.get("registers"), list):
        raise MapError(f"register map {source}: expected a mapping with a `registers` list")
    unknown = set(data) - {"line", "registers"}
    if unknown:
        raise MapError(f"register map {source}: unknown top-level keys {sorted(unknown)}")
    regs = tuple(_entry(row, i, source) for i, row in enumerate(data["registers"]))
    line = str(data.get("line", spec.name))
    if line != spec.name:
        raise MapError(f"register map {source}: is for line {line!r}, not {spec.name!r}")
    return validate(RegisterMap(line, regs, source), spec)


def _entry(row: Any, index: int, source: str) -> Register:
    where = f"register map {source}: entry {index}"
    if not isinstance(row, Mapping):
        raise MapError(f"{where}: expected a mapping, got {row!r}")
    where += f" ({row.get('name', '?')!r})"
    unknown = set(row) - _FIELDS
    if unknown:
        raise MapError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(_FIELDS)}")
    missing = {"name", "role", "table", "address", "type"} - set(row)
    if missing:
        raise MapError(f"{where}: missing {sorted(missing)}")
    try:
        enc = Encoding(
            RegisterType(row["type"]),
            float(row.get("scale", 1.0)),
            float(row.get("offset", 0.0)),
            WordOrder(row.get("word_order", "big")),
        )
        reg = Register(
            name=str(row["name"]),
            role=Role(row["role"]),
            table=Table(row["table"]),
            address=_whole(row["address"], "address"),
            encoding=enc,
            unit=str(row.get("unit", "")),
            low=float(row.get("low", -math.inf)),
            high=float(row.get("high", math.inf)),
            device_id=_whole(row.get("device_id", 1), "device_id"),
            rate_per_s=None if row.get("rate_per_s") is None else float(row["rate_per_s"]),
            description=str(row.get("description", "")),
        )
    except (TypeError, ValueError) as exc:
        raise MapError(f"{where}: {exc}") from exc
    return reg


def _whole(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    return value


def validate(rmap: RegisterMap, spec: LineSpec) -> RegisterMap:
    """Check a map against its line: every entry where it may be, nothing overlapping, nothing unmapped.

    Raises:
        MapError: the first problem found, naming the map's source and the entry.
    """
    src = rmap.source
    seen: dict[tuple[Role, str], int] = {}
    for i, r in enumerate(rmap.registers):
        where = f"register map {src}: entry {i} ({r.name!r}, {r.role.value})"
        if r.key in seen:
            raise MapError(f"{where}: duplicates entry {seen[r.key]}")
        seen[r.key] = i
        _check_entry(r, where, spec)
    _check_overlaps(rmap)
    _check_complete(rmap, spec)
    _check_window(rmap)
    _check_protocol(rmap, spec)
    return rmap


_WRAPPING = ("heartbeat", "command_echo")  # counters both ends wrap alike: uint16, 0-65534
_WORDS = ("status", "remote_levers", "alarms", "frame_seq", "frame_seq_end")  # plain unsigned integers


def _check_protocol(rmap: RegisterMap, spec: LineSpec) -> None:
    """The entries the protocol itself reads: types both ends agree on, where a frame read checks them."""
    src = rmap.source

    def need(ok: bool, r: Register, what: str) -> None:
        if not ok:
            raise MapError(
                f"register map {src}: {r.role.value} entry {r.name!r} at {r.table.value} {r.address}: {what}"
            )

    def plain(r: Register, *types: RegisterType) -> bool:
        return r.encoding.type in types and r.encoding.scale == 1.0 and r.encoding.offset == 0.0

    for name in _WRAPPING:
        need(plain(rmap.entry(Role.STATUS, name), RegisterType.UINT16), rmap.entry(Role.STATUS, name),
             "must be uint16 with scale 1 (it wraps at 65535 at both ends)")  # fmt: skip
    for name in COMMAND_HEADER:
        r = rmap.entry(Role.COMMAND, name)
        need(plain(r, RegisterType.UINT16), r, "must be uint16 with scale 1 (it wraps at 65535 at both ends)")
    unsigned = (RegisterType.UINT16, RegisterType.UINT32, RegisterType.UINT64)
    for name in _WORDS:
        r = rmap.entry(Role.STATUS, name)
        need(plain(r, *unsigned), r, "must be an unsigned integer with scale 1")
    stamp = rmap.entry(Role.STATUS, "timestamp")
    need(stamp.width == 4, stamp, "must be a 64-bit type: ms since the epoch do not fit in 32 bits")
    alarms = rmap.entry(Role.STATUS, "alarms")
    bits = 16 * alarms.width - 1  # all bits set is the missing value
    need(len(spec.stations) <= bits, alarms, f"{bits} bits cannot flag {len(spec.stations)} stations")
    plan = rmap.read_plan()
    for name in STATUS_NAMES:
        r = rmap.entry(Role.STATUS, name)
        block = plan[-1] if name == "frame_seq_end" else plan[0]
        where = "last" if name == "frame_seq_end" else "first"
        inside = (r.device_id, r.table) == (block.device_id, block.table) and (
            block.address <= r.address < block.address + block.count
        )
        span = f"input {block.address}-{block.address + block.count - 1}"
        need(inside, r, f"must lie in the {where} read request ({span}), so that a frame read whole can be told")


def _check_entry(r: Register, where: str, spec: LineSpec) -> None:
    if r.address < 0 or r.end > 0x10000:
        raise MapError(f"{where}: address {r.address} (+{r.width} registers) is outside 0-65535")
    if not 0 <= r.device_id <= 255:
        raise MapError(f"{where}: device_id {r.device_id} is outside 0-255")
    wanted = Table.HOLDING if r.role is Role.COMMAND else Table.INPUT
    if r.table is not wanted:
        raise MapError(f"{where}: a {r.role.value} entry belongs in {wanted.value} registers, not {r.table.value}")
    if r.rate_per_s is not None and not (r.role is Role.COMMAND and r.rate_per_s > 0):
        raise MapError(f"{where}: rate_per_s is a positive rate of a setpoint, got {r.rate_per_s}")
    low, high = _spec_range(r, where, spec)
    finite = [v for v in (low, high) if math.isfinite(v)]
    if finite and not r.encoding.fits(min(finite), max(finite)):
        lo, hi = r.encoding.span()
        raise MapError(
            f"{where}: range [{low:g}, {high:g}] {r.unit} cannot fit {r.encoding.type.value} with scale "
            f"{r.encoding.scale:g} and offset {r.encoding.offset:g}, which carries [{lo:g}, {hi:g}]"
        )


def _spec_range(r: Register, where: str, spec: LineSpec) -> tuple[float, float]:
    """The range an entry must carry: its sensor's or actuator's from the spec, else the entry's own."""
    if r.role is Role.SENSOR:
        try:
            s = spec.sensors[spec.sensor_index(r.name)]
        except KeyError:
            raise MapError(f"{where}: line {spec.name!r} has no sensor {r.name!r}") from None
        return s.low, s.high
    if r.role is Role.AGE and r.name not in {s.name for s in spec.sensors}:
        raise MapError(f"{where}: line {spec.name!r} has no sensor {r.name!r}")
    if r.role in (Role.ACTIVE, Role.COMMAND) and r.name not in COMMAND_HEADER:
        try:
            a = spec.actuators[spec.actuator_index(r.name)]
        except KeyError:
            raise MapError(f"{where}: line {spec.name!r} has no actuator {r.name!r}") from None
        return a.low, a.high
    if r.role is Role.STATUS and r.name not in STATUS_NAMES:
        raise MapError(f"{where}: not a status entry; status entries are {', '.join(STATUS_NAMES)}")
    if r.role is Role.COUNTER and r.name not in counter_names():
        raise MapError(f"{where}: not a counter; counters are {', '.join(counter_names())}")
    return r.low, r.high


def _check_overlaps(rmap: RegisterMap) -> None:
    ordered = sorted(enumerate(rmap.registers), key=lambda p: (p[1].device_id, p[1].table.value, p[1].address))
    for (i, a), (j, b) in itertools.pairwise(ordered):
        if (a.device_id, a.table) == (b.device_id, b.table) and b.address < a.end:
            raise MapError(
                f"register map {rmap.source}: entry {j} ({b.name!r}, {b.role.value}) at {b.table.value} {b.address} "
                f"overlaps entry {i} ({a.name!r}, {a.role.value}) at {a.address}-{a.end - 1}"
            )


def _check_complete(rmap: RegisterMap, spec: LineSpec) -> None:
    need: list[tuple[Role, Sequence[str]]] = [
        (Role.STATUS, STATUS_NAMES),
        (Role.SENSOR, [s.name for s in spec.sensors]),
        (Role.COUNTER, counter_names()),
        (Role.COMMAND, COMMAND_HEADER),
    ]
    for role, names in need:
        for name in names:
            if rmap.get(role, name) is None:
                raise MapError(f"register map {rmap.source}: {role.value} {name!r} is unmapped")


def _check_window(rmap: RegisterMap) -> None:
    cmd = sorted(rmap.of(Role.COMMAND), key=lambda r: r.address)
    if len({r.device_id for r in cmd}) > 1:
        raise MapError(f"register map {rmap.source}: the command window spans device ids; it must be one block")
    for i, r in enumerate(cmd[:2]):
        if r.name != COMMAND_HEADER[i]:
            raise MapError(
                f"register map {rmap.source}: entry {r.name!r} at holding {r.address}: the command window starts "
                f"with {COMMAND_HEADER[0]!r} then {COMMAND_HEADER[1]!r}"
            )
    start = cmd[0].address
    end = start + sum(r.width for r in cmd)  # entries do not overlap, so inside this span they are contiguous
    for r in cmd:
        if r.end > end:
            raise MapError(
                f"register map {rmap.source}: command entry {r.name!r} at holding {r.address} is outside the "
                f"command window (holding {start}-{end - 1}, one contiguous block from {COMMAND_HEADER[0]!r})"
            )
    window = rmap.command_window
    if window.count > MAX_WRITE:
        raise MapError(
            f"register map {rmap.source}: the command window takes {window.count} registers; one FC16 write "
            f"carries at most {MAX_WRITE}"
        )
