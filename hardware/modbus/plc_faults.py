"""Faults a virtual PLC can be told to show, so that a client's handling of each can be tested.

A `Fault` names what goes wrong; `FaultSet` holds the active ones and `gate`s every client request
through them. Faults combine: a late answer can also be an exception, a frozen heartbeat goes with
anything.
"""

from __future__ import annotations

import asyncio
import enum
import math
from dataclasses import dataclass

from pymodbus.constants import ExcCodes

POLL_S = 0.01  # how often a request held by a PLC that stopped answering looks whether it may go


class FaultKind(enum.Enum):
    """What goes wrong."""

    STOP_ANSWERING = "stop"  # requests are dropped unanswered, so clients time out; the server stays up
    LATE = "late"  # every answer comes `delay_s` late
    EXCEPTION = "exception"  # every request is answered with Modbus exception `code`
    FROZEN_HEARTBEAT = "freeze"  # the PLC's heartbeat stops advancing; everything else goes on
    NAN_SENSOR = "nan"  # sensor `sensor` publishes `value`: NaN (a dead instrument) or a reading out of its range
    STALE_FRAMES = "stale"  # the PLC's inputs stop updating: no new frame, the timestamp stands; the heartbeat goes on
    RESTART = "restart"  # the server goes down for `down_s` and comes back with its state re-initialised


@dataclass(frozen=True)
class Fault:
    """One fault and its parameters: `delay_s` (LATE), `code` (EXCEPTION), `sensor`, `value` (NAN_SENSOR), `down_s`.

    Raises:
        ValueError: a parameter the kind needs is missing or out of range.
    """

    kind: FaultKind
    delay_s: float = 0.0
    code: int = int(ExcCodes.DEVICE_FAILURE)
    sensor: str = ""
    value: float = math.nan  # what a NAN_SENSOR fault's sensor reads
    down_s: float = 1.0

    def __post_init__(self) -> None:
        """Check the parameter of the fault's kind."""
        if self.kind is FaultKind.LATE and not (math.isfinite(self.delay_s) and self.delay_s > 0):
            raise ValueError(f"a late fault needs delay_s > 0 s, got {self.delay_s!r}")
        if self.kind is FaultKind.EXCEPTION and self.code not in {int(c) for c in ExcCodes}:
            raise ValueError(f"exception code {self.code!r} is not a Modbus exception code ({_codes()})")
        if self.kind is FaultKind.NAN_SENSOR and not self.sensor:
            raise ValueError("a NaN-sensor fault needs the sensor's name")
        if self.kind is FaultKind.RESTART and not (math.isfinite(self.down_s) and self.down_s >= 0):
            raise ValueError(f"a restart needs down_s >= 0 s, got {self.down_s!r}")

    def describe(self) -> str:
        """The fault in a few words, e.g. `late 0.5 s`."""
        detail = {
            FaultKind.LATE: f" {self.delay_s:g} s",
            FaultKind.EXCEPTION: f" {self.code}",
            FaultKind.NAN_SENSOR: f" {self.sensor}" + ("" if math.isnan(self.value) else f" reads {self.value:g}"),
            FaultKind.RESTART: f" {self.down_s:g} s",
        }
        return self.kind.value + detail.get(self.kind, "")


def _codes() -> str:
    return ", ".join(f"{int(c)} {c.name.lower()}" for c in ExcCodes)


class FaultSet:
    """The lasting faults in force (a restart is an event, not kept here); touched only in the PLC's loop."""

    def __init__(self) -> None:
        self._active: dict[FaultKind, Fault] = {}
        self._nan: dict[str, Fault] = {}  # one NaN fault per sensor
        self.closing = False  # the server shuts down: held requests give up

    def add(self, fault: Fault) -> None:
        """Put a fault in force, replacing one of the same kind (NaN faults: of the same sensor)."""
        if fault.kind is FaultKind.NAN_SENSOR:
            self._nan[fault.sensor] = fault
        elif fault.kind is not FaultKind.RESTART:
            self._active[fault.kind] = fault

    def clear(self, kind: FaultKind | None = None) -> None:
        """End the faults of one kind, or all of them."""
        if kind is None or kind is FaultKind.NAN_SENSOR:
            self._nan.clear()
        if kind is None:
            self._active.clear()
        else:
            self._active.pop(kind, None)

    def has(self, kind: FaultKind) -> bool:
        """Whether a fault of `kind` is in force."""
        return bool(self._nan) if kind is FaultKind.NAN_SENSOR else kind in self._active

    @property
    def forced(self) -> frozenset[tuple[str, float]]:
        """Sensors that publish a forced reading (NaN or out of range), with that reading."""
        return frozenset((name, fault.value) for name, fault in self._nan.items())

    @property
    def active(self) -> tuple[Fault, ...]:
        """Every fault in force."""
        return (*self._active.values(), *self._nan.values())

    async def gate(self) -> ExcCodes | None:
        """Pass a client request through the faults: hold it, delay it, or answer it with an exception.

        Returns:
            The exception code to answer with, or None to serve the request.

        Raises:
            asyncio.CancelledError: the PLC stopped answering while the request came in; it is
                dropped unanswered even once the fault clears, as a hung PLC loses what it never read.
        """
        if FaultKind.STOP_ANSWERING in self._active:
            while FaultKind.STOP_ANSWERING in self._active and not self.closing:
                await asyncio.sleep(POLL_S)
            raise asyncio.CancelledError
        late = self._active.get(FaultKind.LATE)
        if late is not None:
            await asyncio.sleep(late.delay_s)
        failing = self._active.get(FaultKind.EXCEPTION)
        return ExcCodes(failing.code) if failing is not None else None
