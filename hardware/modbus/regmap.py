"""Register maps: where every value of a line lives in a PLC's Modbus registers, and how it is encoded.

A `RegisterMap` is a flat list of `Register` entries, each a tag as a controls engineer programs it:
name, role, table (input or holding registers), 0-based protocol address, encoding, unit and range,
device id. Roles:

- `status`: the PLC's own status block (input registers), one entry per `STATUS_NAMES` name: a scan
  heartbeat, the frame sequence (also repeated as `frame_seq_end`, the last input register, so that a
  frame read in several requests can be checked for tearing), the frame's timestamp (s since the Unix
  epoch, carried as ms), the `StatusBit` word, station alarms (bit i: station i failed), the levers the
  PLC hands to remote control (`LEVER_BITS`), the echo of the accepted command sequence number, and
  the PLC's control period.
- `sensor`: one per spec sensor, in input registers; `age`: how long before the frame's timestamp
  each sensor was sampled, s; `active`: the setpoint the line runs now, per actuator (what the PLC
  accepted, clamped, rate-limited or fell back to).
- `counter`: the cumulative counters a PLC or MES keeps (`hardware.counters.Counters`, per-state
  times as `state_time_s.<state>`); `last_completion_s` is a timestamp (s since the epoch).
- `command`: the command window, one contiguous block of holding registers written in one FC16
  request: `heartbeat`, `sequence`, then setpoints named after the spec's actuators (a missing value
  means keep the current setpoint).

Counters wrap (`is_wrapping`): the protocol's (heartbeats, frame sequence, command sequence and its
echo) and the cumulative counters in an integer type run over their type's whole range and start
again at 0, with no value reserved for missing; compare them for change only, modulo their range.

`hardware.modbus.maps` makes the default map of a line and checks hand-written ones.
"""

from __future__ import annotations

import csv
import enum
import io
import math
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any

import yaml

from hardware.counters import LEVELS, Counters
from hardware.interface import Lever, StationState
from hardware.modbus.codec import Encoding, RegisterType

MAX_READ = 125  # registers one FC3/FC4 request may read
MAX_WRITE = 123  # registers one FC16 request may write


class Table(enum.Enum):
    """Which register table an entry lives in: measurements are read-only, commands are written."""

    INPUT = "input"  # FC4, read only
    HOLDING = "holding"  # FC3 read, FC16 write

    @property
    def access(self) -> str:
        """What a client may do: `r` or `rw`."""
        return "r" if self is Table.INPUT else "rw"


class Role(enum.Enum):
    """What an entry carries."""

    STATUS = "status"
    SENSOR = "sensor"
    AGE = "age"
    ACTIVE = "active"
    COUNTER = "counter"
    COMMAND = "command"


class StatusBit(enum.IntFlag):
    """Bits of the PLC's status word."""

    REMOTE = 1  # the operator hands the line to remote (agent) control
    PERMISSIVE = 2  # the process permits remote setpoints now
    ESTOP = 4  # emergency stop pressed: the line is stopped
    WD_TRIPPED = 8  # the agent's heartbeat stopped: the PLC runs its local setpoints
    SP_LIMITED = 16  # the PLC clamped or rate-limited the last accepted command
    ALARM = 32  # a station alarm is active (see the alarms word)


LEVER_BITS = {Lever.SPEED: 1, Lever.MODE: 2, Lever.MAINTENANCE: 4, Lever.REORDER: 8, Lever.DISPATCH: 16}

STATUS_NAMES = (
    "heartbeat",
    "frame_seq",
    "timestamp",
    "status",
    "alarms",
    "remote_levers",
    "command_echo",
    "control_period",
    "frame_seq_end",
)
COMMAND_HEADER = ("heartbeat", "sequence")

PROTOCOL_COUNTERS = {  # the counters of the protocol itself, by role: they wrap at both ends
    Role.STATUS: ("heartbeat", "frame_seq", "command_echo", "frame_seq_end"),
    Role.COMMAND: COMMAND_HEADER,
}

TIME_EPS_S = 0.0005  # half the resolution of the PLC's clock registers (timestamp, control period: 1 ms), s

STATUS_ENCODING = {
    "heartbeat": (Encoding(RegisterType.UINT16, wraps=True), "count"),
    "frame_seq": (Encoding(RegisterType.UINT32, wraps=True), "count"),
    "timestamp": (Encoding(RegisterType.UINT64, scale=0.001), "s since epoch"),
    "status": (Encoding(RegisterType.UINT16), "bits"),
    "alarms": (Encoding(RegisterType.UINT32), "bits"),
    "remote_levers": (Encoding(RegisterType.UINT16), "bits"),
    "command_echo": (Encoding(RegisterType.UINT16, wraps=True), "count"),
    "control_period": (Encoding(RegisterType.UINT32, scale=0.001), "s"),
    "frame_seq_end": (Encoding(RegisterType.UINT32, wraps=True), "count"),
}
AGE_ENCODING = Encoding(RegisterType.UINT16, scale=0.01)  # 10 ms steps, up to 655 s


