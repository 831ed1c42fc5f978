"""Register images: a PLC frame and a command block as the registers a map lays them out in.

Both ends use these, the virtual PLC to publish and to read commands, `ModbusLine` to read frames
and to write commands, so the two cannot disagree about where a value lives or how it is encoded.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from hardware.counters import Counters
from hardware.interface import Lever, LineSpec, StationState
from hardware.modbus.codec import Encoding, Layout
from hardware.modbus.regmap import (
    COMMAND_HEADER,
    INT_COUNTERS,
    LEVER_BITS,
    STATUS_NAMES,
    Block,
    MapError,
    Register,
    RegisterMap,
    Role,
    StatusBit,
    counter_names,
)


@dataclass(frozen=True)
class PlcStatus:
    """The PLC's status block, decoded."""

    heartbeat: int  # scan counter, wraps to 0 after its register's top value (65535 in uint16)
    frame_seq: int  # sequence of the published frame
    timestamp_s: float  # frame timestamp, s since the Unix epoch (ms resolution)
    status: StatusBit
    alarms: int  # bit i: station i has failed
    remote_levers: frozenset[Lever]  # levers the PLC hands to remote control
    command_echo: int  # sequence number of the last accepted command block
    control_period_s: float


@dataclass(frozen=True)
class PlcFrame:
    """Everything the input registers carry, decoded; arrays in the spec's sensor and actuator order."""

    status: PlcStatus
    values: np.ndarray  # sensor values (NaN = dropout)
    ages: np.ndarray  # s before the timestamp each value was sampled (NaN: missing, or no age in the map)
    active: np.ndarray  # setpoints the line runs now (NaN where the map has no readback)
    counters: Counters
    frame_seq_end: int  # equals status.frame_seq when the frame was read whole


def lever_bits(levers: frozenset[Lever]) -> int:
    """The remote-levers word for a set of levers."""
    return sum(LEVER_BITS[lv] for lv in levers)


def bits_levers(word: int) -> frozenset[Lever]:
    """The levers a remote-levers word names."""
    return frozenset(lv for lv, bit in LEVER_BITS.items() if word & bit)


_STATES = tuple(s.name.lower() for s in StationState)
_FIRST_STATUS = tuple(n for n in STATUS_NAMES if n != "frame_seq_end")  # in the first read request of a frame


