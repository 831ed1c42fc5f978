"""The one hardware interface every environment drives: `Line` and the types it speaks.

A `Line` is the twin or a real production line. Everything downstream (observation spaces,
register maps, guard limits) is derived from its static `LineSpec`; at run time it hands out
immutable `Frame` snapshots and takes `Command`s.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from hardware.counters import Counters


class DecisionKind(enum.Enum):
    """Why the line is waiting for the agent."""

    DISPATCH = "dispatch"  # a station is free and jobs wait in its queue
    TICK = "tick"  # the periodic control tick for setpoint levers


class Lever(enum.Enum):
    """A decision family that configuration hands to the agent or leaves to the line's rule."""

    DISPATCH = "dispatch"  # which waiting job a free station starts (rule: FIFO)
    SPEED = "speed"  # speed setpoint per station (rule: nominal)
    MODE = "mode"  # run / standby / off per station (rule: always run)
    MAINTENANCE = "maintenance"  # start preventive maintenance now (rule: repair on failure only)
    REORDER = "reorder"  # raw-material order quantity (rule: fixed reorder point)


@dataclass(frozen=True)
class SensorSpec:
    """One measured value: name, unit and the physical range it can take.

    `log_reference` (in the sensor's unit) asks for a logarithmic scale, for heavy-tailed values
    such as prices with spikes or backlogs: a value `x` is encoded as
    `log1p((x - low) / log_reference) / log1p((high - low) / log_reference)`, linear well below
    the reference and logarithmic above it. None keeps the linear scale `(x - low) / (high - low)`.
    """

    name: str
    unit: str
    low: float
    high: float
    station: int | None = None  # index into LineSpec.stations, None for line-level values
    dropouts: bool = False  # whether the value can be missing (NaN) in a frame
    log_reference: float | None = None  # scale turns logarithmic above low + this; None: linear

    def __post_init__(self) -> None:
        """Reject an inverted range and a log reference that is not positive."""
        if not self.high >= self.low:
            raise ValueError(f"sensor {self.name!r}: range high {self.high} is below low {self.low}")
        if self.log_reference is not None and not self.log_reference > 0:
            raise ValueError(f"sensor {self.name!r}: log_reference must be > 0, got {self.log_reference}")


@dataclass(frozen=True)
class ActuatorSpec:
    """One writable setpoint: name, unit and its hard limits; `default` is the safe value."""

    name: str
    unit: str
    low: float
    high: float
    default: float
    lever: Lever
    station: int | None = None


class StationState(enum.IntEnum):
    """What a station's machine is doing, as its `<station>.state` sensor reports it."""

    OFF = 0
    STANDBY = 1
    WARMUP = 2
    IDLE = 3
    BUSY = 4
    BLOCKED = 5  # holding a finished part while the next buffer is full
    CHANGEOVER = 6
    DOWN = 7  # corrective repair after a failure
    MAINTENANCE = 8  # planned, preventive


# The one home of how station states group; the twin, the tasks and the rules all read these.
# Working: engaged with a part or getting ready for one (the station is not free).
WORKING_STATES = frozenset({StationState.WARMUP, StationState.BUSY, StationState.BLOCKED, StationState.CHANGEOVER})
# Stopped: not available for production (switched off or down, by command or by a failure).
STOPPED_STATES = frozenset({StationState.OFF, StationState.STANDBY, StationState.DOWN, StationState.MAINTENANCE})
# Renewing: health is being restored; a maintenance request now would only repeat the renewal.
RENEWING_STATES = frozenset({StationState.DOWN, StationState.MAINTENANCE})
# Eventful: the state ends by itself (a part finishes, a warm-up or repair ends), without the agent.
EVENTFUL_STATES = frozenset(
    {StationState.WARMUP, StationState.BUSY, StationState.CHANGEOVER, StationState.DOWN, StationState.MAINTENANCE}
)
# Running: powered up for production, loaded (busy) or not.
RUNNING_STATES = WORKING_STATES | {StationState.IDLE}


