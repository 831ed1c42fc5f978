"""The virtual PLC's program: what it does with the twin, the agent's writes and its own registers.

No sockets, threads or event loop here (`hardware.modbus.plc` runs it behind a Modbus server), and
wall-clock time comes in as an argument, so every rule can be checked on its own:

- Clock: a frame's timestamp is `clock_origin_s` + twin time (origin: UTC midnight of today, so the
  time of day of the timestamp is the twin's); `last_completion_s` is published the same way.
- Scan: heartbeat + 1, watchdog check; mode `free` also runs the twin at `time_factor` x wall-clock
  speed. In mode `lockstep` only a command moves the twin.
- Writes: the whole window in one request (a command block), or the heartbeat register alone; any
  other part of the window is refused (exception 3). A block with a new sequence number is accepted
  only with REMOTE and PERMISSIVE on, no E-stop and no watchdog trip: each setpoint (NaN keeps the
  active one) is clamped to its actuator's range, then rate-limited relative to the active setpoint
  (units per s of line time since it last changed; at power-up it counts as changed one control
  period before) and applied; SP_LIMITED says whether the block needed either. The echo is the
  accepted sequence number. In lockstep any new sequence number, accepted or not, then advances the
  twin by one control period.
- Watchdog (wall clock): armed by the first agent heartbeat, tripped after `watchdog_s` without a
  change, cleared by the next change. A trip, REMOTE off or an E-stop hands the levers to the line's
  own rules and the active setpoints to their defaults; the agent gets the levers back with its next
  accepted command, which starts from those setpoints (bumpless).
- Levers: the operator can take one lever local (its setpoints go to their defaults under the line's
  own rules) and hand it back; `remote_levers` says which are remote now. A setpoint of a lever kept
  local is not taken, and SP_LIMITED says so; the agent gets a lever handed back with its next
  accepted command, like the others after a trip.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from pymodbus.constants import ExcCodes

from hardware.counters import Counters
from hardware.interface import Command, Lever, LineSpec, StationState
from hardware.modbus.image import CommandBlock, CommandImage, InputImage, PlcFrame, PlcStatus
from hardware.modbus.regmap import Block, RegisterMap, StatusBit
from hardware.twin import TwinLine

MODES = ("lockstep", "free")
_DOWN = float(StationState.DOWN)
_TOLERANCE = 1e-6  # relative: float32 carries about 7 digits


def utc_midnight(now_s: float | None = None) -> float:
    """UTC midnight of the day `now_s` (s since the epoch; default: now) falls in, s since the epoch."""
    now = dt.datetime.fromtimestamp(time.time() if now_s is None else now_s, dt.UTC)
    return now.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


def limit_setpoint(
    value: float, active: float, low: float, high: float, rate_per_s: float | None, elapsed_s: float
) -> tuple[float, bool]:
    """Clamp `value` to [low, high], then keep it within `rate_per_s` x `elapsed_s` of `active`.

    Returns:
        The setpoint to apply, and whether clamping or the rate limit changed it.
    """
    out = min(max(value, low), high)
    limited = not math.isclose(out, value, rel_tol=_TOLERANCE, abs_tol=_TOLERANCE)  # a float32 limit is no excess
    if rate_per_s is not None:
        step = rate_per_s * max(elapsed_s, 0.0)
        ramped = min(max(out, active - step), active + step)
        limited = limited or ramped != out
        out = ramped
    return out, limited


@dataclass(frozen=True)
class _View:
    """What the PLC last observed of the twin, in the map's (full spec's) sensor order."""

    time_s: float
    values: np.ndarray
    ages: np.ndarray
    counters: Counters
    alarms: int


class PlcProgram:
    """The PLC's state and rules around one running twin (see the module docstring).

    Args: as `hardware.modbus.plc.VirtualPLC`'s of the same names.

    Raises:
        ValueError: a parameter out of range, a twin with the dispatch lever or without a control
            period, or a twin actuator the map cannot command.
    """

    def __init__(
        self,
        twin: TwinLine,
        rmap: RegisterMap,
        full_spec: LineSpec,
        *,
        mode: str = "lockstep",
        time_factor: float = 1.0,
        watchdog_s: float = 5.0,
        clock_origin_s: float | None = None,
        rate_limits: dict[str, float] | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode: must be one of {', '.join(MODES)}, got {mode!r}")
        for name, value in (("time_factor", time_factor), ("watchdog_s", watchdog_s)):
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name}: must be a positive number, got {value!r}")
        spec = twin.spec
        if Lever.DISPATCH in spec.levers:
            raise ValueError(f"levers: the virtual PLC serves setpoint levers; dispatch on {spec.name!r} stays FIFO")
        period = spec.control_period_s or twin.params.control.control_period_s
        if period is None:
            raise ValueError(f"control_period_s: line {spec.name!r} has none; the virtual PLC needs one")
        self.twin, self.map, self.full_spec = twin, rmap, full_spec
        self.mode, self.time_factor, self.watchdog_s, self.control_period_s = mode, time_factor, watchdog_s, period
        self.clock_origin_s = utc_midnight() if clock_origin_s is None else clock_origin_s
        self.image = InputImage(rmap, full_spec)
        self._command = CommandImage(rmap)
        acts = [a.name for a in spec.actuators]
        unmapped = [a for a in acts if a not in self._command.names]
        if unmapped:
            raise ValueError(f"map: register map {rmap.source} has no command entry for actuators {unmapped}")
        rates = dict(rate_limits or {})
        for name, rate in rates.items():
            if name not in acts or not (math.isfinite(rate) and rate > 0):
                raise ValueError(f"rate_limits.{name}: expected a positive rate of one of {acts}, got {rate!r}")
        by_name = {r.name: r for r in rmap.setpoints}
        self._rates = [rates.get(a, by_name[a].rate_per_s) for a in acts]
        self._command_at = [acts.index(n) if n in acts else -1 for n in self._command.names]
        self._active_at = np.array([acts.index(a.name) if a.name in acts else -1 for a in full_spec.actuators])
        self.sensor_names = tuple(s.name for s in full_spec.sensors)
        twin_sensors = [s.name for s in spec.sensors]
        self._sensor_at = np.array([twin_sensors.index(n) if n in twin_sensors else -1 for n in self.sensor_names])
        self._state_at = [spec.sensor_index(f"{st}.state") for st in spec.stations]
        self._defaults = np.array([a.default for a in spec.actuators])
        self.served = frozenset(spec.levers)  # the levers the PLC can hand to the agent
        self.remote_levers = self.served  # those the operator hands over now
        self._slot_lever = [spec.actuators[j].lever if j >= 0 else None for j in self._command_at]
        self._lever_of = tuple(a.lever for a in spec.actuators)
        self.remote, self.permissive, self.estop = True, True, False
        self.accepted = 0
        self.handovers = 0  # times levers went from the agent to the line's own rules, restarts included
        self._view: _View | None = None
        self._encoded: tuple[frozenset[tuple[str, float]], list[list[int]]] | None = None  # view's registers, faults
        self._wall0 = self._twin0 = 0.0
        self._reset()

    def _reset(self) -> None:
        self.heartbeat = self.frame_seq = self.echo = 0
        self._last_sequence: int | None = None  # any first sequence number is new
        self._agent_heartbeat: int | None = None
        self._heartbeat_seen_s = 0.0
        self.wd_tripped = self.sp_limited = False
        self._owned: frozenset[Lever] = frozenset()  # the levers the agent runs now
        self._active = self._defaults.copy()
        self._changed_s = np.full(len(self._defaults), -self.control_period_s)

    def power_up(self) -> None:
        """(Re)start: heartbeat, frame sequence, echo and last sequence 0, watchdog unarmed, local control.

        The operator's inputs and the twin stay as they are.
        """
        self._take_local()  # a restart takes the levers from the agent, if it held them
        self._reset()
        self.twin.local_control(True)
        self._changed_s += self._twin_time()  # the setpoints count as changed one control period ago

    def start_clock(self, wall_s: float) -> None:
        """Free mode: line time runs from the twin's time now, at wall-clock time `wall_s` (s, monotonic)."""
        self._wall0, self._twin0 = wall_s, self._twin_time()

    @property
    def agent_owns(self) -> bool:
        """Whether the agent runs any lever now (its last accepted command handed it over)."""
        return bool(self._owned)

    @property
    def status(self) -> StatusBit:
        """The status word."""
        bits = StatusBit(0)
        for bit, on in (
            (StatusBit.REMOTE, self.remote),
            (StatusBit.PERMISSIVE, self.permissive),
            (StatusBit.ESTOP, self.estop),
            (StatusBit.WD_TRIPPED, self.wd_tripped),
            (StatusBit.SP_LIMITED, self.sp_limited),
            (StatusBit.ALARM, self._view is not None and self._view.alarms != 0),
        ):
            if on:
                bits |= bit
        return bits

    @property
    def active(self) -> dict[str, float]:
        """The setpoints the line runs now, by the twin's actuator names."""
        return {a.name: float(v) for a, v in zip(self.twin.spec.actuators, self._active.tolist(), strict=True)}

    def run_free(self, wall_s: float) -> None:
        """Free mode: run the twin to the line time that wall-clock time `wall_s` (s, monotonic) stands for."""
        self._advance_to(self._twin0 + (wall_s - self._wall0) * self.time_factor)

    def scan(self, wall_s: float, frozen: bool = False) -> bool:
        """One scan at wall-clock time `wall_s` (s, monotonic): heartbeat (unless `frozen`), watchdog.

        Returns:
            Whether the watchdog tripped now (the twin changed hands: a new frame is due).
        """
        if not frozen:
            self.heartbeat += 1
        return self._check_watchdog(wall_s)

    def registers(self, new: bool, forced: frozenset[tuple[str, float]] = frozenset()) -> list[tuple[Block, list[int]]]:
        """The input registers to publish, per read block.

        Every block of a new frame (`new`: the twin observed afresh), else only the blocks whose
        registers changed (a scan that moves the heartbeat touches one).
        """
        before = None
        if new or self._view is None:
            self.frame_seq += 1
            self._view = self._observe()
            self._encoded = None
        elif self._encoded is not None:
            before = self._encoded[1]
        frame = self._frame(self._view, forced)
        since = self._encoded if self._encoded is not None and self._encoded[0] == forced else None
        registers = self.image.encode(frame, None if since is None else since[1])
        self._encoded = (forced, registers)  # measurements and counters stand until the next view
        return [
            (block, regs)
            for i, (block, regs) in enumerate(zip(self.image.plan, registers, strict=True))
            if before is None or regs != before[i]
        ]

    def write(self, address: int, count: int, values: Sequence[int], wall_s: float) -> tuple[ExcCodes | None, bool]:
        """A write into the command window at wall-clock time `wall_s` (s, monotonic).

        A changed agent heartbeat re-arms a tripped watchdog, but a block that arrives with the trip
        still latched is not acted on: the agent must be seen alive (a heartbeat-only write, or a
        block refused this way) before a command counts again.

        Returns:
            The exception to answer with (None: the write lands), and whether a new frame is due
            (lockstep: the twin moved a control period; a re-armed watchdog hands the levers over).
        """
        window, beat = self._command.window, self._command.header[0]
        block: CommandBlock | None = None
        if address == window.address and count == window.count:
            try:
                block = self._command.decode(values)
            except ValueError:
                return ExcCodes.ILLEGAL_VALUE, False
            heartbeat = float(block.heartbeat)
        elif address == beat.address and count == beat.width:
            heartbeat = beat.encoding.decode(values)  # a counter: every value is one, 65535 included
        else:
            return ExcCodes.ILLEGAL_VALUE, False
        rearmed = False
        if heartbeat != self._agent_heartbeat:
            self._agent_heartbeat = int(heartbeat)
            self._heartbeat_seen_s = wall_s
            rearmed, self.wd_tripped = self.wd_tripped, False
        if block is None or block.sequence == self._last_sequence:
            return None, rearmed
        self._last_sequence = block.sequence
        if self.remote and self.permissive and not self.estop and not (self.wd_tripped or rearmed):  # trip latched
            self._accept(block)
        if self.mode == "lockstep":
            self._advance_to(self._twin_time() + self.control_period_s)
            return None, True
        return None, False  # free: the echo and active setpoints show at once, the readings at the next frame

    def operate(self, remote: bool | None = None, permissive: bool | None = None, estop: bool | None = None) -> None:
        """Set the operator's inputs (None: unchanged); an E-stop halts the stations until released."""
        self.remote = self.remote if remote is None else remote
        self.permissive = self.permissive if permissive is None else permissive
        if estop is not None and estop != self.estop:
            self.estop = estop
            self.twin.halt(estop)
        if not self.remote or self.estop:
            self._take_local()

    def hand_lever(self, lever: Lever, remote: bool) -> None:
        """The operator hands `lever` to remote control (`remote`) or takes it local (to the line's own rules).

        Raises:
            ValueError: a lever this PLC does not serve.
        """
        if lever not in self.served:
            served = sorted(lv.value for lv in self.served)
            raise ValueError(f"lever {lever.value!r}: this PLC serves levers {served}")
        self.remote_levers = self.remote_levers | {lever} if remote else self.remote_levers - {lever}
        if not remote:
            self._take_local(frozenset({lever}))

    def _accept(self, block: CommandBlock) -> None:
        now = self._twin_time()
        setpoints = np.full(len(self._active), math.nan)
        limited = False
        for j, lever, value in zip(self._command_at, self._slot_lever, block.setpoints.tolist(), strict=True):
            if math.isnan(value):
                continue
            if lever not in self.remote_levers:  # a lever the PLC keeps local (None: not on the twin): not taken
                limited = True
                continue
            a = self.twin.spec.actuators[j]
            elapsed = min(now - self._changed_s[j], self.control_period_s)  # no credit for time spent idle
            out, hit = limit_setpoint(value, self._active[j], a.low, a.high, self._rates[j], elapsed)
            if a.lever is Lever.MODE:  # a mode is a whole number
                hit = hit or out != math.floor(out + 0.5)
                out = float(math.floor(out + 0.5))
            setpoints[j] = out
            limited = limited or hit
        handed = self.remote_levers - self._owned
        if handed:
            self.twin.local_control(False, handed)
            self._owned = self.remote_levers
        self.twin.write(Command(setpoints=setpoints))
        given = ~np.isnan(setpoints)
        self._changed_s[given & (setpoints != self._active)] = now
        self._active = np.where(given, setpoints, self._active)
        self.sp_limited = limited
        self.echo = block.sequence
        self.accepted += 1

    def _check_watchdog(self, wall_s: float) -> bool:
        """Trip the watchdog if the agent's heartbeat stood still too long; whether it tripped now."""
        if self._agent_heartbeat is None or self.wd_tripped or wall_s - self._heartbeat_seen_s < self.watchdog_s:
            return False
        self.wd_tripped = True
        self._take_local()
        return True

    def _take_local(self, levers: frozenset[Lever] | None = None) -> None:
        """Hand the agent's levers (those of `levers` it runs) to the line's own rules, their setpoints to defaults."""
        taken = self._owned if levers is None else self._owned & levers
        if not taken:
            return
        self.twin.local_control(True, taken)
        back = np.array([lv in taken for lv in self._lever_of]) & (self._active != self._defaults)
        self._changed_s[back] = self._twin_time()
        self._active = np.where(back, self._defaults, self._active)
        self._owned -= taken
        self.handovers += 1

    def _observe(self) -> _View:
        frame = self.twin.read()
        have = self._sensor_at >= 0
        values = np.full(len(self._sensor_at), math.nan)
        ages = np.full(len(self._sensor_at), math.nan)
        values[have] = frame.values[self._sensor_at[have]]
        ages[have] = frame.time - frame.stamps[self._sensor_at[have]]
        alarms = sum(1 << i for i, k in enumerate(self._state_at) if frame.values[k] == _DOWN)
        counters = self.twin.counters()
        counters = replace(counters, last_completion_s=self.clock_origin_s + counters.last_completion_s)
        return _View(frame.time, values, ages, counters, alarms)

    def _frame(self, view: _View, forced: frozenset[tuple[str, float]]) -> PlcFrame:
        status = PlcStatus(
            heartbeat=self.heartbeat,
            frame_seq=self.frame_seq,
            timestamp_s=self.clock_origin_s + view.time_s,
            status=self.status,
            alarms=view.alarms,
            remote_levers=self.remote_levers,
            command_echo=self.echo,
            control_period_s=self.control_period_s,
        )
        values = view.values.copy()
        for name, value in forced:
            values[self.sensor_names.index(name)] = value
        have = self._active_at >= 0
        active = np.full(len(self._active_at), math.nan)
        active[have] = self._active[self._active_at[have]]
        return PlcFrame(status, values, view.ages, active, view.counters, self.frame_seq)

    def _advance_to(self, target_s: float) -> None:
        """Run the twin to line time `target_s` (it stops at every control tick on the way)."""
        t = self._twin_time()
        while t < target_s:
            t = self.twin.advance(target_s - t).time

    def _twin_time(self) -> float:
        return self.twin.read().time
