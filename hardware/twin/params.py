"""The twin's line definition: frozen, validated parameters loaded from `configs/line/*.yaml`.

Units are in the field names: `_s` seconds, `_h` hours, `_kw` kilowatts, `_per_h` per hour of
the relevant clock, `_ratio` a fraction of nominal. Money is in the tariff's currency unit.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from hardware.interface import Lever
from hardware.twin.machine import Distribution, MachineParams, PowerParams, SensorParams
from hardware.twin.schema import at_least, non_negative, positive, require

LINE_PREFIX = "line"  # the prefix of line-wide signals (`line.wip_parts`, `line.reorder_units`)


class Layout(enum.Enum):
    """How jobs move: through every station in order, or along per-variant routes."""

    FLOW = "flow"
    JOBSHOP = "jobshop"


class ScenarioKind(enum.Enum):
    """A disruption a scenario can inject."""

    SUPPLIER_OUTAGE = "supplier_outage"
    DEMAND_SURGE = "demand_surge"
    PRICE_SPIKE = "price_spike"
    BREAKDOWN_WAVE = "breakdown_wave"


@dataclass(frozen=True)
class StationParams:
    """A station: a machine of `machine` type fed by an input buffer."""

    name: str
    machine: str
    buffer_capacity_parts: int | None = None  # input buffer; None = unbounded

    def __post_init__(self) -> None:
        """A name that can prefix its signals (`<station>.<signal>`); buffers hold at least one part."""
        require(bool(self.name), "name", "must not be empty")
        require(
            "." not in self.name and self.name != LINE_PREFIX,
            "name",
            f"must contain no '.' and not be {LINE_PREFIX!r}: signals are named '<station>.<signal>' and "
            f"'{LINE_PREFIX}.<signal>', got {self.name!r}",
        )
        if self.buffer_capacity_parts is not None:
            require(
                self.buffer_capacity_parts >= 1,
                "buffer_capacity_parts",
                f"must be >= 1 or null (unbounded), got {self.buffer_capacity_parts}",
            )


@dataclass(frozen=True)
class VariantParams:
    """A product variant: its route and its mean processing time per step at nominal speed."""

    name: str
    processing_time_s: tuple[float, ...]
    route: tuple[str, ...] | None = None  # station names; None = every station in order (flow)
    mix: float = 1.0  # relative share of random demand
    load: float = 1.0  # mechanical load factor on wear and motor current
    material_units: float = 1.0  # raw material consumed when the first operation starts

    def __post_init__(self) -> None:
        """Check times, shares and route length."""
        require(bool(self.processing_time_s), "processing_time_s", "must list at least one step")
        for i, t in enumerate(self.processing_time_s):
            require(0 < t < float("inf"), f"processing_time_s[{i}]", f"must be > 0, got {t}")
        if self.route is not None:
            require(
                len(self.route) == len(self.processing_time_s),
                "route",
                f"has {len(self.route)} steps but processing_time_s has {len(self.processing_time_s)}",
            )
        non_negative(self, "mix", "material_units")
        positive(self, "load")


@dataclass(frozen=True)
class JobParams:
    """A job known in advance: one part of `variant`, released at `release_s`."""

    variant: str
    release_s: float = 0.0
    due_s: float | None = None  # None: release + the demand's due-date allowance
    weight: float = 1.0  # importance in weighted tardiness

    def __post_init__(self) -> None:
        """Times and weights are not negative."""
        non_negative(self, "release_s", "due_s", "weight")


@dataclass(frozen=True)
class DemandParams:
    """Orders: a fixed job list and/or Poisson arrivals of single-part jobs."""

    arrival_rate_per_h: float = 0.0
    due_date_allowance_s: float = 8 * 3600.0
    jobs: tuple[JobParams, ...] = ()

    def __post_init__(self) -> None:
        """Check rates and times."""
        non_negative(self, "arrival_rate_per_h", "due_date_allowance_s")


@dataclass(frozen=True)
class SupplyParams:
    """Raw-material store and its supplier; its rule orders Q at stock position s, or short with none on order."""

    initial_stock_units: float = 500.0
    reorder_point_units: float = 200.0
    order_quantity_units: float = 600.0
    max_order_units: float = 2000.0  # hard limit of one order (the reorder actuator's range)
    lead_time_mean_s: float = 8 * 3600.0
    lead_time_cv: float = 0.3
    outage_rate_per_day: float = 0.05
    outage_duration_mean_s: float = 24 * 3600.0

    def __post_init__(self) -> None:
        """Check ranges: an order may be placed (the reorder lever spans 0 to `max_order_units`)."""
        non_negative(self, *self.__dataclass_fields__)
        positive(self, "max_order_units")
        require(
            self.order_quantity_units <= self.max_order_units,
            "order_quantity_units",
            f"{self.order_quantity_units} exceeds max_order_units {self.max_order_units}",
        )


@dataclass(frozen=True)
class TariffPeriod:
    """From `from_hour` (0-24, local clock) until the next period, energy costs `price_per_kwh`."""

    from_hour: float
    price_per_kwh: float

    def __post_init__(self) -> None:
        """Hours lie in a day; prices are not negative."""
        require(0 <= self.from_hour < 24, "from_hour", f"must lie in [0, 24), got {self.from_hour}")
        non_negative(self, "price_per_kwh")


@dataclass(frozen=True)
class GridParams:
    """Time-of-use tariff with random price spikes, and the grid's hourly carbon intensity."""

    tariff: tuple[TariffPeriod, ...] = (TariffPeriod(0.0, 0.12),)
    spike_rate_per_day: float = 0.0
    spike_factor: float = 3.0
    spike_duration_mean_s: float = 3600.0
    # reported price range top = peak tariff x spike_factor x this: room for market shocks the
    # tariff does not model, such as a scenario's price spike (configs/scenario/price_spike.yaml: x5)
    price_range_factor: float = 5.0
    carbon_kg_per_kwh: tuple[float, ...] = (0.4,)  # 1 value (flat) or 24 hourly values

    def __post_init__(self) -> None:
        """Check the tariff is ordered from hour 0 and the carbon curve has 1 or 24 values."""
        require(bool(self.tariff), "tariff", "must have at least one period")
        require(self.tariff[0].from_hour == 0, "tariff[0].from_hour", "the first period must start at hour 0")
        hours = [p.from_hour for p in self.tariff]
        require(hours == sorted(set(hours)), "tariff", f"periods must be in increasing hour order, got {hours}")
        non_negative(self, "spike_rate_per_day", "spike_duration_mean_s")
        at_least(self, 1.0, "spike_factor", "price_range_factor")
        require(
            len(self.carbon_kg_per_kwh) in (1, 24),
            "carbon_kg_per_kwh",
            f"needs 1 or 24 hourly values, got {len(self.carbon_kg_per_kwh)}",
        )
        for i, c in enumerate(self.carbon_kg_per_kwh):
            require(0 <= c < float("inf"), f"carbon_kg_per_kwh[{i}]", f"must be >= 0 and finite, got {c}")


