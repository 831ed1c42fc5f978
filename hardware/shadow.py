"""Shadow mode: a policy reads the live line and says what it would do; nothing it says reaches the line.

`ShadowLine` keeps only the read side of the line it wraps (reset, advance, read, close, status)
and never calls a write; its `heartbeat` sends nothing either. It is `Supervised`, so that what
wraps it (`GuardedLine(ShadowLine(plc))`) decides on the controller's status, not on defaults.
What makes shadow mode read-only by construction is the line under it: on a PLC it is built
read-only (`ModbusLine(read_only=True)`), whose transport holds no write window and refuses every
write before anything is sent, so the connection itself has no write path. Each proposed command
is recorded beside the setpoints the line actually ran, what the operator or the PLC's own
program chose.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from hardware.interface import Command, Frame, Line, LineSpec, LineStatus, Supervised


@dataclass(frozen=True)
class Proposal:
    """What the policy proposed at one step, and what the line ran meanwhile (spec actuator order)."""

    time_s: float  # line clock of the frame the proposal was made on, s
    proposed: np.ndarray  # NaN = keep
    actual: np.ndarray | None  # the setpoints the line runs (None: the line does not report them)


class ShadowLine:
    """A `Line` whose writes are recorded as proposals and never sent (see the module docstring).

    Args:
        line: the line to watch. Only its `reset`, `advance`, `read`, `close` and (if it reports
            one) `status` are kept.
    """

    def __init__(self, line: Line) -> None:
        self.spec: LineSpec = line.spec
        self._reset: Callable[[int | None], Frame] = line.reset
        self._advance: Callable[[float], Frame] = line.advance
        self._read: Callable[[], Frame] = line.read
        self._close: Callable[[], None] = line.close
        self._status: Callable[[], LineStatus] | None = line.status if isinstance(line, Supervised) else None
        self._frame: Frame | None = None
        self.last_proposal: Proposal | None = None  # the audit log keeps the history
        self.proposals = 0  # proposals recorded since reset

    def reset(self, seed: int | None = None) -> Frame:
        """Attach to the line (or start the twin's episode) and read; the proposals start afresh."""
        self.last_proposal, self.proposals = None, 0
        self._frame = self._reset(seed)
        return self._frame

    def write(self, command: Command) -> None:
        """Record the proposal beside the setpoints the line runs; send nothing.

        Raises:
            RuntimeError: before `reset`.
        """
        if self._frame is None:
            raise RuntimeError(f"line {self.spec.name!r}: call reset() before using it")
        n = len(self.spec.actuators)
        proposed = np.full(n, np.nan) if command.setpoints is None else np.array(command.setpoints, dtype=float)
        self.last_proposal = Proposal(self._frame.time, proposed, self.status().active)
        self.proposals += 1

    def advance(self, dt: float) -> Frame:
        """Wait for the line's next decision (it runs by itself), as the wrapped line does."""
        self._frame = self._advance(dt)
        return self._frame

    def read(self) -> Frame:
        """A fresh frame of the line."""
        self._frame = self._read()
        return self._frame

    def status(self) -> LineStatus:
        """The line's controller status, or the defaults of a line without one."""
        return LineStatus() if self._status is None else self._status()

    def heartbeat(self) -> None:
        """Send nothing: in shadow mode the controller does not see the agent, not even alive."""

    def close(self) -> None:
        """Release the line."""
        self._close()
