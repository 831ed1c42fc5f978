"""The guarded line: every command is checked by a `Guard` before it can reach a line, and can always be refused.

`GuardedLine` puts a guard in front of any `Line`: the twin in training and evaluation, the PLC in
deployment. When the guard blocks, nothing but the controller's heartbeat is written. The checks
and their order are `hardware.guard_checks` (`Guard`, `Verdict`); what they enforce is a
`GuardConfig` (`hardware.guard_rules`). All of them are importable from here.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, cast

import numpy as np

from hardware.guard_checks import Guard, Verdict
from hardware.guard_rules import GuardConfig, Interlock, OodStats
from hardware.interface import Command, Frame, Line, LineStatus, Supervised

__all__ = ["Guard", "GuardConfig", "GuardedLine", "Interlock", "OodStats", "Verdict"]


class GuardedLine:
    """A `Line` whose every command passes a `Guard` first; Supervised when the line it wraps is.

    `reset`, `advance`, `read` and `close` pass through (the last frame is kept for the checks).
    `write` asks the guard: an allowed command goes out as the verdict says (dispatch decisions
    untouched; the verdict's bounds go with it, for a line that rounds setpoints to a grid), a blocked
    one writes nothing but the controller's heartbeat (nothing at all on a line without a
    controller, such as the twin). Every verdict goes to `on_verdict` (also when the write fails)
    and counts in `info()`.

    Args:
        line: the line to guard.
        guard: the guard, built on `line.spec`.
        observe: the policy's observation of a frame, for the guard's out-of-distribution gate.
        on_verdict: called with every verdict (an audit log).
        clock: our wall clock, s (`time.time`).
    """

    def __new__(cls, line: Line | None = None, *args: Any, **kwargs: Any) -> GuardedLine:
        """A `GuardedLine`, with `status` and `heartbeat` when `line` is `Supervised` (no line: unpickling)."""
        if cls is GuardedLine and isinstance(line, Supervised):
            return super().__new__(_SupervisedGuardedLine)
        return super().__new__(cls)

    def __init__(
        self,
        line: Line,
        guard: Guard,
        observe: Callable[[Frame], np.ndarray] | None = None,
        on_verdict: Callable[[Verdict], None] | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if guard.spec != line.spec:
            raise ValueError(
                f"guard: built on line {guard.spec.name!r}'s spec, not on the guarded line's ({line.spec.name!r})"
            )
        self.line = line
        self.spec = line.spec
        self.guard = guard
        self.observe = observe
        self.on_verdict = on_verdict
        self.clock = clock
        self.last_verdict: Verdict | None = None
        self._supervised = isinstance(line, Supervised)
        self._frame: Frame | None = None
        self._counts: Counter[str] = Counter()

    def reset(self, seed: int | None = None) -> Frame:
        """Reset the line and the guard; the counts of `info()` start again."""
        self.guard.reset()
        self._counts.clear()
        self.last_verdict = None
        self._frame = self.line.reset(seed)
        return self._frame

    def write(self, command: Command) -> None:
        """Check the command's setpoints and write what the guard allows (see the class docstring).

        Raises:
            RuntimeError: no frame yet (call `reset`).
            ValueError: setpoints of the wrong shape.
        """
        frame = self._frame
        if frame is None:
            raise RuntimeError(f"line {self.spec.name!r}: call reset() before write()")
        n = len(self.spec.actuators)
        proposed = (
            np.full(n, math.nan) if command.setpoints is None else np.asarray(command.setpoints, dtype=np.float64)
        )
        status = cast(Supervised, self.line).status() if self._supervised else LineStatus()
        observation = self.observe(frame) if self.observe is not None else None
        verdict = self.guard.check(proposed, frame, status, self.clock(), observation)
        self.last_verdict = verdict
        self._count(verdict)
        try:
            if verdict.setpoints is not None:
                setpoints = verdict.setpoints.copy()
                self.line.write(Command(setpoints=setpoints, dispatch=command.dispatch, bounds=verdict.bounds))
            elif self._supervised:
                cast(Supervised, self.line).heartbeat()
        finally:
            if self.on_verdict is not None:
                self.on_verdict(verdict)

    def advance(self, dt: float) -> Frame:
        """Pass through to the line; keep the frame."""
        self._frame = self.line.advance(dt)
        return self._frame

    def read(self) -> Frame:
        """Pass through to the line; keep the frame."""
        self._frame = self.line.read()
        return self._frame

    def close(self) -> None:
        """Close the line."""
        self.line.close()

    def info(self) -> dict[str, float]:
        """Counts since `reset`, by key: checks, interventions, blocked, clipped, and each reason given so far.

        Keys: `guard/checks`, `guard/interventions` (clipped or blocked), `guard/blocked`,
        `guard/clipped` (always there), and `guard/<reason>` (e.g. `guard/clamp:press.speed`).
        """
        counts = self._counts
        totals = ("checks", "interventions", "blocked", "clipped")
        return {f"guard/{k}": float(counts[k]) for k in totals} | {
            f"guard/{k}": float(v) for k, v in counts.items() if k not in totals
        }

    def _count(self, verdict: Verdict) -> None:
        kind = verdict.kind
        self._counts.update(["checks", *verdict.reasons])
        if kind != "pass":
            self._counts.update(["interventions", "blocked" if kind == "block" else "clipped"])


class _SupervisedGuardedLine(GuardedLine):
    """A `GuardedLine` over a `Supervised` line: the controller's status and heartbeat pass through."""

    def status(self) -> LineStatus:
        """The guarded line's controller status."""
        return cast(Supervised, self.line).status()

    def heartbeat(self) -> None:
        """Write the guarded line's heartbeat alone."""
        cast(Supervised, self.line).heartbeat()