@dataclass(frozen=True)
class ScenarioEvent:
    """A disruption from `start_s` for `duration_s`; `factor` scales demand, price or hazard.

    Times count from the episode's start (after any warm-up), so a disruption falls in the episode.

    Demand: a surge (factor > 1) adds orders at (factor - 1) times the base rate, overlapping surges
    adding up; a dip (factor < 1) keeps each base order with probability `factor`; either needs a
    line with open arrivals. A supplier outage ships nothing (no factor); only a breakdown wave
    names stations.
    """

    kind: ScenarioKind
    start_s: float
    duration_s: float
    factor: float = 1.0
    stations: tuple[str, ...] = ()  # breakdown_wave: stations hit; empty = all

    def __post_init__(self) -> None:
        """Check times and factor, and refuse a setting the kind of event would ignore."""
        non_negative(self, "start_s", "factor")
        positive(self, "duration_s")
        require(
            self.kind is not ScenarioKind.SUPPLIER_OUTAGE or self.factor == 1.0,
            "factor",
            f"a supplier_outage ships nothing for its duration, it takes no factor: got {self.factor}",
        )
        require(
            not self.stations or self.kind is ScenarioKind.BREAKDOWN_WAVE,
            "stations",
            f"only a breakdown_wave hits chosen stations; a {self.kind.value} acts on the whole line, "
            f"got {list(self.stations)}",
        )


