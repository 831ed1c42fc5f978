"""The guard: every command is checked before it can reach a line, and can always be refused.

`Guard.check` takes a proposed setpoint vector with the frame and controller status it was decided
on and returns a `Verdict`, in the order deployment practice sets:

1. Gates (any closed gate blocks the write; every closed gate is named): the operator's REMOTE,
   PERMISSIVE and E-STOP, the controller's watchdog, a lever the operator keeps local
   (`gate:lever_local:<lever>`: a policy decides its levers together), the controller's clock
   against ours, the age of its status, its heartbeat frozen, sensor stamps too old or too far
   apart, a sensor that reads NaN (an instrument's declared dropout excepted), out of its range or
   frozen, a proposal that is infinite or a mode that is not a whole number, and the
   out-of-distribution gate.
2. Interlocks: a tripped rule bounds its actuator.
3. Hard and configured limits: clamp.
4. Rate of change, per s of line time, relative to the active setpoint.
5. Deadband: a change smaller than it is not written (NaN, keep).

A clipped command goes out clipped; NaN (keep) stays NaN. What the guard enforces is a
`GuardConfig` (`hardware.guard_rules`); `hardware.guard.GuardedLine` puts a guard in front of a line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Literal

import numpy as np

from hardware.guard_rules import ActiveInterlock, ActuatorRules, GuardConfig, OodStats, expand_interlocks
from hardware.interface import Frame, LineSpec, LineStatus, StationState

__all__ = ["Guard", "Verdict"]

_TOLERANCE = 1e-6  # relative: a float32 reading of a range bound (or a setpoint's limit) is no excess
_BUSY = float(StationState.BUSY)  # the state code of a station working a part


@dataclass(frozen=True, eq=False)  # arrays: a verdict equals only itself
class Verdict:
    """What the guard made of one proposed command, and why.

    Attributes:
        proposed: The proposal, in spec actuator order (NaN = keep).
        setpoints: What goes out (NaN = keep); None: nothing but the heartbeat is written.
        reasons: Every intervention, in the order of the checks: `gate:<why>`, `interlock:<name>`,
            `clamp:<actuator>`, `rate:<actuator>`, `deadband:<actuator>`.
        ood: Whether the observation was out of the training distribution.
        bounds: (low, high) the setpoints were held to, in spec actuator order: the limits and the
            tripped interlocks' bounds. A line that stores setpoints on a grid (a scaled register)
            must store them inside these, not merely inside the actuator's hard limits.
    """

    proposed: np.ndarray
    setpoints: np.ndarray | None
    reasons: tuple[str, ...]
    ood: bool = False
    bounds: tuple[np.ndarray, np.ndarray] | None = None

    def __post_init__(self) -> None:
        """Freeze the arrays: a verdict is a record."""
        self.proposed.flags.writeable = False
        for array in (self.setpoints, *(self.bounds or ())):
            if array is not None:
                array.flags.writeable = False

    @property
    def allowed(self) -> bool:
        """Whether a command goes out at all."""
        return self.setpoints is not None

    @property
    def kind(self) -> Literal["pass", "clip", "block"]:
        """`block`: nothing written; `clip`: written with changes; `pass`: written as proposed."""
        if self.setpoints is None:
            return "block"
        return "clip" if self.reasons else "pass"


class Guard:
    """Checks proposed setpoints against a `GuardConfig` on one line's spec (see the module docstring).

    The guard remembers what it needs across checks: the last setpoint it let out per actuator and
    when it changed (line time), the controller heartbeat and when it last moved, each instrument's
    recent samples. `reset` forgets them (a new episode, a re-attach).

    Rate limits allow `rate_per_s` x the line time since the guard last changed the setpoint, at
    most one control period (no credit for idle time, as the PLC counts it), relative to the active
    setpoint: `status.active` where known, else the last setpoint the guard let out, else the
    actuator's default. The rate and deadband never hold a setpoint outside its limits or a tripped
    interlock's bound: a setpoint outside them moves straight to the nearest allowed value.

    Args:
        spec: the line's spec; the proposal, frame and status follow its orders.
        config: what to enforce.
        ood: the observation statistics of the policy's training; None: no out-of-distribution gate.

    Raises:
        ValueError: the config contradicts the spec's limits, or names a sensor the spec lacks.
    """

    def __init__(self, spec: LineSpec, config: GuardConfig, ood: OodStats | None = None) -> None:
        self.spec = spec
        self.config = config
        self.ood = ood
        self.rules = ActuatorRules.resolve(spec, config)
        self.interlocks: tuple[ActiveInterlock, ...] = expand_interlocks(spec, self.rules, config.interlocks)
        self._actuators = tuple(a.name for a in spec.actuators)
        self._sensors = tuple(s.name for s in spec.sensors)
        low = np.array([s.low for s in spec.sensors], dtype=np.float64)
        open_above = [any(fnmatchcase(s.name, p) for p in config.open_above) for s in spec.sensors]
        high = np.where(open_above, np.inf, [s.high for s in spec.sensors])
        self._sensor_low = low
        self._range = (
            low - _TOLERANCE * np.maximum(np.abs(low), 1.0),
            high + _TOLERANCE * np.maximum(np.abs(high), 1.0),
        )
        self._instrument = np.array([s.dropouts for s in spec.sensors], dtype=bool)
        states = {s.name: i for i, s in enumerate(spec.sensors)}
        self._state_of = np.array(  # each sensor's station's `<station>.state` sensor, -1: none
            [
                states.get(f"{spec.stations[s.station]}.state", -1) if s.station is not None else -1
                for s in spec.sensors
            ],
            dtype=np.int64,
        )
        self._period = spec.control_period_s if spec.control_period_s is not None else math.inf
        self.reset()

    def reset(self) -> None:
        """Forget the setpoints let out, the heartbeat seen and the instruments' samples."""
        n = len(self._actuators)
        self._last_out = np.full(n, math.nan)
        self._changed_s = np.full(n, -math.inf)
        self._latest_s = -math.inf  # the latest line time checked at
        self._beat: tuple[int, float] | None = None  # controller heartbeat, our clock when it last moved
        self._samples: tuple[np.ndarray, np.ndarray] | None = None  # each instrument's last value and stamp
        self._repeats = np.zeros(len(self._sensors), dtype=np.int64)  # samples identical to the one before

    def check(
        self,
        proposed: np.ndarray,
        frame: Frame,
        status: LineStatus,
        now_s: float,
        observation: np.ndarray | None = None,
    ) -> Verdict:
        """The verdict on `proposed` (spec actuator order, NaN = keep), decided on `frame` and `status`.

        Args:
            proposed: the setpoints the policy proposes.
            frame: the frame the proposal was decided on.
            status: the controller's status read with it (`LineStatus()` for a line without one).
            now_s: our wall clock, `time.time()`, s.
            observation: the policy's observation of `frame`; needed when the guard has OOD statistics.

        Raises:
            ValueError: a proposal, frame, status or observation of the wrong shape, or no
                observation for a guard with OOD statistics.
        """
        p = np.array(proposed, dtype=np.float64)
        if p.shape != (len(self._actuators),):
            raise ValueError(
                f"proposed: expected shape ({len(self._actuators)},) for actuators {list(self._actuators)}, "
                f"got {p.shape}"
            )
        reasons = [*self._status_gates(status, now_s), *self._frame_gates(frame), *self._proposal_gates(p)]
        ood = self._out_of_distribution(observation)
        if ood:
            reasons.append("gate:ood")
        locks = self._envelope(frame)
        low, high = np.maximum(self.rules.low, locks[0]), np.minimum(self.rules.high, locks[1])
        reasons += [f"gate:interlock_conflict:{self._actuators[i]}" for i in np.flatnonzero(low > high)]
        if reasons:
            return Verdict(p, None, tuple(reasons), ood)
        out, shaped = self._shape(p, frame.time, *self._reference(status), locks)
        return Verdict(p, out, tuple(shaped), ood, (low, high))

    def _status_gates(self, status: LineStatus, now_s: float) -> list[str]:
        """Operator bits, watchdog, levers kept local, controller clock, status age, heartbeat."""
        cfg = self.config
        reasons = [
            reason
            for closed, reason in (
                (not status.remote, "gate:remote_off"),
                (not status.permissive, "gate:permissive_off"),
                (status.estop, "gate:estop"),
                (status.watchdog_tripped, "gate:watchdog"),
            )
            if closed
        ]
        reasons += [f"gate:lever_local:{lever}" for lever in status.local_levers]
        read_at = status.read_at_s
        skew = None if status.clock_s is None or read_at is None else abs(status.clock_s - read_at)
        if cfg.max_clock_skew_s is not None and skew is not None and not skew <= cfg.max_clock_skew_s:
            reasons.append("gate:clock_skew")
        age = cfg.max_status_age_s  # a status read in the future (beyond the age itself) is no fresher: a bad clock
        if age is not None and read_at is not None and not -age <= now_s - read_at <= age:
            reasons.append("gate:stale_status")
        if status.heartbeat is not None:
            if self._beat is None or self._beat[0] != status.heartbeat:
                self._beat = (status.heartbeat, now_s)
            elif cfg.heartbeat_timeout_s is not None and not 0 <= now_s - self._beat[1] <= cfg.heartbeat_timeout_s:
                reasons.append("gate:heartbeat_frozen")  # our clock set back behind the beat: no proof it moves
        return reasons

    def _frame_gates(self, frame: Frame) -> list[str]:
        """Stamps old or apart; sensors NaN (not a declared dropout), out of range or frozen."""
        cfg = self.config
        values, stamps = frame.values, frame.stamps
        if values.shape != (len(self._sensors),) or stamps.shape != values.shape:
            raise ValueError(
                f"frame: expected {len(self._sensors)} values and stamps, got {values.shape} and {stamps.shape}"
            )
        reasons = []
        ages = frame.time - stamps  # a NaN stamp has no age: stale; one ahead of the frame beyond the bound: bad
        if cfg.max_data_age_s is not None and not ((ages <= cfg.max_data_age_s) & (ages >= -cfg.max_data_age_s)).all():
            reasons.append("gate:stale_data")
        if cfg.max_stamp_skew_s is not None and stamps.size and not stamps.max() - stamps.min() <= cfg.max_stamp_skew_s:
            reasons.append("gate:stamp_skew")
        nan = np.isnan(values)
        low, high = self._range
        outside = ~nan & ((values < low) | (values > high) | np.isinf(values))  # no scale is open to infinity
        frozen = self._frozen(values, stamps)
        for kind, bad in (("nan", nan & ~self._instrument), ("range", outside), ("frozen", frozen)):
            if bad.any():
                reasons += [f"gate:{kind}:{self._sensors[i]}" for i in np.flatnonzero(bad)]
        return reasons

    def _frozen(self, values: np.ndarray, stamps: np.ndarray) -> np.ndarray:
        """Instruments whose last `frozen_samples` counted samples (stamps that moved) are identical.

        A reading at the bottom of its range is at rest, not frozen, unless its station is busy
        (its `<station>.state` reads BUSY; a station without a state sensor is never known busy),
        and is not counted: a stopped or idle machine may read an exact zero (on a coarse register
        too), a machine working a part does not, so a dead instrument stuck at zero is frozen after
        `frozen_samples` samples taken while its station works.
        """
        n = self.config.frozen_samples
        if n is None:
            return np.zeros(values.shape, dtype=bool)
        codes = np.where(self._state_of >= 0, values[self._state_of], math.nan)
        at_rest = (values <= self._sensor_low) & (codes != _BUSY)  # NaN: no state known, not busy
        if self._samples is None:  # a reading at rest is no sample to compare the next one with (-1: none yet)
            self._samples = (values.copy(), stamps.copy())
            self._repeats = np.where(at_rest, -1, 0)
            return np.zeros(values.shape, dtype=bool)
        last_values, last_stamps = self._samples
        counted = (stamps != last_stamps) & ~at_rest
        same = (values == last_values) | (np.isnan(values) & np.isnan(last_values))
        self._repeats = np.where(counted, np.where(same, self._repeats + 1, 0), self._repeats)
        self._samples = (np.where(counted, values, last_values), np.where(counted, stamps, last_stamps))
        return self._instrument & (self._repeats >= n - 1) & ~at_rest

    def _proposal_gates(self, p: np.ndarray) -> list[str]:
        """An infinite setpoint, or a mode that is not a whole number, is no command to clip."""
        finite = np.isfinite(p)
        invalid = np.isinf(p) | (self.rules.mode & finite & (p != np.round(p)))
        return ["gate:invalid_proposal"] if invalid.any() else []

    def _out_of_distribution(self, observation: np.ndarray | None) -> bool:
        z = self.config.ood_z
        if self.ood is None or z is None:
            return False
        if observation is None:
            raise ValueError("observation: this guard has OOD statistics; check() needs the policy's observation")
        return self.ood.fraction_beyond(observation, z) > self.config.ood_max_fraction

    def _envelope(self, frame: Frame) -> tuple[np.ndarray, np.ndarray, list[ActiveInterlock]]:
        """The bounds the tripped interlocks set on each actuator now (-inf, inf: none), and those interlocks."""
        low = np.full(len(self._actuators), -math.inf)
        high = np.full(len(self._actuators), math.inf)
        tripped = [lock for lock in self.interlocks if lock.rule.tripped(float(frame.values[lock.sensor]))]
        for lock in tripped:
            low[lock.actuator] = max(low[lock.actuator], lock.low)
            high[lock.actuator] = min(high[lock.actuator], lock.high)
        return low, high, tripped

    def _reference(self, status: LineStatus) -> tuple[np.ndarray, np.ndarray]:
        """The active setpoints, the controller's where known (the mask returned), else the guard's last or defaults."""
        ref = np.where(np.isnan(self._last_out), self.rules.default, self._last_out)
        known = np.zeros(ref.shape, dtype=bool)
        if status.active is not None:
            active = np.asarray(status.active, dtype=np.float64)
            if active.shape != ref.shape:
                raise ValueError(f"status.active: expected shape {ref.shape}, got {active.shape}")
            known = np.isfinite(active)
            ref = np.where(known, active, ref)
        return np.where(self.rules.mode, np.floor(ref + 0.5), ref), known

    def _shape(
        self,
        p: np.ndarray,
        time_s: float,
        ref: np.ndarray,
        known: np.ndarray,
        locks: tuple[np.ndarray, np.ndarray, list[ActiveInterlock]],
    ) -> tuple[np.ndarray, list[str]]:
        """Interlocks, clamp, rate, deadband on an allowed proposal; remember what goes out.

        `np.maximum` and `np.minimum` carry NaN (keep) through every bound. A "keep" of a level
        the controller reports (`known`) outside the bounds (a tripped interlock's, the limits) is
        no keep: it is moved into them like a proposal of it (one within `_TOLERANCE` of a bound is
        inside: a float32 register reads 1.1 back as 1.1000000238). A keep of a pulse stays a keep:
        writing it would fire a maintenance or an order nobody asked for. The rate limit grants credit for the
        line time since the setpoint last changed: none for a frame without a time, and a line
        clock that goes back (a restart; deploy resets the guard when it attaches afresh) adds none.
        """
        lock_low, lock_high, tripped = locks
        rules = self.rules
        low, high = np.maximum(rules.low, lock_low), np.minimum(rules.high, lock_high)
        slack = _TOLERANCE * np.maximum(np.maximum(np.abs(low), np.abs(high)), 1.0)  # a float32 readback
        inside = (ref >= low - slack) & (ref <= high + slack)
        p = np.where(np.isnan(p) & known & ~inside & ~rules.pulse, ref, p)  # a "keep" of a level out of bounds
        given = ~np.isnan(p)
        reasons = list(
            dict.fromkeys(
                f"interlock:{lock.name}"
                for lock in tripped
                if given[lock.actuator] and not lock.low <= p[lock.actuator] <= lock.high
            )
        )
        locked = np.minimum(np.maximum(p, lock_low), lock_high) if tripped else p
        clamped = np.minimum(np.maximum(locked, rules.low), rules.high)  # within both: the bounds overlap
        reasons += self._named("clamp", given & (clamped != locked))
        if time_s < self._latest_s:  # the line clock went back: the time since each change stays what it was
            self._changed_s -= self._latest_s - time_s
        if math.isfinite(time_s):
            self._latest_s = time_s
        elapsed = np.nan_to_num(time_s - self._changed_s, nan=0.0)  # no line time: no credit
        step = rules.rate * np.minimum(elapsed, self._period)
        step = np.where(rules.mode, np.floor(step), step)  # a mode moves in whole steps
        rated = given & ~np.isnan(step)
        ramped = np.minimum(np.maximum(np.minimum(np.maximum(clamped, ref - step), ref + step), low), high)
        out = np.where(rated, ramped, clamped)  # the bounds beat the rate
        reasons += self._named("rate", rated & (out != clamped))
        change = np.abs(out - ref)
        small = given & inside & (change > slack) & (change < rules.deadband)
        out[small] = math.nan
        reasons += self._named("deadband", small)
        written = ~np.isnan(out)
        if math.isfinite(time_s):
            self._changed_s[written & (out != ref)] = time_s
        self._last_out[written] = out[written]
        return out, reasons

    def _named(self, kind: str, which: np.ndarray) -> list[str]:
        """`<kind>:<actuator>` for each actuator `which` marks."""
        return [f"{kind}:{self._actuators[i]}" for i in np.flatnonzero(which)] if which.any() else []