def state_mask(states: frozenset[StationState]) -> np.ndarray:
    """Boolean lookup table over state codes: `state_mask(S)[code]` says whether the code is in `S`."""
    mask = np.zeros(len(StationState), dtype=bool)
    mask[[int(s) for s in states]] = True
    return mask


class StationMode(enum.IntEnum):
    """The operating mode commanded through a station's mode actuator."""

    OFF = 0
    STANDBY = 1
    RUN = 2


class JobStatus(enum.IntEnum):
    """Where a job of a fixed job set is."""

    PENDING = 0  # not released yet
    QUEUED = 1  # waiting in a station's input queue
    ACTIVE = 2  # at a station: changeover, processing, repair or blocked
    DONE = 3
    SCRAPPED = 4


@dataclass(frozen=True)
class JobSpec:
    """A job of a fixed job set: its route (station indices) and mean times at nominal speed."""

    variant: int
    route: tuple[int, ...]
    times_s: tuple[float, ...]
    release_s: float
    due_s: float
    weight: float = 1.0


@dataclass(frozen=True)
class LineSpec:
    """Static description of a line: its stations, sensors, actuators and decision points."""

    name: str
    stations: tuple[str, ...]
    variants: tuple[str, ...]
    sensors: tuple[SensorSpec, ...]
    actuators: tuple[ActuatorSpec, ...]
    levers: frozenset[Lever]  # decisions the agent owns; the line's rules take the rest
    control_period_s: float | None  # period of TICK decisions, None when no tick is configured
    jobs: tuple[JobSpec, ...] = ()  # the fixed job set, numbered by job id (empty if none)
    open_arrivals: bool = False  # whether orders beyond `jobs` keep arriving

    def sensor_index(self, name: str) -> int:
        """Return the position of sensor `name` in `Frame.values`."""
        for i, s in enumerate(self.sensors):
            if s.name == name:
                return i
        raise KeyError(f"line {self.name!r} has no sensor {name!r}")

    def actuator_index(self, name: str) -> int:
        """Return the position of actuator `name` in `Command.setpoints`."""
        for i, a in enumerate(self.actuators):
            if a.name == name:
                return i
        raise KeyError(f"line {self.name!r} has no actuator {name!r}")


class SetpointLimits:
    """The one check of a setpoint vector against a spec's actuators, for every `Line` that takes commands."""

    def __init__(self, spec: LineSpec) -> None:
        self.actuators = spec.actuators
        self.low = np.array([a.low for a in spec.actuators])
        self.high = np.array([a.high for a in spec.actuators])
        self._modes = [i for i, a in enumerate(spec.actuators) if a.lever is Lever.MODE]

    def check(self, setpoints: Any) -> np.ndarray:
        """The setpoints as floats in actuator order (NaN = keep), or an error naming the actuator.

        Raises:
            ValueError: the wrong shape, a value outside its actuator's limits, or a mode that is not
                0 (off), 1 (standby) or 2 (run).
        """
        acts = self.actuators
        values = np.asarray(setpoints, dtype=float)
        if values.shape != (len(acts),):
            raise ValueError(
                f"setpoints: expected shape ({len(acts)},) for actuators {[a.name for a in acts]}, got {values.shape}"
            )
        outside = (values < self.low) | (values > self.high)  # NaN (keep) compares False
        if outside.any():
            i = int(np.argmax(outside))
            a = acts[i]
            raise ValueError(f"setpoint {a.name} = {values[i]} is outside its limits [{a.low}, {a.high}] {a.unit}")
        for i in self._modes:
            v = float(values[i])
            if not math.isnan(v) and v != round(v):
                raise ValueError(f"setpoint {acts[i].name} = {v}: mode is 0 (off), 1 (standby) or 2 (run)")
        return values

    def bounds(self, bounds: Any) -> tuple[np.ndarray, np.ndarray]:
        """A command's `bounds` as (low, high) float arrays in actuator order, or an error naming what is wrong.

        Raises:
            ValueError: not a (low, high) pair of the actuators' shape, a NaN bound, or low above high.
        """
        acts = self.actuators
        try:
            low, high = (np.asarray(b, dtype=float) for b in bounds)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"bounds: expected a (low, high) pair of arrays, got {bounds!r}") from exc
        for name, b in (("low", low), ("high", high)):
            if b.shape != (len(acts),):
                raise ValueError(
                    f"bounds: {name} of shape {b.shape}, expected ({len(acts)},) for actuators {[a.name for a in acts]}"
                )
        wrong = np.isnan(low) | np.isnan(high) | (low > high)
        if wrong.any():
            i = int(np.argmax(wrong))
            raise ValueError(f"bounds: {acts[i].name} = [{low[i]}, {high[i]}] is not a range (NaN, or low above high)")
        return low, high


