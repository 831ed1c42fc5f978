"""Cumulative counters read from registers that wrap, made continuous again.

A PLC's meter in an integer register (a uint16 parts counter, a uint32 energy total in 0.1 kWh) runs
to its type's top value and starts again at 0. Read one frame after another, a counter that went
down has wrapped: its change is taken modulo the register's range (2^bits steps of its scale). This
assumes it moves by less than half its range between two reads, which holds while a frame is read
more often than the fastest counter takes to run through half its range (a uint16 parts counter:
32,768 parts; uint32: 2.1e9). A counter that went down by more than that, or a float counter that
went down at all, was reset (a PLC restart, an operator's reset): `CounterReset`, not a wrap.
The levels (`wip_parts`, `last_completion_s`) are read as they are.
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

from hardware.counters import LEVELS, Counters
from hardware.interface import StationState
from hardware.modbus.regmap import INT_COUNTERS, RegisterMap, Role, counter_names

_STATE_PREFIX = "state_time_s."
_CUMULATIVE = tuple(f.name for f in fields(Counters) if f.name not in LEVELS and f.name != "state_time_s")
_STATE_NAMES = tuple(f"{_STATE_PREFIX}{s.name.lower()}" for s in StationState)  # state_time_s's entries


class CounterReset(ValueError):
    """A cumulative counter went down by more than a wrap explains: the counters were reset."""


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
        """`read` (a frame's counters as decoded) with every wrapping counter unwrapped.

        Raises:
            CounterReset: a counter went down by more than half its register's range, or a counter
                that does not wrap went down at all; nothing is kept of `read`.
        """
        if self._last is None:
            self._last = (read, read)
            return read
        last_read, last = self._last
        wrapped = self._wrapped(read, last_read)  # checked on every read, also after a wrap: a reset is no wrap
        if last is last_read and not wrapped:  # no wrap yet: as read (the usual case)
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

    def _wrapped(self, read: Counters, before: Counters) -> bool:
        """Whether a counter wrapped from `before` to `read`; `CounterReset` if one went down further than a wrap."""
        pairs = [(n, getattr(read, n), getattr(before, n)) for n in _CUMULATIVE]
        pairs += zip(_STATE_NAMES, read.state_time_s, before.state_time_s, strict=True)
        wrapped = False
        for name, now, was in pairs:
            if now < was:
                modulus = self.moduli.get(name)
                if modulus is None or (now - was) % modulus > modulus / 2:
                    raise CounterReset(f"counter {name} went from {was:g} to {now:g}")
                wrapped = True
        return wrapped
