"""Cumulative counters read from registers that wrap, made continuous again.

A PLC's meter in an integer register (a uint16 parts counter, a uint32 energy total in 0.1 kWh) runs
to its type's top value and starts again at 0. Read one frame after another, a counter that went
down has wrapped: its change is taken modulo the register's range (2^bits steps of its scale). This
assumes it wraps at most once between two reads, which holds while a frame is read more often
than the fastest counter takes to run through its range (a uint16 parts counter: 65,536 parts;
uint32: 4.3e9). Float counters and the levels (`wip_parts`, `last_completion_s`) never wrap.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hardware.counters import Counters
from hardware.interface import StationState
from hardware.modbus.regmap import INT_COUNTERS, RegisterMap, Role, counter_names

_STATE_PREFIX = "state_time_s."


class CounterUnwrap:
    """The counters of successive frames of one map, each wrapping counter carried on past its register's top.

    The first counters after `restart` pass as read; each later one is the last result plus the
    change since the last counters read, modulo the counter's range.

    Args:
        rmap: the register map the counters are read through.
    """

    def __init__(self, rmap: RegisterMap) -> None:
        self.moduli: dict[str, float] = {}  # wrapping counter -> its range in engineering units
        for name in counter_names():
            enc = rmap.entry(Role.COUNTER, name).encoding
            if enc.wraps:
                self.moduli[name] = enc.modulus * abs(enc.scale)
        self._fields = [(n, m) for n, m in self.moduli.items() if not n.startswith(_STATE_PREFIX)]
        states = [s.name.lower() for s in StationState]
        self._states = [
            (states.index(n.removeprefix(_STATE_PREFIX)), m)
            for n, m in self.moduli.items()
            if n.startswith(_STATE_PREFIX)
        ]
        self._last: tuple[Counters, Counters] | None = None  # the last counters read, and what they became

    def restart(self) -> None:
        """Forget the counters read so far: the next ones are taken as read."""
        self._last = None

    def __call__(self, read: Counters) -> Counters:
        """`read` (a frame's counters as decoded) with every wrapping counter unwrapped."""
        if self._last is None or not self.moduli:
            self._last = (read, read)
            return read
        last_read, last = self._last
        if last is last_read and self._none_down(read, last_read):  # no wrap yet: as read (the usual case, fast)
            self._last = (read, read)
            return read
        changed: dict[str, Any] = {}
        for name, modulus in self._fields:
            value = getattr(last, name) + (getattr(read, name) - getattr(last_read, name)) % modulus
            changed[name] = round(value) if name in INT_COUNTERS else value
        if self._states:
            states = list(read.state_time_s)
            for i, modulus in self._states:
                states[i] = last.state_time_s[i] + (states[i] - last_read.state_time_s[i]) % modulus
            changed["state_time_s"] = tuple(states)
        out = replace(read, **changed)
        self._last = (read, out)
        return out

    def _none_down(self, read: Counters, before: Counters) -> bool:
        """Whether no wrapping counter went down from `before` to `read`."""
        return all(getattr(read, n) >= getattr(before, n) for n, _ in self._fields) and all(
            read.state_time_s[i] >= before.state_time_s[i] for i, _ in self._states
        )
