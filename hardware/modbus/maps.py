"""Making register maps: the default layout of any line, and hand-written maps read and validated.

`setpoint_spec(definition)` is the spec a line's map is laid out for, every setpoint lever included,
so a PLC and a client that hand the agent different levers still agree on the map.
`default_map(spec)` lays a map out for any `LineSpec`; `load_map(path, spec)` reads a hand-written
YAML map (a key given twice in one mapping is refused, naming the key and the line; a malformed
field names its entry, key and, for a choice, the allowed values) and checks it with
`hardware.modbus.map_checks.validate`. Each error names the file and the entry.
"""

from __future__ import annotations

import contextlib
import enum
import math
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import yaml

from hardware.interface import Lever, LineSpec
from hardware.modbus.codec import Encoding, RegisterType, WordOrder
from hardware.modbus.map_checks import MAX_SETPOINT_STEP, validate
from hardware.modbus.regmap import (
    AGE_ENCODING,
    COMMAND_HEADER,
    STATUS_ENCODING,
    STATUS_NAMES,
    MapError,
    Register,
    RegisterMap,
    Role,
    Table,
    counter_encoding,
    counter_names,
    is_wrapping,
)
from hardware.twin import TwinLine

E = TypeVar("E", bound=enum.Enum)

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


_HEADER_ENCODING = Encoding(RegisterType.UINT16, wraps=True)  # the command window's heartbeat and sequence


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
        Register("heartbeat", Role.COMMAND, Table.HOLDING, 0, _HEADER_ENCODING, "count", 0, 65535,
                 device_id, None, "agent heartbeat: change it at least every watchdog period"),
        Register("sequence", Role.COMMAND, Table.HOLDING, 1, _HEADER_ENCODING, "count", 0, 65535,
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


def load_map(path: str | Path, spec: LineSpec, max_setpoint_step: float = MAX_SETPOINT_STEP) -> RegisterMap:
    """Read a YAML register map and validate it against `spec` (`max_setpoint_step`: see `validate`).

    Raises:
        MapError: the file cannot be read or parsed, a key is given twice in one mapping, or an entry
            is malformed or does not fit the spec; the message names the file and the entry or line.
    """
    path = Path(path)
    try:
        loader = _MapLoader(path.read_text())
        try:
            data = loader.get_single_data()
        finally:
            loader.dispose()
    except (OSError, yaml.YAMLError) as exc:
        raise MapError(f"register map {path}: cannot read it: {exc}") from exc
    return map_from_mapping(data, spec, str(path), max_setpoint_step)


class _DuplicateKey(yaml.YAMLError):
    """A key given twice in one YAML mapping."""


class _MapLoader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses a key given twice in one mapping (`safe_load` keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        """The mapping of `node`, after checking that no scalar key appears in it twice."""
        first: dict[Any, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if key in first:
                raise _DuplicateKey(f"line {line}: key {key!r} given twice in one mapping (first on line {first[key]})")
            first[key] = line
        return super().construct_mapping(node, deep=deep)


def map_from_mapping(
    data: Any, spec: LineSpec, source: str, max_setpoint_step: float = MAX_SETPOINT_STEP
) -> RegisterMap:
    """Build and validate a map from its YAML form (`{line, registers: [...]}`); errors name `source`.

    A setpoint entry without `low` or `high` takes its actuator's limits.

    Raises:
        MapError: see `load_map`.
    """
    if not isinstance(data, Mapping) or not isinstance(data.get("registers"), list):
        raise MapError(f"register map {source}: expected a mapping with a `registers` list")
    unknown = set(data) - {"line", "registers"}
    if unknown:
        raise MapError(f"register map {source}: unknown top-level keys {sorted(unknown)}")
    regs = tuple(_with_limits(_entry(row, i, source), spec) for i, row in enumerate(data["registers"]))
    line = str(data.get("line", spec.name))
    if line != spec.name:
        raise MapError(f"register map {source}: is for line {line!r}, not {spec.name!r}")
    return validate(RegisterMap(line, regs, source), spec, max_setpoint_step)


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
    name = str(row["name"])
    role = _choice(row, "role", Role, where)
    kind = _choice(row, "type", RegisterType, where)
    scale, offset = _number(row, "scale", 1.0, where), _number(row, "offset", 0.0, where)
    order = _choice(row, "word_order", WordOrder, where, WordOrder.BIG)
    try:
        enc = Encoding(kind, scale, offset, order, wraps=is_wrapping(role, name) and not kind.is_float)
    except ValueError as exc:
        raise MapError(f"{where}: {exc}") from exc
    rate = row.get("rate_per_s")
    return Register(
        name=name,
        role=role,
        table=_choice(row, "table", Table, where),
        address=_whole(row, "address", 0, where),
        encoding=enc,
        unit=str(row.get("unit", "")),
        low=_number(row, "low", -math.inf, where),
        high=_number(row, "high", math.inf, where),
        device_id=_whole(row, "device_id", 1, where),
        rate_per_s=None if rate is None else _number(row, "rate_per_s", 0.0, where),
        description=str(row.get("description", "")),
    )


def _choice(row: Mapping[str, Any], key: str, kind: type[E], where: str, default: E | None = None) -> E:
    """The enum member `row[key]` names (`default` when absent), or an error listing the allowed values."""
    if key not in row and default is not None:
        return default
    value = row[key]
    for member in kind:
        if member.value == value:
            return member
    allowed = ", ".join(str(m.value) for m in kind)
    raise MapError(f"{where}: {key}: {value!r} is not one of {allowed}")


def _number(row: Mapping[str, Any], key: str, default: float, where: str) -> float:
    """`row[key]` as a number (`default` when absent); a numeric string such as `1e-3` counts (YAML 1.1 reads it so)."""
    value = row.get(key, default)
    number = math.nan
    if isinstance(value, int | float | str) and not isinstance(value, bool):
        with contextlib.suppress(ValueError, OverflowError):  # an integer past float's range: no number
            number = float(value)
    if math.isnan(number):
        raise MapError(f"{where}: {key}: expected a number, got {value!r}")
    return number


def _whole(row: Mapping[str, Any], key: str, default: int, where: str) -> int:
    """`row[key]` as a whole number (`default` when absent)."""
    value = row.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise MapError(f"{where}: {key}: expected a whole number, got {value!r}")
    return value


def _with_limits(r: Register, spec: LineSpec) -> Register:
    """A setpoint entry with its actuator's limits where the file gives none (`validate` names an unknown one)."""
    if r.role is not Role.COMMAND or r.name in COMMAND_HEADER or r.name not in {a.name for a in spec.actuators}:
        return r
    a = spec.actuators[spec.actuator_index(r.name)]
    return replace(r, low=a.low if math.isinf(r.low) else r.low, high=a.high if math.isinf(r.high) else r.high)
