"""A small line spec and a recording, supervised fake line for the guard's tests."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hardware import ActuatorSpec, Command, Frame, Lever, LineSpec, LineStatus, SensorSpec

# Two stations; a state code and a stock level (derived values) and one vibration instrument each.
SPEC = LineSpec(
    name="pair",
    stations=("a", "b"),
    variants=("A",),
    sensors=(
        SensorSpec("a.state", "code", 0.0, 8.0, station=0),
        SensorSpec("a.vibration_mm_s", "mm/s", 0.0, 20.0, station=0, dropouts=True),
        SensorSpec("b.vibration_mm_s", "mm/s", 0.0, 20.0, station=1, dropouts=True),
        SensorSpec("line.stock_units", "units", 0.0, 100.0),
    ),
    actuators=(
        ActuatorSpec("a.speed", "ratio", 0.5, 1.2, 1.0, Lever.SPEED, station=0),
        ActuatorSpec("b.speed", "ratio", 0.5, 1.2, 1.0, Lever.SPEED, station=1),
        ActuatorSpec("a.mode", "0 off/1 standby/2 run", 0.0, 2.0, 2.0, Lever.MODE, station=0),
        ActuatorSpec("a.maintain", "request", 0.0, 1.0, 0.0, Lever.MAINTENANCE, station=0),
    ),
    levers=frozenset({Lever.SPEED, Lever.MODE, Lever.MAINTENANCE}),
    control_period_s=60.0,
)
HEALTHY = (3.0, 2.0, 2.0, 50.0)  # a.state IDLE, vibrations 2 mm/s, stock 50 units


def frame(
    values: Sequence[float] = HEALTHY, time_s: float = 600.0, seq: int = 1, stamps: Sequence[float] | None = None
) -> Frame:
    """A frame of `SPEC` at `time_s`, every stamp at the frame time unless given."""
    v = np.array(values, dtype=np.float64)
    s = np.full(v.shape, time_s) if stamps is None else np.array(stamps, dtype=np.float64)
    return Frame(time_s, seq, v, s, ())


class PlainLine:
    """A line without a controller (not `Supervised`) that hands out the frame it is given and records writes.

    `calls` holds ("write", Command) and, on a `RecordingLine`, ("heartbeat", None), in order.
    """

    def __init__(self, spec: LineSpec = SPEC) -> None:
        self.spec = spec
        self.next_frame = frame()
        self.calls: list[tuple[str, Command | None]] = []
        self.closed = False

    def reset(self, seed: int | None = None) -> Frame:
        """Hand out `next_frame`."""
        return self.next_frame

    def write(self, command: Command) -> None:
        """Record the command."""
        self.calls.append(("write", command))

    def advance(self, dt: float) -> Frame:
        """Hand out `next_frame`."""
        return self.next_frame

    def read(self) -> Frame:
        """Hand out `next_frame`."""
        return self.next_frame

    def close(self) -> None:
        """Remember it was closed."""
        self.closed = True


class RecordingLine(PlainLine):
    """The same line behind a controller (`Supervised`): it reports `next_status` and records heartbeats."""

    def __init__(self, spec: LineSpec = SPEC) -> None:
        super().__init__(spec)
        self.next_status = LineStatus()

    def status(self) -> LineStatus:
        """Hand out `next_status`."""
        return self.next_status

    def heartbeat(self) -> None:
        """Record the heartbeat."""
        self.calls.append(("heartbeat", None))