def counter_names() -> tuple[str, ...]:
    """Names of the counter entries, in `Counters` order (per-state times one entry per state)."""
    names: list[str] = []
    for f in fields(Counters):
        if f.name == "state_time_s":
            names += [f"state_time_s.{s.name.lower()}" for s in StationState]
        else:
            names.append(f.name)
    return tuple(names)


INT_COUNTERS = frozenset(f.name for f in fields(Counters) if f.type in ("int", int))


def is_wrapping(role: Role, name: str) -> bool:
    """Whether the entry of `role` named `name` is a counter that wraps (in an integer type: see the module doc).

    The protocol's counters and every cumulative counter do; the levels (`wip_parts`,
    `last_completion_s`) and everything else do not.
    """
    if role is Role.COUNTER:
        return name not in LEVELS
    return name in PROTOCOL_COUNTERS.get(role, ())


def counter_encoding(name: str) -> tuple[Encoding, str]:
    """The default encoding and unit of a counter: integers in uint32, totals in float64, a timestamp in ms."""
    if name == "last_completion_s":
        return Encoding(RegisterType.UINT64, scale=0.001), "s since epoch"
    if name in INT_COUNTERS:
        return Encoding(RegisterType.UINT32, wraps=is_wrapping(Role.COUNTER, name)), "count"
    return Encoding(RegisterType.FLOAT64), _counter_unit(name)


def _counter_unit(name: str) -> str:
    for suffix, unit in (("_s", "s"), ("_kwh", "kWh"), ("_kg", "kg"), ("_h", "unit h"), ("_part_s", "part s")):
        if name.endswith(suffix) or (name.startswith("state_time_s") and suffix == "_s"):
            return unit
    if "cost" in name:
        return "currency"
    if name.startswith("material"):
        return "units"
    return "health" if name.startswith("health") else ""


class MapError(ValueError):
    """A register map that cannot serve its line; the message names the map and the entry."""


@dataclass(frozen=True)
class Register:
    """One tag of the map: what it carries, where it lives and how it is encoded."""

    name: str
    role: Role
    table: Table
    address: int  # 0-based protocol address
    encoding: Encoding
    unit: str = ""
    low: float = -math.inf  # engineering range the value must fit (sensors and setpoints: the spec's)
    high: float = math.inf
    device_id: int = 1
    rate_per_s: float | None = None  # setpoints: the PLC's rate limit, units per s (None: none)
    description: str = ""

    @property
    def width(self) -> int:
        """Registers the entry takes."""
        return self.encoding.width

    @property
    def end(self) -> int:
        """One past the entry's last address."""
        return self.address + self.width

    @property
    def key(self) -> tuple[Role, str]:
        """What identifies the entry within a map."""
        return self.role, self.name


@dataclass(frozen=True)
class Block:
    """One contiguous run of registers read in one request."""

    device_id: int
    table: Table
    address: int
    count: int