@dataclass(frozen=True)
class Decision:
    """A decision the line waits for: a free station with the jobs in its queue, or a tick."""

    kind: DecisionKind
    station: int | None = None
    jobs: tuple[int, ...] = ()  # job ids waiting at `station`, in queue order


@dataclass(frozen=True)
class Kpis:
    """KPIs of the episode so far (counted from its start); times in s, energy in kWh, money in the tariff's unit."""

    good_parts: int = 0
    scrap_parts: int = 0
    jobs_released: int = 0
    jobs_done: int = 0  # good plus scrapped departures
    throughput_per_h: float = 0.0  # good parts per hour of line clock
    wip_parts: int = 0  # jobs in the system now
    wip_mean_parts: float = 0.0  # time-average of wip_parts
    flow_time_mean_s: float = 0.0  # mean arrival-to-departure time of departed jobs
    energy_kwh: float = 0.0
    energy_cost: float = 0.0
    co2_kg: float = 0.0
    energy_cost_per_good_part: float = math.nan  # NaN until a good part is made: no part, no cost per part
    co2_kg_per_good_part: float = math.nan
    busy_time_s: float = 0.0  # summed over stations, likewise the times below
    changeover_time_s: float = 0.0
    planned_downtime_s: float = 0.0  # preventive maintenance
    unplanned_downtime_s: float = 0.0  # corrective repair after failures
    failures: int = 0
    preventive_maintenances: int = 0
    repair_cost: float = 0.0  # corrective maintenance after failures
    preventive_cost: float = 0.0
    stockouts: int = 0  # job starts held up by an empty raw-material store
    stockout_time_s: float = 0.0
    orders_placed: int = 0
    material_ordered: float = 0.0
    material_received: float = 0.0
    stock_unit_h: float = 0.0  # time integral of raw stock on hand, unit-hours
    tardiness_s: float = 0.0  # lateness summed over jobs, done or still open, as of now
    weighted_tardiness_s: float = 0.0  # the same, each job weighted by its weight
    tardy_jobs: int = 0
    health_consumed: float = 0.0  # machine health worn off, summed over stations (1 = a new machine's life)
    health_restored: float = 0.0  # health given back by repairs and preventive maintenance, summed over stations
    last_completion_s: float = 0.0  # time from the episode's start to its latest departure (a job set's makespan)
    availability: float = 0.0
    performance: float = 0.0  # ideal time at nominal speed / run time: above 1 when run faster than nominal
    quality: float = 0.0
    oee: float = 0.0

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """Return the KPI field names in declaration order."""
        return tuple(f.name for f in fields(cls))


@dataclass(frozen=True)
class Frame:
    """One immutable, timestamped snapshot of the line."""

    time: float  # line clock, s
    seq: int  # monotonic sequence number
    values: np.ndarray  # sensor values, float64, in spec order (NaN = dropout)
    stamps: np.ndarray  # source timestamp of each value, s on the line clock
    pending: tuple[Decision, ...]  # decisions the line is waiting for
    kpis: Kpis = field(default_factory=Kpis)
    jobs: Jobs | None = None  # status of the fixed job set, if the line has one
    counters: Counters | None = None  # the line's running totals `kpis` derive from, if it reports them

    def __post_init__(self) -> None:
        """Freeze the arrays (a view of another array is copied first); a line hands over arrays it no longer writes."""
        _freeze(self, "values", "stamps")