class StartMode(enum.Enum):
    """How an episode begins."""

    COLD = "cold"  # time 0 (midnight): empty buffers, new machines, the store at its initial stock
    WARM = "warm"  # after a warm-up run of the line under its own rules
    AUTO = "auto"  # warm for a line of open orders, cold for a fixed job set (released at time 0)


@dataclass(frozen=True)
class StartParams:
    """Where an episode starts: cold, or warm after a warm-up drawn uniformly from a range of hours.

    A warm start hands the agent a line as it runs: buffers, backlog, machine health, stock and
    time of day come from a run under the line's own rules (FIFO, nominal speed, always run,
    repair on failure, its reorder point) of `warmup_min_h` to `warmup_max_h` hours. The default
    range spans a day, so an episode may start at any time of day, and is long enough to fill
    buffers and backlog and wear machines into their working life, short enough that a reset costs
    less than simulating an 8-hour episode twice.
    """

    mode: StartMode = StartMode.COLD
    warmup_min_h: float = 24.0
    warmup_max_h: float = 48.0

    def warm(self, fixed_job_set: bool) -> bool:
        """Whether episodes start after a warm-up (`auto`: warm unless the line runs a fixed job set)."""
        return self.mode is StartMode.WARM or (self.mode is StartMode.AUTO and not fixed_job_set)

    def __post_init__(self) -> None:
        """The range is ordered and not negative."""
        non_negative(self, "warmup_min_h", "warmup_max_h")
        require(
            self.warmup_min_h <= self.warmup_max_h,
            "warmup_max_h",
            f"must be >= warmup_min_h ({self.warmup_min_h}), got {self.warmup_max_h}",
        )


@dataclass(frozen=True)
class ControlParams:
    """Which decisions go to the agent, and the period of the control tick."""

    levers: tuple[Lever, ...] = ()
    control_period_s: float | None = None

    def __post_init__(self) -> None:
        """A setpoint lever needs a tick to be written at."""
        positive(self, "control_period_s")
        require(len(set(self.levers)) == len(self.levers), "levers", "lists a lever twice")
        ticked = [lv for lv in self.levers if lv is not Lever.DISPATCH]
        require(
            not ticked or self.control_period_s is not None,
            "control_period_s",
            f"levers {[lv.value for lv in ticked]} need a control period",
        )