@dataclass(frozen=True)
class RegisterMap:
    """A validated register map of one line (see the module docstring for the roles)."""

    line: str
    registers: tuple[Register, ...]
    source: str = "default map"

    def __post_init__(self) -> None:
        """Index the entries by role and name."""
        object.__setattr__(self, "_by_key", {r.key: r for r in self.registers})

    def get(self, role: Role, name: str) -> Register | None:
        """The entry of `role` named `name`, or None."""
        by_key: dict[tuple[Role, str], Register] = self.__dict__["_by_key"]
        return by_key.get((role, name))

    def entry(self, role: Role, name: str) -> Register:
        """The entry of `role` named `name`.

        Raises:
            MapError: the map has no such entry.
        """
        reg = self.get(role, name)
        if reg is None:
            raise MapError(f"{self.source}: no {role.value} entry {name!r}")
        return reg

    def of(self, role: Role) -> tuple[Register, ...]:
        """Entries of one role, in map order."""
        return tuple(r for r in self.registers if r.role is role)

    @property
    def setpoints(self) -> tuple[Register, ...]:
        """The setpoint entries of the command window, in address order."""
        return tuple(
            sorted((r for r in self.of(Role.COMMAND) if r.name not in COMMAND_HEADER), key=lambda r: r.address)
        )

    @property
    def command_window(self) -> Block:
        """The holding-register block the agent writes in one FC16 request."""
        cmd = self.of(Role.COMMAND)
        start = min(r.address for r in cmd)
        return Block(cmd[0].device_id, Table.HOLDING, start, max(r.end for r in cmd) - start)

    def read_plan(self) -> tuple[Block, ...]:
        """The fewest requests that read every input-register entry: contiguous runs of at most `MAX_READ`."""
        return _runs([r for r in self.registers if r.table is Table.INPUT])

    def to_yaml(self) -> str:
        """The map as a YAML file `load_map` reads back."""
        rows = []
        for r in self.registers:
            row: dict[str, Any] = {
                "name": r.name,
                "role": r.role.value,
                "table": r.table.value,
                "address": r.address,
                "type": r.encoding.type.value,
            }
            if r.encoding.scale != 1.0:
                row["scale"] = r.encoding.scale
            if r.encoding.offset != 0.0:
                row["offset"] = r.encoding.offset
            if r.width > 1:
                row["word_order"] = r.encoding.word_order.value
            if r.unit:
                row["unit"] = r.unit
            if math.isfinite(r.low):
                row["low"] = r.low
            if math.isfinite(r.high):
                row["high"] = r.high
            if r.device_id != 1:
                row["device_id"] = r.device_id
            if r.rate_per_s is not None:
                row["rate_per_s"] = r.rate_per_s
            if r.description:
                row["description"] = r.description
            rows.append(row)
        lines = [
            f"# Modbus register map of line {self.line}: 0-based protocol addresses; input = FC4, holding = FC3/FC16.",
            f"line: {self.line}",
            "registers:",
        ]
        lines += [
            "  - " + yaml.safe_dump(row, default_flow_style=True, sort_keys=False, width=1000).strip() for row in rows
        ]
        return "\n".join(lines) + "\n"

    def rows(self) -> list[dict[str, str]]:
        """The map as a tag table: one row per entry, every column a string."""
        out = []
        for r in self.registers:
            enc = r.encoding
            out.append(
                {
                    "tag": r.name,
                    "role": r.role.value,
                    "device": str(r.device_id),
                    "table": r.table.value,
                    "fc": "4" if r.table is Table.INPUT else "3/16",
                    "address": str(r.address),
                    "registers": str(r.width),
                    "type": enc.type.value,
                    "word_order": enc.word_order.value if r.width > 1 else "",
                    "scale": f"{enc.scale:g}",
                    "offset": f"{enc.offset:g}",
                    "unit": r.unit,
                    "low": "" if math.isinf(r.low) else f"{r.low:g}",
                    "high": "" if math.isinf(r.high) else f"{r.high:g}",
                    "access": r.table.access,
                    "rate_per_s": "" if r.rate_per_s is None else f"{r.rate_per_s:g}",
                    "description": r.description,
                }
            )
        return out

    def to_csv(self) -> str:
        """The tag table as CSV."""
        rows = self.rows()
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buf.getvalue()

    def to_markdown(self) -> str:
        """The tag table as Markdown, with how to read it."""
        rows = self.rows()
        cols = list(rows[0])
        window = self.command_window
        lines = [
            f"# Modbus register map: line `{self.line}`",
            "",
            "Addresses are 0-based protocol addresses (PLC documentation often adds 30001 for input and",
            "40001 for holding registers). Engineering value = raw x scale + offset. Bytes inside a register",
            "are big-endian; `word_order` says which word of a 32- or 64-bit value comes first. A missing",
            "value is NaN in a float and the reserved raw value in an integer (the most negative for signed,",
            "the largest for unsigned types). Counters (heartbeats, sequence numbers and their echo, integer",
            "cumulative counters) have no missing value: they run over their type's whole range and wrap to 0.",
            "",
            f"Command window: device {window.device_id}, holding registers {window.address}-"
            f"{window.address + window.count - 1}, written as one FC16 block: agent heartbeat, command",
            "sequence number, setpoints. The PLC acts on a block only when the sequence number changes and",
            "echoes the accepted number in `command_echo`. Status bits: "
            + ", ".join(f"{b.name}={b.value}" for b in StatusBit)
            + "; lever bits: "
            + ", ".join(f"{lv.value}={bit}" for lv, bit in LEVER_BITS.items())
            + ".",
            "",
            "| " + " | ".join(cols) + " |",
            "|" + "---|" * len(cols),
        ]
        lines += ["| " + " | ".join(row[c] for c in cols) + " |" for row in rows]
        return "\n".join(lines) + "\n"


def _runs(entries: Iterable[Register]) -> tuple[Block, ...]:
    blocks: list[Block] = []
    ordered = sorted(entries, key=lambda r: (r.device_id, r.table.value, r.address))
    for r in ordered:
        last = blocks[-1] if blocks else None
        if (
            last is not None
            and (last.device_id, last.table) == (r.device_id, r.table)
            and last.address + last.count == r.address
            and last.count + r.width <= MAX_READ
        ):
            blocks[-1] = Block(last.device_id, last.table, last.address, last.count + r.width)
        else:
            blocks.append(Block(r.device_id, r.table, r.address, r.width))
    return tuple(blocks)
