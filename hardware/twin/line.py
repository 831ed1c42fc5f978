"""`TwinLine`: the SimPy digital twin behind the `Line` interface."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np

from hardware.counters import Counters
from hardware.interface import (
    RENEWING_STATES,
    ActuatorSpec,
    Command,
    Decision,
    DecisionKind,
    Frame,
    Jobs,
    JobSpec,
    JobStatus,
    Lever,
    LineSpec,
    SetpointLimits,
)
from hardware.twin.job import Job
from hardware.twin.loader import load_definition, merge
from hardware.twin.params import LINE_PREFIX, LineParams
from hardware.twin.plant import Plant
from hardware.twin.schema import build
from hardware.twin.sensors import SensorBank, sensor_specs
from hardware.twin.station import Mode, Station

_DISPATCH, _TICK = DecisionKind.DISPATCH, DecisionKind.TICK
_HYDRA_KEYS = ("_target_", "_convert_", "_recursive_", "_partial_")


class TwinLine:
    """A simulated production line; same seed, bit-identical frames.

    Which decisions the agent owns is `params.control.levers`; the line's own rules take the
    rest (FIFO dispatch, nominal speed, always run, repair on failure, a fixed reorder point),
    so a line with no levers runs by itself. `advance(dt)` returns after `dt` s, at the next
    control tick, or when a station needs a dispatch decision, whichever comes first.

    `params.start` says where an episode begins: cold at time 0, or warm after a warm-up under the
    line's own rules. Either way frames count KPIs from the episode's start, control ticks fall every
    control period from it, and scenario times are relative to it; the line clock (and with it the
    time of day) keeps running from time 0.
    """

    def __init__(self, params: LineParams, seed: int | None = None) -> None:
        self.params = params
        self.spec = LineSpec(
            name=params.name,
            stations=tuple(s.name for s in params.stations),
            variants=tuple(v.name for v in params.variants),
            sensors=sensor_specs(params),
            actuators=_actuator_specs(params),
            levers=frozenset(params.control.levers),
            control_period_s=params.control.control_period_s if _ticked(params) else None,
            jobs=_job_specs(params),
            open_arrivals=params.demand.arrival_rate_per_h > 0,
        )
        self._limits = SetpointLimits(self.spec)
        # actuators whose setpoint can close a station to dispatch, by station index
        self._mode_actuator = {a.station: i for i, a in enumerate(self.spec.actuators) if a.lever is Lever.MODE}
        self._maintain_actuator = {
            a.station: i for i, a in enumerate(self.spec.actuators) if a.lever is Lever.MAINTENANCE
        }
        self._root = np.random.SeedSequence(seed)
        self._plant: Plant | None = None
        self._sensors: SensorBank | None = None  # set together with _plant
        self._frame: Frame | None = None
        self._measured: Frame | None = None  # the last frame with fresh readings and KPIs
        self._seq = 0
        self._ticks = 0
        self._tick_open = False
        self._start_s = 0.0  # line clock at the episode's start
        self._halted = False  # an emergency stop holds every station off

    @classmethod
    def from_yaml(
        cls,
        path: str | Path,
        seed: int | None = None,
        defaults: Mapping[str, Any] | None = None,
        search: Sequence[str | Path] = (),
        **overrides: Any,
    ) -> TwinLine:
        """Load a line definition file; `defaults` merge under its fields, `overrides` over them.

        The file's own `defaults` name sibling files, else files in the folders of `search`.
        Example: `TwinLine.from_yaml(path, control={"levers": ["speed"]}, scenarios=[...])`.
        """
        loaded = load_definition(Path(path), tuple(Path(folder) for folder in search))
        definition = merge(merge(defaults or {}, loaded), overrides)
        return cls._from_mapping(definition, str(path), seed)

    @classmethod
    def from_definition(
        cls,
        definition: Mapping[str, Any],
        seed: int | None = None,
        defaults: Mapping[str, Any] | None = None,
        **overrides: Any,
    ) -> TwinLine:
        """Build from a line definition mapping (as a line file holds); `defaults` merge under it, `overrides` over."""
        source = f"line config {definition.get('name', '?')!r}"
        return cls._from_mapping(merge(merge(defaults or {}, definition), overrides), source, seed)

    @classmethod
    def from_config(cls, seed: int | None = None, **definition: Any) -> TwinLine:
        """Build from a line definition given as keyword arguments (the Hydra `_target_`)."""
        return cls._from_mapping(definition, f"line config {definition.get('name', '?')!r}", seed)

    @classmethod
    def _from_mapping(cls, data: Mapping[str, Any], source: str, seed: int | None) -> TwinLine:
        definition = {k: v for k, v in data.items() if k not in _HYDRA_KEYS}
        return cls(build(LineParams, definition, source), seed=seed)

    def reset(self, seed: int | None = None) -> Frame:
        """Start a new episode, cold or after a warm-up; a given seed restarts the seed sequence."""
        if seed is not None:
            self._root = np.random.SeedSequence(seed)
        (episode_seed,) = self._root.spawn(1)
        plant = Plant(self.params, episode_seed)
        self._plant = plant
        self._sensors = SensorBank(plant)
        start = self.params.start
        if self.warm:
            (warmup_seed,) = episode_seed.spawn(1)
            hours = np.random.default_rng(warmup_seed).uniform(start.warmup_min_h, start.warmup_max_h)
            if hours > 0:
                plant.run_until(hours * 3600.0)
        plant.hand_over(self.spec.levers)
        self._halted = False
        self._start_s = plant.env.now
        self._ticks = 0
        self._tick_open = False
        return self._new_frame()

    @property
    def warm(self) -> bool:
        """Whether episodes start after a warm-up (`params.start`; `auto` is warm without a fixed job set)."""
        return self.params.start.warm(bool(self.params.demand.jobs))

    @property
    def episode_start_s(self) -> float:
        """Line-clock time at which the current episode began (0 for a cold start), s."""
        self._live()
        return self._start_s

    def write(self, command: Command) -> None:
        """Apply setpoints (NaN keeps the current value) and dispatch decisions, all or nothing.

        Every part is checked before any takes effect, the dispatches together and against the
        stations as the command's setpoints leave them (a mode other than run, or a maintenance
        request, closes a station to dispatch).

        Raises:
            ValueError: a setpoint outside its actuator's limits, a command for a lever the
                agent does not own, or a dispatch to a station that is not free (or dispatched
                twice) or a job that does not wait there; the line is then as it was.
        """
        plant = self._live()
        setpoints = None if command.setpoints is None else self._limits.check(command.setpoints)
        chosen: dict[int, tuple[Station, Job]] = {}
        for d in command.dispatch:
            st, job = self._checked_dispatch(plant, d.station, d.job, setpoints)
            if st.index in chosen:
                raise ValueError(f"dispatch: station {st.name!r} is dispatched twice in one command")
            chosen[st.index] = (st, job)
        if setpoints is not None:
            self._apply_setpoints(plant, setpoints)
            self._measured = None  # a setpoint shows in the readings
        for st, job in chosen.values():
            st.assigned = job
            plant.mark(job, JobStatus.ACTIVE)  # committed to the station from this instant
            st.poke()
        self._frame = None

    def advance(self, dt: float) -> Frame:
        """Simulate up to `dt` s; return early at a control tick or a new dispatch decision."""
        plant = self._live()
        if not (dt > 0 and math.isfinite(dt)):
            raise ValueError(f"advance(dt): dt must be a positive finite number of seconds, got {dt!r}")
        period = self.spec.control_period_s
        t_end = plant.env.now + dt
        if period is not None:
            t_end = min(t_end, self._start_s + (self._ticks + 1) * period)
        plant.run_until(t_end)
        self._tick_open = period is not None and plant.env.now >= self._start_s + (self._ticks + 1) * period
        if self._tick_open:
            self._ticks += 1
        return self._new_frame()

    def read(self) -> Frame:
        """Return the latest frame (rebuilt after a write changed what is pending)."""
        self._live()
        if self._frame is not None:
            return self._frame
        if self._measured is not None:  # no time passed and no setpoint changed: same readings and KPIs
            return self._new_frame(self._measured)
        return self._new_frame()

    def close(self) -> None:
        """Drop the episode."""
        self._plant = None
        self._sensors = None
        self._frame = self._measured = None

    def counters(self) -> Counters:
        """Running totals since time 0 (not since the episode's start), open intervals closed at now."""
        return self._live().counters()

    def local_control(self, on: bool, levers: Iterable[Lever] | None = None) -> None:
        """Take agent setpoint levers back to the line's own rules (`on`), or hand them back to the agent.

        `levers` says which (None: every one). Taking them back sets nominal speed (speed), run mode
        unless an emergency stop holds the stations (mode), no maintenance request (maintenance),
        and lets the fixed reorder point order again (reorder). Handing them back leaves the
        setpoints as they are until the agent writes new ones; only the reorder rule stops, if the
        agent owns reorders.
        """
        plant = self._live()
        which = frozenset(Lever) if levers is None else frozenset(levers)
        if plant.supply is not None and Lever.REORDER in which:
            plant.supply.set_auto_reorder(on or Lever.REORDER not in self.spec.levers)
        if on:
            for st in plant.stations:
                if Lever.SPEED in which:
                    st.speed_setpoint = 1.0
                if Lever.MAINTENANCE in which:
                    st.maintain_requested = False
                if Lever.MODE in which and not self._halted and st.mode is not Mode.RUN:
                    st.mode = Mode.RUN
                    st.poke()
            self._measured = self._frame = None  # the setpoints show in the readings

    def halt(self, stopped: bool) -> None:
        """Emergency stop (`stopped`): every station switches off once its current operation ends; release runs them.

        Release sets every station to run mode, whatever mode it had before the stop.
        """
        plant = self._live()
        self._halted = stopped
        mode = Mode.OFF if stopped else Mode.RUN
        for st in plant.stations:
            if st.mode is not mode:
                st.mode = mode
                st.poke()
        self._measured = self._frame = None

    def state_times(self) -> np.ndarray:
        """Seconds each station has spent in each `State` so far, shape (stations, states)."""
        plant = self._live()
        now = plant.env.now
        times = np.array([s.time_in_state for s in plant.stations], dtype=float)
        for i, s in enumerate(plant.stations):
            times[i, s.state] += now - s.since
        return times

    def health(self) -> np.ndarray:
        """Ground-truth health of each station, 1 = as new (hidden from frames)."""
        return np.array([s.health for s in self._live().stations])

    def _live(self) -> Plant:
        if self._plant is None:
            raise RuntimeError(f"line {self.spec.name!r}: call reset() before using it")
        return self._plant

    def _apply_setpoints(self, plant: Plant, values: np.ndarray) -> None:
        for a, v in zip(self.spec.actuators, values.tolist(), strict=True):
            if math.isnan(v):  # keep the current value
                continue
            if a.lever is Lever.SPEED and a.station is not None:  # the common case, first
                plant.stations[a.station].speed_setpoint = v
            elif a.lever is Lever.REORDER and plant.supply is not None:
                plant.supply.order(float(v))
            elif a.station is not None:
                self._apply_station_setpoint(plant.stations[a.station], a, float(v))

    @staticmethod
    def _apply_station_setpoint(st: Station, a: ActuatorSpec, v: float) -> None:
        if a.lever is Lever.SPEED:
            st.speed_setpoint = v
        elif a.lever is Lever.MODE:
            if Mode(int(v)) != st.mode:
                st.mode = Mode(int(v))
                st.poke()
        elif a.lever is Lever.MAINTENANCE and not st.maintain_requested and _requests_maintenance(st, v):
            st.maintain_requested = True
            st.poke()

    def _checked_dispatch(
        self, plant: Plant, station: int, job: int, setpoints: np.ndarray | None
    ) -> tuple[Station, Job]:
        """The station and job of a dispatch, if the station is free once `setpoints` apply and the job waits there."""
        if not plant.agent_dispatch:
            raise ValueError(f"dispatch: line {self.spec.name!r} does not give the dispatch lever to the agent")
        if not 0 <= station < len(plant.stations):
            raise ValueError(f"dispatch: no station {station} (line has {len(plant.stations)})")
        st = plant.stations[station]
        mode, maintain = (st.mode, st.maintain_requested) if setpoints is None else self._commanded(st, setpoints)
        if not st.open_for_dispatch(mode, maintain):
            if not st.open_for_dispatch():
                raise ValueError(
                    f"dispatch: station {st.name!r} is not free for a dispatch now (state {st.state.name})"
                )
            closing = f"sets its mode to {mode.name.lower()}" if mode is not Mode.RUN else "requests its maintenance"
            raise ValueError(f"dispatch: station {st.name!r} is not free for a dispatch: this command {closing}")
        chosen = next((j for j in st.queue if j.id == job), None)
        if chosen is None:
            raise ValueError(
                f"dispatch: job {job} does not wait at station {st.name!r} (queue {[j.id for j in st.queue]})"
            )
        return st, chosen

    def _commanded(self, st: Station, setpoints: np.ndarray) -> tuple[Mode, bool]:
        """The mode and maintenance request station `st` will have once `setpoints` apply."""
        mode_at = self._mode_actuator.get(st.index)
        mode = st.mode if mode_at is None or math.isnan(setpoints[mode_at]) else Mode(int(setpoints[mode_at]))
        maintain_at = self._maintain_actuator.get(st.index)
        requested = maintain_at is not None and _requests_maintenance(st, float(setpoints[maintain_at]))
        return mode, st.maintain_requested or requested

    def _new_frame(self, measured: Frame | None = None) -> Frame:
        """A frame of the line now; `measured` lends its readings and KPIs when nothing they show changed."""
        plant = self._live()
        pending: list[Decision] = []
        if plant.agent_dispatch:
            for s in plant.stations:
                if s.open_for_dispatch():
                    pending.append(Decision(_DISPATCH, s.index, tuple([j.id for j in s.queue])))
        if self._tick_open:
            pending.append(Decision(_TICK))
        self._seq += 1
        jobs = Jobs(plant.job_step.copy(), plant.job_status.copy()) if plant.n_static else None
        if measured is None:
            values, stamps = cast(SensorBank, self._sensors).read()
            counters = plant.counters()
            kpis = plant.kpis(counters)
            self._frame = Frame(plant.env.now, self._seq, values, stamps, tuple(pending), kpis, jobs, counters)
            self._measured = self._frame
        else:
            self._frame = dataclasses.replace(measured, seq=self._seq, pending=tuple(pending), jobs=jobs)
        return self._frame


def _job_specs(params: LineParams) -> tuple[JobSpec, ...]:
    names = [v.name for v in params.variants]
    specs = []
    for job in params.demand.jobs:
        variant = names.index(job.variant)
        due = params.due_of(job)
        times = params.variants[variant].processing_time_s
        specs.append(JobSpec(variant, params.route_of(variant), times, job.release_s, due, job.weight))
    return tuple(specs)


def _ticked(params: LineParams) -> bool:
    """Whether the agent owns a setpoint lever, and so needs periodic control ticks."""
    return any(lv is not Lever.DISPATCH for lv in params.control.levers)


def _actuator_specs(params: LineParams) -> tuple[ActuatorSpec, ...]:
    levers = set(params.control.levers)
    specs: list[ActuatorSpec] = []
    for i, st in enumerate(params.stations):
        m = params.machines[st.machine]
        if Lever.SPEED in levers:
            specs.append(
                ActuatorSpec(f"{st.name}.speed", "ratio", m.speed_min_ratio, m.speed_max_ratio, 1.0, Lever.SPEED, i)
            )
        if Lever.MODE in levers:
            specs.append(ActuatorSpec(f"{st.name}.mode", "0 off/1 standby/2 run", 0.0, 2.0, 2.0, Lever.MODE, i))
        if Lever.MAINTENANCE in levers:
            specs.append(ActuatorSpec(f"{st.name}.maintain", "request", 0.0, 1.0, 0.0, Lever.MAINTENANCE, i))
    if Lever.REORDER in levers and params.supply is not None:
        specs.append(
            ActuatorSpec(
                f"{LINE_PREFIX}.reorder_units", "units", 0.0, params.supply.max_order_units, 0.0, Lever.REORDER
            )
        )
    return tuple(specs)


def _requests_maintenance(st: Station, value: float) -> bool:
    """Whether a maintenance actuator at `value` requests it of `st` (NaN keeps: no; a renewal under way: no)."""
    return value >= 0.5 and st.state not in RENEWING_STATES
