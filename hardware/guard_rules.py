"""The guard's rules as configuration states them, and as they apply to one line's spec.

`Interlock`, `GuardConfig` and `OodStats` are what a `guard` config group (or a deployment) writes;
`ActuatorRules` and `ActiveInterlock` are those rules resolved against a `LineSpec`: every pattern
matched, every `{station}` expanded, every limit intersected with the actuator's hard limits, and
every contradiction refused before the first check. `hardware.guard_checks` applies them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, cast

import numpy as np

from hardware.interface import Lever, LineSpec

STATION = "{station}"  # expands to each of the spec's stations in an interlock's fields


def _number(where: str, value: Any, *, positive: bool = False, optional: bool = True) -> float | None:
    """`value` as a finite float (positive if asked), None if allowed; else an error naming `where` it was given."""
    if value is None and optional:
        return None
    if isinstance(value, bool):  # float(True) is 1.0: a slip, not a rate of 1 per s
        raise ValueError(f"{where} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an integer past float's range
        raise ValueError(f"{where} must be a number, got {value!r}") from None
    if not math.isfinite(number) or (positive and not number > 0):
        raise ValueError(f"{where} must be a {'positive' if positive else 'finite'} number, got {value!r}")
    return number


def whole(low: float, high: float) -> tuple[float, float]:
    """The whole numbers within [low, high], as a range (infinite bounds stay infinite)."""
    return (math.ceil(low) if math.isfinite(low) else low), (math.floor(high) if math.isfinite(high) else high)


@dataclass(frozen=True)
class Interlock:
    """If `sensor` reads above `above` (or below `below`), `actuator` may not exceed `max` (nor go under `min`).

    `{station}` in `sensor`, `actuator` or `name` stands for each station of the line in turn, so
    one rule covers them all. A sensor that reads NaN (a dropout) trips the interlock: the rule
    fails safe. The reason a guard gives when the rule cuts a setpoint is `interlock:<name>`
    (default name: `<sensor>:<actuator>`; a rule over the stations whose name has no `{station}`
    is named `<name>:<station>` for each, so the audit tells the stations apart).

    Raises:
        ValueError: a sensor, actuator or name that is not a string, neither `above` nor `below`,
            neither `max` nor `min`, `min` above `max`, or a value that is not a finite number.
    """

    sensor: str
    actuator: str
    above: float | None = None
    below: float | None = None
    max: float | None = None
    min: float | None = None
    name: str = ""

    def __post_init__(self) -> None:
        """Check that the rule names what it reads and bounds, and has a condition and an effect, in finite numbers."""
        for key in ("sensor", "actuator", "name"):
            if not isinstance(getattr(self, key), str):
                raise ValueError(
                    f"interlock {key} must be a string (a name or a {STATION} pattern), got {getattr(self, key)!r}"
                )
        owner = f"interlock {self.name or self.sensor!r}"
        for key in ("above", "below", "max", "min"):
            object.__setattr__(self, key, _number(f"{owner}: {key}", getattr(self, key)))
        if self.above is None and self.below is None:
            raise ValueError(f"{owner}: give `above` or `below`, the sensor reading that trips it")
        if self.max is None and self.min is None:
            raise ValueError(f"{owner}: give `max` or `min`, the bound it puts on {self.actuator!r}")
        if self.max is not None and self.min is not None and self.min > self.max:
            raise ValueError(f"{owner}: min {self.min} is above max {self.max}")

    def tripped(self, value: float) -> bool:
        """Whether a reading of the sensor trips the rule (NaN does: fail safe)."""
        return (
            math.isnan(value)
            or (self.above is not None and value > self.above)
            or (self.below is not None and value < self.below)
        )


@dataclass(frozen=True)
class GuardConfig:
    """What a guard enforces; every bound None (or every mapping empty) leaves that check out.

    Times in s: `max_data_age_s`, `max_stamp_skew_s` on the line clock; `max_clock_skew_s`,
    `max_status_age_s`, `heartbeat_timeout_s` on our wall clock (`time.time()`); the heartbeat is
    seen only at the guard's checks (a beat that moved since the last check is alive: a reader
    that polls it between checks, as `ModbusLine`'s does, catches it stopping sooner). Limits, rates
    (units per s of line time) and deadbands are in the actuator's unit and keyed by actuator
    name or fnmatch pattern (`"*.speed"`); every entry that matches an actuator applies (limits
    intersect, the smallest rate and the widest deadband win), and an entry that matches no
    actuator of a spec does not apply to it (a task commands a subset of the line's actuators).
    A reading outside its sensor's spec range is bad data, except above the range of a sensor
    `open_above` names: there the top is the end of an encoding scale (a backlog, a stock level, a
    price spike can pass it; see `SensorSpec`), not a physical bound; an infinite reading is bad
    data on every sensor.

    Raises:
        ValueError: a limit that is not [low, high] with low <= high, a rate that is not positive,
            a deadband that is negative, a time bound that is not positive, `frozen_samples` under
            2, `ood_z` not positive or `ood_max_fraction` outside [0, 1).
        TypeError: an interlock that is not an `Interlock`.
    """

    limits: Mapping[str, Sequence[float]] = field(default_factory=dict)
    rate_per_s: Mapping[str, float] = field(default_factory=dict)
    deadband: Mapping[str, float] = field(default_factory=dict)
    interlocks: Sequence[Interlock] = ()
    max_data_age_s: float | None = None  # a sensor stamp older than this before the frame time: stale
    max_stamp_skew_s: float | None = None  # spread between the sensor stamps of one frame
    max_clock_skew_s: float | None = None  # |controller clock - our clock| at the status read
    max_status_age_s: float | None = None  # our clock now - when the status was read
    heartbeat_timeout_s: float | None = None  # the controller's heartbeat seen at no check for this long
    frozen_samples: int | None = None  # an instrument's last this many samples identical: frozen
    ood_z: float | None = None  # an observation feature this many std devs from the training mean: beyond
    ood_max_fraction: float = 0.0  # more features beyond than this fraction: out of distribution
    open_above: Sequence[str] = ()  # sensors (names, patterns) whose range top is a scale, not a bound

    def _check_shapes(self) -> None:
        """The mappings are mappings and `open_above` names: `limits: null` raised a TypeError naming nothing."""
        for name in ("limits", "rate_per_s", "deadband"):
            if not isinstance(getattr(self, name), Mapping):
                raise ValueError(
                    f"{name} must be a mapping of actuator names or patterns to values, got {getattr(self, name)!r}"
                )
        if not isinstance(self.open_above, str | Sequence) or not all(isinstance(p, str) for p in self.open_above):
            raise ValueError(f"open_above must be sensor names or patterns, got {self.open_above!r}")

    def __post_init__(self) -> None:
        """Normalise the mappings to plain floats and check every value, naming the field."""
        self._check_shapes()
        limits = {}
        for key, pair in dict(self.limits).items():
            values = list(pair) if isinstance(pair, Sequence) and not isinstance(pair, str) else [pair]
            if len(values) != 2:
                raise ValueError(f"limits.{key} must be [low, high], got {pair!r}")
            low, high = (_number(f"limits.{key}", v, optional=False) for v in values)
            if low is None or high is None or low > high:
                raise ValueError(f"limits.{key}: low {low} is above high {high}")
            limits[str(key)] = (low, high)
        rates = {
            str(k): _number(f"rate_per_s.{k}", v, positive=True, optional=False)
            for k, v in dict(self.rate_per_s).items()
        }
        bands = {str(k): _number(f"deadband.{k}", v, optional=False) for k, v in dict(self.deadband).items()}
        for key, band in bands.items():
            if band is None or band < 0:
                raise ValueError(f"deadband.{key} must be >= 0, got {band!r}")
        object.__setattr__(self, "limits", limits)
        object.__setattr__(self, "rate_per_s", rates)
        object.__setattr__(self, "deadband", bands)
        interlocks = tuple(self.interlocks)
        for i, lock in enumerate(interlocks):
            if not isinstance(lock, Interlock):
                raise TypeError(f"interlocks[{i}] must be an Interlock, got {type(lock).__name__}")
        object.__setattr__(self, "interlocks", interlocks)
        above = (self.open_above,) if isinstance(self.open_above, str) else tuple(self.open_above)
        object.__setattr__(self, "open_above", tuple(str(p) for p in above))
        for key in (
            "max_data_age_s",
            "max_stamp_skew_s",
            "max_clock_skew_s",
            "max_status_age_s",
            "heartbeat_timeout_s",
        ):
            object.__setattr__(self, key, _number(key, getattr(self, key), positive=True))
        if self.frozen_samples is not None and not (isinstance(self.frozen_samples, int) and self.frozen_samples >= 2):
            raise ValueError(f"frozen_samples must be a whole number >= 2, got {self.frozen_samples!r}")
        object.__setattr__(self, "ood_z", _number("ood_z", self.ood_z, positive=True))
        fraction = _number("ood_max_fraction", self.ood_max_fraction, optional=False)
        if fraction is None or not 0.0 <= fraction < 1.0:
            raise ValueError(f"ood_max_fraction must be in [0, 1), got {self.ood_max_fraction!r}")
        object.__setattr__(self, "ood_max_fraction", fraction)


@dataclass(frozen=True, eq=False)  # arrays: equal only to itself
class OodStats:
    """The observation statistics a policy was trained on: per-feature mean and standard deviation."""

    mean: np.ndarray
    std: np.ndarray

    def __post_init__(self) -> None:
        """Check that mean and std are flat, of one length, and std positive."""
        mean = np.asarray(self.mean, dtype=np.float64).ravel()
        std = np.asarray(self.std, dtype=np.float64).ravel()
        if mean.shape != std.shape:
            raise ValueError(f"OodStats: mean has {mean.size} features, std {std.size}")
        if not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
            raise ValueError("OodStats: mean must be finite and std finite and positive")
        mean.flags.writeable = std.flags.writeable = False
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any]) -> OodStats | None:
        """The statistics of an artifact's manifest (its `vec_normalize`); None if it normalised no observations.

        The std is `sqrt(obs_var + epsilon)`, as the policy's own normalisation computes it.
        """
        stats = manifest.get("vec_normalize")
        if not stats or not stats.get("norm_obs"):
            return None
        var = np.asarray(stats["obs_var"], dtype=np.float64)
        return cls(np.asarray(stats["obs_mean"], dtype=np.float64), np.sqrt(var + float(stats["epsilon"])))

    def fraction_beyond(self, observation: np.ndarray, z: float) -> float:
        """The fraction of the observation's features more than `z` std devs from the mean (non-finite: beyond).

        Raises:
            ValueError: the observation does not have the statistics' number of features.
        """
        obs = np.asarray(observation, dtype=np.float64).ravel()
        if obs.shape != self.mean.shape:
            raise ValueError(f"observation has {obs.size} features; the OOD statistics have {self.mean.size}")
        within = np.abs(obs - self.mean) <= z * self.std  # NaN compares False: beyond
        return float(1.0 - within.mean()) if obs.size else 0.0


@dataclass(frozen=True)
class ActiveInterlock:
    """An interlock resolved on a spec: one station's rule, with indices into the frame and command."""

    rule: Interlock
    name: str
    sensor: int  # index into Frame.values
    actuator: int  # index into Command.setpoints
    low: float  # the bound on the actuator while tripped (-inf: none)
    high: float  # (+inf: none)


@dataclass(frozen=True, eq=False)  # arrays: equal only to itself
class ActuatorRules:
    """Per-actuator limits of one spec, in actuator order, with the hard limits folded in.

    `low`/`high` are the hard limits intersected with the configured ones (whole numbers for a
    mode); `rate` is NaN where no rate limit applies (never for a maintenance request); `deadband`
    is 0 where none applies (never for a maintenance request). `pulse` marks the actuators whose
    every write fires an event (a maintenance request, a reorder), not a level the line holds.
    """

    low: np.ndarray
    high: np.ndarray
    rate: np.ndarray
    deadband: np.ndarray
    default: np.ndarray
    mode: np.ndarray  # bool: a mode, whole numbers only
    pulse: np.ndarray  # bool: a write fires an event (maintenance, reorder)

    @classmethod
    def resolve(cls, spec: LineSpec, config: GuardConfig) -> ActuatorRules:
        """Match the config's entries against `spec`'s actuators.

        Raises:
            ValueError: configured limits that leave an actuator no value within its hard limits,
                a rate limit on a spec without a control period (its time credit is one period), or
                one whose step a period is under the deadband (or, for a mode, under one step).
        """
        acts = spec.actuators
        low = np.array([a.low for a in acts], dtype=np.float64)
        high = np.array([a.high for a in acts], dtype=np.float64)
        rate = np.full(len(acts), math.nan)
        band = np.zeros(len(acts))
        mode = np.array([a.lever is Lever.MODE for a in acts], dtype=bool)
        for i, a in enumerate(acts):
            for key, (lo, hi) in config.limits.items():
                if fnmatchcase(a.name, key):
                    low[i], high[i] = max(low[i], lo), min(high[i], hi)
            if mode[i]:
                low[i], high[i] = whole(low[i], high[i])
            if low[i] > high[i]:
                raise ValueError(
                    f"limits leave actuator {a.name!r} no value within its hard limits "
                    f"[{a.low}, {a.high}] {a.unit}" + (" (a mode takes whole numbers)" if mode[i] else "")
                )
            if a.lever is Lever.MAINTENANCE:
                continue
            rates = [r for key, r in config.rate_per_s.items() if fnmatchcase(a.name, key)]
            bands = [b for key, b in config.deadband.items() if fnmatchcase(a.name, key)]
            if rates:
                if spec.control_period_s is None:
                    raise ValueError(f"rate_per_s for {a.name!r}: line {spec.name!r} has no control period")
                rate[i] = min(r for r in rates if r is not None)
            band[i] = max((b for b in bands if b is not None), default=0.0)
            if rates:
                _check_moves(a.name, rate[i] * cast(float, spec.control_period_s), band[i], mode=bool(mode[i]))
        _check_no_pulse_entries(spec, config)
        default = np.array([a.default for a in acts], dtype=np.float64)
        pulse = np.array([a.lever in (Lever.MAINTENANCE, Lever.REORDER) for a in acts], dtype=bool)
        return cls(low, high, rate, band, default, mode, pulse)


def _check_no_pulse_entries(spec: LineSpec, config: GuardConfig) -> None:
    """Refuse a rate or deadband entry that matches only maintenance requests (a pulse, not a level)."""
    for entry, keys in (("rate_per_s", config.rate_per_s), ("deadband", config.deadband)):
        for key in keys:
            matched = [a for a in spec.actuators if fnmatchcase(a.name, key)]
            if matched and all(a.lever is Lever.MAINTENANCE for a in matched):
                raise ValueError(
                    f"{entry}.{key}: {[a.name for a in matched]} are maintenance requests (a pulse, not a "
                    "level): no rate or deadband applies to them; drop the entry"
                )


def _check_moves(actuator: str, step: float, deadband: float, *, mode: bool) -> None:
    """Refuse a rate limit whose largest step (`rate_per_s` x one control period) can never move `actuator`.

    A step under the deadband is never written, and a mode moves in whole steps: either would hold
    the setpoint where it is for good, a contradiction rather than a limit.
    """
    if mode and step < 1.0:
        raise ValueError(
            f"rate_per_s for {actuator!r}: at most {step:g} a control period, under one whole step: "
            "the mode could never change"
        )
    if step < deadband:
        raise ValueError(
            f"rate_per_s for {actuator!r}: at most {step:g} a control period, under its deadband {deadband:g}: "
            "no change could ever be written"
        )


def expand_interlocks(
    spec: LineSpec, rules: ActuatorRules, interlocks: Sequence[Interlock]
) -> tuple[ActiveInterlock, ...]:
    """Each interlock for each station (where it names `{station}`) that acts on one of `spec`'s actuators.

    A rule whose actuator the spec does not command does not apply; its sensor must exist.

    Raises:
        ValueError: a sensor the spec does not have, bounds that leave the actuator no value
            within its limits, or bounds its limits already hold on every actuator the rule
            applies to (a rule that can never cut a setpoint, a slip like `max: 9` for 0.9).
    """
    actuators = {a.name: i for i, a in enumerate(spec.actuators)}
    sensors = {s.name: i for i, s in enumerate(spec.sensors)}
    out: list[ActiveInterlock] = []
    for rule in interlocks:
        templated = any(STATION in text for text in (rule.sensor, rule.actuator, rule.name))
        applied: list[ActiveInterlock] = []
        for station in spec.stations if templated else ("",):
            sensor, actuator = (text.replace(STATION, station) for text in (rule.sensor, rule.actuator))
            if not rule.name:
                name = f"{sensor}:{actuator}"
            elif templated and STATION not in rule.name:
                name = f"{rule.name}:{station}"
            else:
                name = rule.name.replace(STATION, station)
            if actuator not in actuators:
                continue
            if sensor not in sensors:
                raise ValueError(f"interlock {name!r} reads sensor {sensor!r}, which line {spec.name!r} lacks")
            i = actuators[actuator]
            low = -math.inf if rule.min is None else rule.min
            high = math.inf if rule.max is None else rule.max
            if rules.mode[i]:
                low, high = whole(low, high)
            if max(low, rules.low[i]) > min(high, rules.high[i]):
                raise ValueError(
                    f"interlock {name!r} bounds {actuator!r} to [{low}, {high}], outside its limits "
                    f"[{rules.low[i]}, {rules.high[i]}]"
                )
            applied.append(ActiveInterlock(rule, name, sensors[sensor], i, low, high))
        if applied and not any(a.low > rules.low[a.actuator] or a.high < rules.high[a.actuator] for a in applied):
            first = applied[0]
            raise ValueError(
                f"interlock {rule.name or first.name!r} bounds {spec.actuators[first.actuator].name!r} to "
                f"[{first.low}, {first.high}], which its limits [{rules.low[first.actuator]}, "
                f"{rules.high[first.actuator]}] already hold: it can never cut a setpoint"
            )
        out += applied
    return tuple(out)


def unmatched_entries(config: GuardConfig, spec: LineSpec) -> list[str]:
    """The config's entries that name nothing on `spec`, a whole line's spec: typos, as a rule.

    A guard resolved on a task's spec skips an entry for an actuator the task does not command, so
    a misspelt key (`"*.sped"`) would silently guard nothing; checked against every actuator of the
    line, it names nothing at all. Returns `limits.<key>`, `rate_per_s.<key>`, `deadband.<key>`,
    `interlock <name>` and `open_above <pattern>` labels, in config order.
    """
    actuators = [a.name for a in spec.actuators]
    out = [
        f"{group}.{key}"
        for group, entries in (
            ("limits", config.limits),
            ("rate_per_s", config.rate_per_s),
            ("deadband", config.deadband),
        )
        for key in entries
        if not any(fnmatchcase(a, key) for a in actuators)
    ]
    for rule in config.interlocks:
        templated = STATION in rule.actuator
        names = {rule.actuator.replace(STATION, s) for s in spec.stations} if templated else {rule.actuator}
        if not names & set(actuators):
            out.append(f"interlock {rule.name or rule.sensor!r} (actuator {rule.actuator!r})")
    sensors = [s.name for s in spec.sensors]
    out += [
        f"open_above {key!r} (a sensor pattern)"
        for key in config.open_above
        if not any(fnmatchcase(s, key) for s in sensors)
    ]
    return out
