"""`LineEnv`, the thin Gymnasium adapter over any `Line`, and the `Task` hooks it calls.

The env owns the loop (reset, write, advance, reward); a task declares its spaces and levers,
encodes frames, decodes actions and prices KPI changes. The env never knows whether the line is
the twin or a real one.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from hardware import Command, DecisionKind, Frame, Kpis, Lever, Line, LineSpec

_TICK = DecisionKind.TICK
# How long past `frame.time + period` a step waits for the line's tick, s. A line ticks on its own
# grid (episode start plus whole periods), which float rounding can put a few ulps after the sum
# (3e-11 s at a day's clock); far below any control period, far above that rounding.
_TICK_SLACK_S = 1e-6


class Task(ABC):
    """What one control problem sees, does and values on a line."""

    levers: ClassVar[frozenset[Lever]]
    observation_space: gym.spaces.Space[Any]
    action_space: gym.spaces.Space[Any]

    def __init__(self, spec: LineSpec) -> None:
        missing, extra = self.levers - spec.levers, spec.levers - self.levers
        if missing:
            raise ValueError(
                f"{type(self).__name__} needs the agent to own levers {sorted(m.value for m in missing)} "
                f"on line {spec.name!r}, which gives it {sorted(m.value for m in spec.levers)}"
            )
        if extra:  # the line's own rules stand down for a lever the agent owns, and nothing would set it
            raise ValueError(
                f"line {spec.name!r} hands the agent levers {sorted(m.value for m in extra)} that "
                f"{type(self).__name__} never sets; hand it exactly {sorted(m.value for m in self.levers)}"
            )
        self.spec = spec
        self.invalid_action = False  # whether the last action was invalid (it was never passed on)
        self.invalid_actions = 0  # invalid actions this episode

    def parse_action(self, action: Any) -> tuple[np.ndarray, np.ndarray]:
        """The action as floats of the action space's shape, and which components are valid.

        A component is invalid when it is not a finite number or, in a discrete space, not one
        of the space's values; a boolean is valid only in a MultiBinary space (`True` is no job
        or order level). An invalid action is never passed on: the task replaces it by the
        line's own setting and `mark_invalid` records it for `info`.

        Raises:
            ValueError: the action does not have the action space's shape.
        """
        space = self.action_space
        shape = space.shape or ()
        try:
            a = np.asarray(action, dtype=float)
        except (TypeError, ValueError):
            raise ValueError(f"action: expected {space} of shape {shape}, got {action!r}") from None
        if isinstance(space, gym.spaces.Discrete) and a.size == 1 and a.ndim <= 1:
            a = a.reshape(())
        if a.shape != shape:
            raise ValueError(
                f"action: expected {space} of shape {shape} for {type(self).__name__}, got shape {a.shape}"
            )
        valid = np.isfinite(a)
        if np.asarray(action).dtype == bool and not isinstance(space, gym.spaces.MultiBinary):
            valid = valid & False
        if isinstance(space, gym.spaces.Discrete):
            valid &= (a == np.round(a)) & (a >= space.start) & (a < space.start + space.n)
        elif isinstance(space, gym.spaces.MultiBinary):
            valid &= (a == 0.0) | (a == 1.0)
        return a, valid

    def parse_discrete(self, action: Any) -> int | None:
        """A discrete action as the index it names, or None when it is invalid (see `parse_action`)."""
        space = self.action_space
        if (
            isinstance(action, int | np.integer)
            and not isinstance(action, bool)
            and isinstance(space, gym.spaces.Discrete)
        ):
            return int(action) if space.start <= action < space.start + space.n else None
        a, valid = self.parse_action(action)
        return int(a) if valid.all() else None

    def mark_invalid(self) -> None:
        """Record that this step's action was invalid (once per step)."""
        if not self.invalid_action:
            self.invalid_action = True
            self.invalid_actions += 1

    @abstractmethod
    def observe(self, frame: Frame) -> np.ndarray:
        """Encode a frame as an observation in `observation_space`."""

    @abstractmethod
    def command(self, action: Any, frame: Frame) -> Command:
        """Decode an action taken on `frame` into the command for the line."""

    @abstractmethod
    def reward(self, before: Frame, after: Frame) -> tuple[float, dict[str, float]]:
        """Price what happened between two frames: (reward, its named terms)."""

    def start(self, line: Line, frame: Frame) -> Frame:
        """Bring a freshly reset line to the task's first decision."""
        return frame

    def advance(self, line: Line, frame: Frame) -> Frame:
        """Let the line run to the task's next decision after a command (default: the next tick).

        The step ends at the line's tick, or `period` s on where a line shows none; a tick that
        rounding puts just past `frame.time + period` ends it, not a step of a few ulps after it.
        """
        period = self.spec.control_period_s
        if period is None:
            raise ValueError(f"line {self.spec.name!r} has no control period for {type(self).__name__}")
        target = frame.time + period + _TICK_SLACK_S
        while True:
            frame = line.advance(target - frame.time)
            if frame.time >= target or any(d.kind is _TICK for d in frame.pending):
                return frame

    def terminated(self, frame: Frame) -> bool:
        """Whether the episode reached a terminal state (time limits truncate elsewhere)."""
        return False

    def info(self, frame: Frame) -> dict[str, Any]:
        """Task-specific entries for `info`."""
        return {}