@dataclass(frozen=True)
class LineParams:
    """A whole line definition, as in one `configs/line/*.yaml` file."""

    name: str
    layout: Layout
    machines: dict[str, MachineParams]
    stations: tuple[StationParams, ...]
    variants: tuple[VariantParams, ...]
    changeover_time_s: tuple[tuple[float, ...], ...] | None = None  # [from variant][to variant]
    demand: DemandParams = field(default_factory=DemandParams)
    supply: SupplyParams | None = None  # None: material never runs out
    grid: GridParams = field(default_factory=GridParams)
    scenarios: tuple[ScenarioEvent, ...] = ()
    control: ControlParams = field(default_factory=ControlParams)
    start: StartParams = field(default_factory=StartParams)
    # reported range top of counts the line does not bound (unbounded queues, WIP): the orders that
    # arrive in this many hours (or the fixed job set, if larger); a week covers multi-day outages
    backlog_range_h: float = 168.0

    def __post_init__(self) -> None:
        """Check cross-references: machines, routes, changeover matrix, jobs and scenarios."""
        positive(self, "backlog_range_h")
        require(bool(self.stations), "stations", "must list at least one station")
        require(bool(self.variants), "variants", "must list at least one variant")
        names = [s.name for s in self.stations]
        require(len(set(names)) == len(names), "stations", f"station names repeat: {names}")
        vnames = [v.name for v in self.variants]
        require(len(set(vnames)) == len(vnames), "variants", f"variant names repeat: {vnames}")
        for i, s in enumerate(self.stations):
            require(
                s.machine in self.machines,
                f"stations[{i}].machine",
                f"unknown machine type {s.machine!r} (known: {sorted(self.machines)})",
            )
        for i, v in enumerate(self.variants):
            self._check_route(i, v, names)
        if self.layout is Layout.JOBSHOP:
            for i, s in enumerate(self.stations):
                require(
                    s.buffer_capacity_parts is None,
                    f"stations[{i}].buffer_capacity_parts",
                    "a job shop's queues are unbounded (null): finite buffers can deadlock routes",
                )
        self._check_changeovers(len(self.variants))
        require(
            self.demand.arrival_rate_per_h == 0 or sum(v.mix for v in self.variants) > 0,
            "variants",
            "every mix is 0, so the orders that arrive (demand.arrival_rate_per_h > 0) have no variant: "
            "give one a mix > 0",
        )
        require(
            self.start.mode is not StartMode.WARM or not self.demand.jobs,
            "start.mode",
            "a fixed job set is released at time 0, so its line starts cold (warm starts need open arrivals only)",
        )
        require(
            Lever.REORDER not in self.control.levers or self.supply is not None,
            "control.levers",
            "gives the agent the reorder lever but the line has no supply section",
        )
        for i, job in enumerate(self.demand.jobs):
            require(
                job.variant in vnames,
                f"demand.jobs[{i}].variant",
                f"unknown variant {job.variant!r} (known: {vnames})",
            )
        for i, ev in enumerate(self.scenarios):
            require(
                ev.kind is not ScenarioKind.SUPPLIER_OUTAGE or self.supply is not None,
                f"scenarios[{i}].kind",
                "a supplier outage needs a supply section in the line",
            )
            require(
                ev.kind is not ScenarioKind.DEMAND_SURGE or self.demand.arrival_rate_per_h > 0,
                f"scenarios[{i}].kind",
                "a demand_surge scales open arrivals, and the line has none (demand.arrival_rate_per_h is 0)",
            )
            for j, st in enumerate(ev.stations):
                require(st in names, f"scenarios[{i}].stations[{j}]", f"unknown station {st!r}")

    def _check_route(self, i: int, v: VariantParams, names: list[str]) -> None:
        route = v.route if v.route is not None else tuple(names)
        if v.route is None:
            require(
                self.layout is Layout.FLOW,
                f"variants[{i}].route",
                "is required in a job shop",
            )
            require(
                len(v.processing_time_s) == len(names),
                f"variants[{i}].processing_time_s",
                f"needs one time per station ({len(names)}), got {len(v.processing_time_s)}",
            )
        for j, st in enumerate(route):
            require(st in names, f"variants[{i}].route[{j}]", f"unknown station {st!r} (known: {names})")
        if self.layout is Layout.FLOW:
            order = [names.index(st) for st in route]
            require(
                order == sorted(set(order)),
                f"variants[{i}].route",
                "a flow line visits stations in line order, each at most once",
            )

    def _check_changeovers(self, n: int) -> None:
        if self.changeover_time_s is None:
            return
        require(len(self.changeover_time_s) == n, "changeover_time_s", f"needs {n} rows, one per variant")
        for i, row in enumerate(self.changeover_time_s):
            require(len(row) == n, f"changeover_time_s[{i}]", f"needs {n} columns, got {len(row)}")
            for j, t in enumerate(row):
                require(0 <= t < float("inf"), f"changeover_time_s[{i}][{j}]", f"must be >= 0, got {t}")

    def due_of(self, job: JobParams) -> float:
        """Due time of a job of the fixed job set, s: its own, or release plus the allowance."""
        return job.due_s if job.due_s is not None else job.release_s + self.demand.due_date_allowance_s

    def route_of(self, variant: int) -> tuple[int, ...]:
        """Return the station indices variant `variant` visits, in order."""
        v = self.variants[variant]
        names = [s.name for s in self.stations]
        return tuple(range(len(names))) if v.route is None else tuple(names.index(s) for s in v.route)


__all__ = [
    "ControlParams",
    "DemandParams",
    "Distribution",
    "GridParams",
    "JobParams",
    "Layout",
    "LineParams",
    "MachineParams",
    "PowerParams",
    "ScenarioEvent",
    "ScenarioKind",
    "SensorParams",
    "StartMode",
    "StartParams",
    "StationParams",
    "SupplyParams",
    "TariffPeriod",
    "VariantParams",
]