@dataclass(frozen=True)
class Jobs:
    """Status of a fixed job set, indexed by job id (see `LineSpec.jobs`)."""

    step: np.ndarray  # int64: index of the next operation; the route length once done
    status: np.ndarray  # int8 `JobStatus` codes

    def __post_init__(self) -> None:
        """Freeze the arrays (a view is copied first)."""
        _freeze(self, "step", "status")


@dataclass(frozen=True)
class Dispatch:
    """Start job `job`'s next operation on station `station`."""

    station: int
    job: int


@dataclass(frozen=True)
class Command:
    """What the agent writes: setpoints in spec actuator order (NaN = keep) and dispatches.

    `bounds`: (low, high) per actuator, spec order, that each setpoint must stay inside once a line
    rounds it to the grid it stores setpoints on (a guard verdict's bounds: its limits and tripped
    interlocks); None: the actuators' limits. A line that stores floats (the twin) has no grid to
    round to and does not read it.
    """

    setpoints: np.ndarray | None = None
    dispatch: tuple[Dispatch, ...] = ()
    bounds: tuple[np.ndarray, np.ndarray] | None = None


@runtime_checkable
class Line(Protocol):
    """A production line, simulated or real; envs never know which."""

    spec: LineSpec

    def reset(self, seed: int | None = None) -> Frame:
        """Start a new episode (twin) or attach and read (real line, never resets the plant)."""
        ...

    def write(self, command: Command) -> None:
        """Send setpoints and dispatch decisions."""
        ...

    def advance(self, dt: float) -> Frame:
        """Let up to `dt` s pass, or less if a decision comes up first, and return the frame."""
        ...

    def read(self) -> Frame:
        """Return the latest frame; no time passes."""
        ...

    def close(self) -> None:
        """Release the line."""
        ...


@dataclass(frozen=True)
class LineStatus:
    """What a line's controller reports of itself: operator inputs, its watchdog, its clock, the setpoints it runs.

    A line without a controller of its own (the twin) reports the defaults: remote, permissive, no
    E-stop, no trip, no lever kept local, nothing else known.
    """

    remote: bool = True  # the operator hands the line to remote (agent) control
    permissive: bool = True  # the process permits remote setpoints now
    estop: bool = False
    watchdog_tripped: bool = False  # the controller fell back to its own setpoints
    setpoint_limited: bool = False  # the controller clamped or rate-limited the last command
    heartbeat: int | None = None  # the controller's scan counter, if it has one
    clock_s: float | None = None  # the controller's clock at the frame (s since the epoch), if it has one
    read_at_s: float | None = None  # our wall clock (time.time()) when the status was read
    active: np.ndarray | None = None  # setpoints the line runs now, spec actuator order (NaN: unknown)
    local_levers: tuple[str, ...] = ()  # levers of the spec the controller keeps to its own rules now (`Lever` values)


@runtime_checkable
class Supervised(Protocol):
    """A line whose controller reports its status and can be kept alive without a command (a PLC)."""

    def status(self) -> LineStatus:
        """The controller's status as of the last read."""
        ...

    def heartbeat(self) -> None:
        """Tell the controller the agent is alive, and write nothing else."""
        ...


def _freeze(obj: Any, first: str, second: str) -> None:
    """Make two arrays of frozen dataclass `obj` read-only; one that views another's memory is copied.

    Read-only is a flag of the array, not of its memory: a view left as given would change with
    the array it views. (Two names, not a loop: a frame is made at every step.)
    """
    a, b = getattr(obj, first), getattr(obj, second)
    if a.base is not None:
        a = a.copy()
        object.__setattr__(obj, first, a)
    if b.base is not None:
        b = b.copy()
        object.__setattr__(obj, second, b)
    a.flags.writeable = b.flags.writeable = False