class LineEnv(gym.Env[np.ndarray, Any]):
    """A Gymnasium env made of a `Line` and a `Task`; see each task's class for its manual."""

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012  (Gymnasium declares it so)

    def __init__(self, line: Line, task: Task) -> None:
        self.line = line
        self.task = task
        self.observation_space = task.observation_space
        self.action_space = task.action_space
        self._frame: Frame | None = None

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start a new episode on the line; a seed makes it reproducible. It takes no `options`."""
        if options:
            raise ValueError(f"reset: {type(self).__name__} takes no options, got {sorted(options)}")
        super().reset(seed=seed)
        self.task.invalid_action, self.task.invalid_actions = False, 0
        frame = self.task.start(self.line, self.line.reset(seed))
        self._frame = frame
        return self.task.observe(frame), self._info(frame, {})

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Apply an action, run to the next decision, and return the usual five values."""
        before = self._frame
        if before is None:
            raise RuntimeError("call reset() before step()")
        self.task.invalid_action = False
        self.line.write(self.task.command(action, before))
        after = self.task.advance(self.line, before)
        self._frame = after
        reward, terms = self.task.reward(before, after)
        return self.task.observe(after), reward, self.task.terminated(after), False, self._info(after, terms)

    def close(self) -> None:
        """Release the line."""
        self.line.close()

    @property
    def frame(self) -> Frame:
        """The frame the current observation was made from."""
        if self._frame is None:
            raise RuntimeError("call reset() first")
        return self._frame

    def _info(self, frame: Frame, terms: dict[str, float]) -> dict[str, Any]:
        task = self.task
        line_info = getattr(self.line, "info", None)  # a decorator's counters, e.g. GuardedLine's guard/...
        return {
            "time": frame.time,
            "kpis": frame.kpis,
            "invalid_action": task.invalid_action,
            "invalid_actions": task.invalid_actions,
            **terms,
            **task.info(frame),
            **(line_info() if callable(line_info) else {}),
        }


def delta(before: Kpis, after: Kpis, name: str) -> float:
    """Change of KPI counter `name` between two frames."""
    return float(getattr(after, name) - getattr(before, name))


def maintenance_spend(before: Kpis, after: Kpis) -> float:
    """Repair and preventive maintenance cost between two frames (what restoring health cost)."""
    return delta(before, after, "repair_cost") + delta(before, after, "preventive_cost")


def health_used(before: Kpis, after: Kpis) -> float:
    """Growth of the machines' summed health deficit between two frames: health worn off less health restored.

    Summed over an episode it is the deficit the episode leaves behind less the one it found, so a
    reward that charges it prices the machine life a policy uses and the maintenance it defers. A
    reward that charges it must also charge `maintenance_spend`, or a repair would hand back the
    wear charge for free.
    """
    return delta(before, after, "health_consumed") - delta(before, after, "health_restored")


def warn_unused(name: str, value: Any, default: Any, used_by: str) -> None:
    """Warn that setting `name` to `value` (not its `default`) changes nothing: only `used_by` reads it.

    A task setting that only some of its action kinds read (`max_due_h` with a binary action) was
    dropped without a word; it is not refused, so that a preset's setting does not stop a run that
    switches the action kind.
    """
    if value != default:
        warnings.warn(f"{name}={value!r} is ignored: only {used_by} uses it", UserWarning, stacklevel=3)