class InputImage:
    """The input registers of a map: `encode` a `PlcFrame` (PLC side), `decode` what was read (client side)."""

    def __init__(self, rmap: RegisterMap, spec: LineSpec) -> None:
        self.map = rmap
        self.spec = spec
        self.plan: tuple[Block, ...] = rmap.read_plan()
        self._status = {name: rmap.entry(Role.STATUS, name) for name in STATUS_NAMES}
        self._sensors = tuple(rmap.entry(Role.SENSOR, s.name) for s in spec.sensors)
        self._ages = tuple(rmap.get(Role.AGE, s.name) for s in spec.sensors)
        self.has_age = np.array([r is not None for r in self._ages])  # per sensor: the map carries its age
        self._active = tuple(rmap.get(Role.ACTIVE, a.name) for a in spec.actuators)
        self._counters = tuple((name, rmap.entry(Role.COUNTER, name)) for name in counter_names())
        self._where: dict[tuple[Role, str], tuple[int, int]] = {}  # entry key -> (block index, offset in block)
        for r in rmap.registers:
            for b, block in enumerate(self.plan):
                if (block.device_id, block.table) == (r.device_id, r.table) and block.address <= r.address < (
                    block.address + block.count
                ):
                    self._where[r.key] = (b, r.address - block.address)
        starts = list(itertools.accumulate((p.count for p in self.plan), initial=0))

        def placed(regs: Sequence[Register | None], first_only: bool = False) -> list[tuple[Encoding, int]]:
            """Encodings and offsets of the entries the map carries, in the run read (or the first block)."""
            out = []
            for r in regs:
                if r is not None:
                    b, off = self._where[r.key]
                    out.append((r.encoding, off if first_only else starts[b] + off))
            return out

        everything: list[Register | None] = [self._status[n] for n in STATUS_NAMES]
        everything += [*self._sensors, *self._ages, *self._active, *(r for _, r in self._counters)]
        self._slots = [i for i, r in enumerate(everything) if r is not None]  # entries the map carries
        self._size = len(everything)
        self._frame_layout = Layout(placed(everything), starts[-1])
        self._status_layout = Layout(placed([self._status[n] for n in _FIRST_STATUS], True), self.plan[0].count)

    def decode(self, blocks: Sequence[Sequence[int]]) -> PlcFrame:
        """A frame from the registers of each block of `plan`, in plan order.

        Raises:
            ValueError: the wrong number of blocks or registers, or a counter or status value missing.
        """
        if len(blocks) != len(self.plan) or any(len(b) != p.count for b, p in zip(blocks, self.plan, strict=True)):
            raise ValueError(f"expected blocks of {[p.count for p in self.plan]} registers")
        flat = blocks[0] if len(blocks) == 1 else [r for b in blocks for r in b]
        got = self._frame_layout.decode(flat)
        v = got if len(got) == self._size else [math.nan] * self._size
        if v is not got:
            for i, x in zip(self._slots, got, strict=True):
                v[i] = x
        ns, nv, na = len(STATUS_NAMES), len(self._sensors), len(self._ages)
        nt = len(self._active)
        status = self._status_of(dict(zip(STATUS_NAMES, v[:ns], strict=True)))
        counts = dict(zip(counter_names(), v[ns + nv + na + nt :], strict=True))
        for name, value in counts.items():
            if math.isnan(value):
                raise ValueError(f"counter {name!r} (input {self.map.entry(Role.COUNTER, name).address}) reads missing")
        return PlcFrame(
            status=status,
            values=np.array(v[ns : ns + nv]),
            ages=np.array(v[ns + nv : ns + nv + na]),
            active=np.array(v[ns + nv + na : ns + nv + na + nt]),
            counters=_counters(counts),
            frame_seq_end=int(v[STATUS_NAMES.index("frame_seq_end")]),
        )

    def decode_status(self, first: Sequence[int]) -> PlcStatus:
        """The status block alone, from the registers of the plan's first block (where a valid map keeps it).

        Raises:
            ValueError: the wrong number of registers, or a status value missing.
        """
        if len(first) != self.plan[0].count:
            raise ValueError(f"expected the first block's {self.plan[0].count} registers, got {len(first)}")
        return self._status_of(dict(zip(_FIRST_STATUS, self._status_layout.decode(first), strict=True)))

    def _status_of(self, st: dict[str, float]) -> PlcStatus:
        for name in _FIRST_STATUS:
            if math.isnan(st[name]):
                raise ValueError(f"status register {name!r} (input {self._status[name].address}) reads missing")
        return PlcStatus(
            heartbeat=int(st["heartbeat"]),
            frame_seq=int(st["frame_seq"]),
            timestamp_s=st["timestamp"],
            status=StatusBit(int(st["status"]) & sum(StatusBit)),
            alarms=int(st["alarms"]),
            remote_levers=bits_levers(int(st["remote_levers"])),
            command_echo=int(st["command_echo"]),
            control_period_s=st["control_period"],
        )

    def encode(self, frame: PlcFrame, since: list[list[int]] | None = None) -> list[list[int]]:
        """The registers of each block of `plan` that carry `frame` (ages clipped to what they can carry).

        `since`: the registers of a frame with the same measurements and counters; only the status
        and the active setpoints are encoded anew (a PLC scan that only moves its heartbeat).
        """
        out = [[0] * p.count for p in self.plan] if since is None else [list(b) for b in since]

        def put(r: Register | None, v: float) -> None:
            if r is None:
                return
            b, off = self._where[r.key]
            out[b][off : off + r.width] = r.encoding.encode(v)

        s = frame.status
        status_values = {
            "heartbeat": s.heartbeat,  # counters: the codec wraps them
            "frame_seq": s.frame_seq,
            "timestamp": s.timestamp_s,
            "status": int(s.status),
            "alarms": s.alarms,
            "remote_levers": lever_bits(s.remote_levers),
            "command_echo": s.command_echo,
            "control_period": s.control_period_s,
            "frame_seq_end": frame.frame_seq_end,
        }
        for name, reg in self._status.items():
            put(reg, float(status_values[name]))
        for active, v in zip(self._active, frame.active.tolist(), strict=True):
            put(active, v)
        if since is not None:
            return out
        for sensor, v in zip(self._sensors, frame.values.tolist(), strict=True):
            put(sensor, v)
        for age, v in zip(self._ages, frame.ages.tolist(), strict=True):
            if age is not None:
                put(age, min(max(v, 0.0), age.encoding.span()[1]) if math.isfinite(v) else math.nan)
        c = frame.counters
        for name, r in self._counters:
            put(r, _counter_value(c, name))
        return out


@dataclass(frozen=True)
class CommandBlock:
    """One write of the command window: the agent's heartbeat, the sequence number, the setpoints."""

    heartbeat: int
    sequence: int
    setpoints: np.ndarray  # in `CommandImage.names` order; NaN = keep the current setpoint


class CommandImage:
    """The command window of a map: `encode` a block (client side), `decode` a written block (PLC side)."""

    def __init__(self, rmap: RegisterMap) -> None:
        self.map = rmap
        self.window: Block = rmap.command_window
        self.header = tuple(rmap.entry(Role.COMMAND, n) for n in COMMAND_HEADER)
        self.entries: tuple[Register, ...] = rmap.setpoints
        self.names: tuple[str, ...] = tuple(r.name for r in self.entries)

    def encode(self, block: CommandBlock, bounds: tuple[np.ndarray, np.ndarray] | None = None) -> list[int]:
        """The window's registers for `block`: heartbeat and sequence wrapped, each setpoint rounded inside its limits.

        `bounds`: as `setpoint_registers`.

        Raises:
            ValueError: as `setpoint_registers`.
        """
        return self.stamp(self.setpoint_registers(block.setpoints, bounds), block.heartbeat, block.sequence)

    def setpoint_registers(
        self, setpoints: np.ndarray, bounds: tuple[np.ndarray, np.ndarray] | None = None
    ) -> list[int]:
        """The window's registers for `setpoints` (in `names` order, NaN = keep), header zero: `stamp` it to send.

        Each setpoint is rounded to its register's grid inside its limits and `bounds`: (low, high) in
        `names` order (a guard's limits and interlocks, tighter than the entry's limits).

        Raises:
            ValueError: a setpoint its encoding cannot carry inside its limits and bounds, or the
                wrong number of setpoints.
        """
        if len(setpoints) != len(self.entries):
            raise ValueError(f"expected {len(self.entries)} setpoints ({', '.join(self.names)})")
        out = [0] * self.window.count
        n = len(self.entries)
        low, high = ([-math.inf] * n, [math.inf] * n) if bounds is None else (list(bounds[0]), list(bounds[1]))
        for r, v, lo, hi in zip(self.entries, np.asarray(setpoints).tolist(), low, high, strict=True):
            off = r.address - self.window.address
            out[off : off + r.width] = r.encoding.encode(v, within=(max(r.low, lo), min(r.high, hi)))
        return out

    def stamp(self, registers: Sequence[int], heartbeat: int, sequence: int) -> list[int]:
        """A copy of the window's `registers` with the heartbeat and sequence number written (both wrapped)."""
        out = list(registers)
        for r, v in zip(self.header, (heartbeat, sequence), strict=True):
            off = r.address - self.window.address
            out[off : off + r.width] = r.encoding.encode(float(v))
        return out

    def decode(self, registers: Sequence[int]) -> CommandBlock:
        """The block a write of the whole window carries.

        Raises:
            ValueError: the wrong number of registers.
        """
        if len(registers) != self.window.count:
            raise ValueError(f"the command window takes {self.window.count} registers, got {len(registers)}")

        def value(r: Register) -> float:
            off = r.address - self.window.address
            return r.encoding.decode(registers[off : off + r.width])

        heartbeat, sequence = (int(value(r)) for r in self.header)  # counters: never missing
        return CommandBlock(heartbeat, sequence, np.array([value(r) for r in self.entries]))


def _counter_value(c: Counters, name: str) -> float:
    if name.startswith("state_time_s."):
        return float(c.state_time_s[_STATES.index(name.split(".", 1)[1])])
    return float(getattr(c, name))


def _counters(values: dict[str, float]) -> Counters:
    states = tuple(values[f"state_time_s.{s}"] for s in _STATES)
    kwargs: dict[str, Any] = {
        f.name: (int(values[f.name]) if f.name in INT_COUNTERS else values[f.name])
        for f in fields(Counters)
        if f.name != "state_time_s"
    }
    return Counters(**kwargs, state_time_s=states)


__all__ = ["CommandBlock", "CommandImage", "InputImage", "MapError", "PlcFrame", "PlcStatus", "bits_levers"]
