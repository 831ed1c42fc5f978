"""Checking a register map against its line: where each entry may be, how it is encoded, what it must reach.

`validate(rmap, spec)` refuses overlapping registers, an unmapped sensor, status entry or counter, a
sensor or setpoint range other than the line's, a command outside the contiguous window, a range its
encoding cannot carry (the timestamps too: s since the epoch), protocol registers both ends cannot
agree on, and a setpoint register that cannot reach its lever's limits at a usable resolution
(`MAX_SETPOINT_STEP`). Each error names the map's source and the entry.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

from hardware.interface import ActuatorSpec, Lever, LineSpec
from hardware.modbus.codec import RegisterType
from hardware.modbus.regmap import (
    COMMAND_HEADER,
    MAX_WRITE,
    STATUS_NAMES,
    TIME_EPS_S,
    MapError,
    Register,
    RegisterMap,
    Role,
    Table,
    counter_names,
    is_wrapping,
)

MAX_SETPOINT_STEP = 0.01
"""Default of `max_setpoint_step`: the coarsest register step a continuous setpoint (speed, reorder
quantity) may have, as a fraction of its lever's range (0.01: at least 100 steps between the
limits). A coarser map is refused rather than let a setpoint round to a value the agent did not ask
for; configurable per map load (`hardware.max_setpoint_step`)."""

DISCRETE_LEVERS = frozenset({Lever.MODE, Lever.MAINTENANCE})
"""Levers whose setpoints are whole numbers (a mode, a maintenance request): their register must carry
every whole number between the limits exactly, whatever `max_setpoint_step` says."""


def validate(rmap: RegisterMap, spec: LineSpec, max_setpoint_step: float = MAX_SETPOINT_STEP) -> RegisterMap:
    """Check a map against its line: every entry where it may be, nothing overlapping, nothing unmapped.

    `max_setpoint_step`: the coarsest register step of a continuous setpoint, a fraction of its
    lever's range (see `MAX_SETPOINT_STEP`).

    Raises:
        MapError: the first problem found, naming the map's source and the entry.
        ValueError: `max_setpoint_step` is not a positive number.
    """
    if not (math.isfinite(max_setpoint_step) and max_setpoint_step > 0):
        raise ValueError(f"max_setpoint_step: must be a positive fraction of a range, got {max_setpoint_step!r}")
    src = rmap.source
    seen: dict[tuple[Role, str], int] = {}
    for i, r in enumerate(rmap.registers):
        where = f"register map {src}: entry {i} ({r.name!r}, {r.role.value})"
        if r.key in seen:
            raise MapError(f"{where}: duplicates entry {seen[r.key]}")
        seen[r.key] = i
        _check_entry(r, where, spec)
        if r.role is Role.COMMAND and r.name not in COMMAND_HEADER:
            _check_setpoint(r, spec.actuators[spec.actuator_index(r.name)], where, max_setpoint_step)
    _check_overlaps(rmap)
    _check_complete(rmap, spec)
    _check_window(rmap)
    _check_protocol(rmap, spec)
    return rmap


_WRAPPING = ("heartbeat", "command_echo")  # counters both ends wrap alike: uint16, 0-65535
_WORDS = ("status", "remote_levers", "alarms", "frame_seq", "frame_seq_end")  # plain unsigned integers
_EPOCH = ((Role.STATUS, "timestamp"), (Role.COUNTER, "last_completion_s"))  # entries the PLC fills with epoch s
_EPOCH_S = (0.0, 4_102_444_800.0)  # what those must carry: s since the Unix epoch from 1970 to 2100-01-01 UTC


def _check_protocol(rmap: RegisterMap, spec: LineSpec) -> None:
    """The entries the protocol itself reads: types both ends agree on, where a frame read checks them."""
    src = rmap.source

    def need(ok: bool, r: Register, what: str) -> None:
        if not ok:
            raise MapError(
                f"register map {src}: {r.role.value} entry {r.name!r} at {r.table.value} {r.address}: {what}"
            )

    def plain(r: Register, *types: RegisterType) -> bool:
        return r.encoding.type in types and r.encoding.scale == 1.0 and r.encoding.offset == 0.0

    for name in _WRAPPING:
        need(plain(rmap.entry(Role.STATUS, name), RegisterType.UINT16), rmap.entry(Role.STATUS, name),
             "must be uint16 with scale 1 (it wraps at 65535 at both ends)")  # fmt: skip
    for name in COMMAND_HEADER:
        r = rmap.entry(Role.COMMAND, name)
        need(plain(r, RegisterType.UINT16), r, "must be uint16 with scale 1 (it wraps at 65535 at both ends)")
    unsigned = (RegisterType.UINT16, RegisterType.UINT32, RegisterType.UINT64)
    for name in _WORDS:
        r = rmap.entry(Role.STATUS, name)
        need(plain(r, *unsigned), r, "must be an unsigned integer with scale 1")
    seq, seq_end = rmap.entry(Role.STATUS, "frame_seq"), rmap.entry(Role.STATUS, "frame_seq_end")
    same = seq_end.encoding.type is seq.encoding.type
    need(same, seq_end, f"must be {seq.encoding.type.value} as frame_seq is (else they wrap apart: every read torn)")
    stamp = rmap.entry(Role.STATUS, "timestamp")
    need(stamp.width == 4, stamp, "must be a 64-bit type: ms since the epoch do not fit in 32 bits")
    for role, name in _EPOCH:
        r = rmap.entry(role, name)
        enc = r.encoding
        lo, hi = enc.span()
        need(
            enc.fits(*_EPOCH_S),
            r,
            f"must carry s since the epoch up to 2100 ({_EPOCH_S[0]:g}-{_EPOCH_S[1]:g} s); {enc.type.value} with "
            f"scale {enc.scale:g} and offset {enc.offset:g} carries [{lo:g}, {hi:g}]",
        )
    period = spec.control_period_s
    if period is not None:
        r = rmap.entry(Role.STATUS, "control_period")
        enc = r.encoding
        try:
            back = enc.decode(enc.encode(period))
            carries = f"carries it as {back:g} s"
        except ValueError:
            back, carries = math.nan, "carries [{:g}, {:g}]".format(*enc.span())
        need(
            abs(back - period) <= TIME_EPS_S,  # as `ModbusLine` checks the period it reads
            r,
            f"must carry the line's control period of {period:g} s; {enc.type.value} with scale {enc.scale:g} and "
            f"offset {enc.offset:g} {carries}",
        )
    alarms = rmap.entry(Role.STATUS, "alarms")
    bits = 16 * alarms.width - 1  # all bits set is the missing value
    need(len(spec.stations) <= bits, alarms, f"{bits} bits cannot flag {len(spec.stations)} stations")
    plan = rmap.read_plan()
    for name in STATUS_NAMES:
        r = rmap.entry(Role.STATUS, name)
        block = plan[-1] if name == "frame_seq_end" else plan[0]
        where = "last" if name == "frame_seq_end" else "first"
        inside = (r.device_id, r.table) == (block.device_id, block.table) and (
            block.address <= r.address < block.address + block.count
        )
        span = f"input {block.address}-{block.address + block.count - 1}"
        need(inside, r, f"must lie in the {where} read request ({span}), so that a frame read whole can be told")


def _check_entry(r: Register, where: str, spec: LineSpec) -> None:
    if r.address < 0 or r.end > 0x10000:
        raise MapError(f"{where}: address {r.address} (+{r.width} registers) is outside 0-65535")
    if not 0 <= r.device_id <= 255:
        raise MapError(f"{where}: device_id {r.device_id} is outside 0-255")
    wanted = Table.HOLDING if r.role is Role.COMMAND else Table.INPUT
    if r.table is not wanted:
        raise MapError(f"{where}: a {r.role.value} entry belongs in {wanted.value} registers, not {r.table.value}")
    if r.rate_per_s is not None and not (r.role is Role.COMMAND and r.rate_per_s > 0):
        raise MapError(f"{where}: rate_per_s is a positive rate of a setpoint, got {r.rate_per_s}")
    wraps = is_wrapping(r.role, r.name) and not r.encoding.type.is_float
    if r.encoding.wraps != wraps:
        raise MapError(
            f"{where}: its {r.encoding.type.value} encoding {'must' if wraps else 'must not'} wrap: "
            f"{'a counter runs over the whole range' if wraps else 'only counters wrap'}"
        )
    if wraps and r.role is Role.COUNTER and r.encoding.scale < 0:
        raise MapError(
            f"{where}: a {r.encoding.type.value} counter needs a positive scale (a wrap must read as a step "
            f"down), got {r.encoding.scale:g}"
        )
    low, high = _spec_range(r, where, spec)
    if r.role is Role.COMMAND and r.name not in COMMAND_HEADER and (r.low, r.high) != (low, high):
        raise MapError(
            f"{where}: range [{r.low:g}, {r.high:g}] is not the limits [{low:g}, {high:g}] of actuator {r.name!r}; "
            "a setpoint entry carries its actuator's limits (leave low and high out to take them)"
        )
    if r.role in (Role.SENSOR, Role.ACTIVE) and any(
        math.isfinite(given) and given != limit for given, limit in ((r.low, low), (r.high, high))
    ):
        owner = "sensor" if r.role is Role.SENSOR else "actuator"
        raise MapError(
            f"{where}: range [{r.low:g}, {r.high:g}] is not the range [{low:g}, {high:g}] of {owner} {r.name!r}; "
            "the tag table would document it (leave low and high out, or give the line's)"
        )
    finite = [v for v in (low, high) if math.isfinite(v)]
    if finite and not r.encoding.fits(min(finite), max(finite)):
        lo, hi = r.encoding.span()
        raise MapError(
            f"{where}: range [{low:g}, {high:g}] {r.unit} cannot fit {r.encoding.type.value} with scale "
            f"{r.encoding.scale:g} and offset {r.encoding.offset:g}, which carries [{lo:g}, {hi:g}]"
        )


def _check_setpoint(r: Register, a: ActuatorSpec, where: str, max_step: float) -> None:
    """A setpoint register reaches its lever's limits, never past them, at a usable resolution."""
    enc = r.encoding
    what = f"{enc.type.value} with scale {enc.scale:g} and offset {enc.offset:g}"
    try:
        ends = [enc.decode(enc.encode(v, within=(a.low, a.high))) for v in (a.low, a.high)]
    except ValueError as exc:
        raise MapError(f"{where}: {what} cannot carry the limits of actuator {a.name!r}: {exc}") from exc
    if a.lever in DISCRETE_LEVERS:
        for k in range(math.ceil(a.low), math.floor(a.high) + 1):
            if enc.decode(enc.encode(float(k))) != k:
                raise MapError(
                    f"{where}: a {a.lever.value} setpoint takes the whole numbers {a.low:g}-{a.high:g}; {what} "
                    f"(resolution {enc.resolution(k):g} {a.unit}) writes {k} as {enc.decode(enc.encode(float(k))):g}"
                )
        return
    step = max(enc.resolution(a.low), enc.resolution(a.high))
    allowed = max_step * (a.high - a.low)
    if step > allowed:
        raise MapError(
            f"{where}: {what} has a resolution of {step:g} {a.unit}, coarser than max_setpoint_step {max_step:g} of "
            f"the range [{a.low:g}, {a.high:g}] of actuator {a.name!r} ({allowed:g} {a.unit}); its limits would be "
            f"written as [{ends[0]:g}, {ends[1]:g}]"
        )


def _spec_range(r: Register, where: str, spec: LineSpec) -> tuple[float, float]:
    """The range an entry must carry: its sensor's or actuator's from the spec, else the entry's own."""
    if r.role is Role.SENSOR:
        try:
            s = spec.sensors[spec.sensor_index(r.name)]
        except KeyError:
            raise MapError(f"{where}: line {spec.name!r} has no sensor {r.name!r}") from None
        return s.low, s.high
    if r.role is Role.AGE and r.name not in {s.name for s in spec.sensors}:
        raise MapError(f"{where}: line {spec.name!r} has no sensor {r.name!r}")
    if r.role in (Role.ACTIVE, Role.COMMAND) and r.name not in COMMAND_HEADER:
        try:
            a = spec.actuators[spec.actuator_index(r.name)]
        except KeyError:
            raise MapError(f"{where}: line {spec.name!r} has no actuator {r.name!r}") from None
        return a.low, a.high
    if r.role is Role.STATUS and r.name not in STATUS_NAMES:
        raise MapError(f"{where}: not a status entry; status entries are {', '.join(STATUS_NAMES)}")
    if r.role is Role.COUNTER and r.name not in counter_names():
        raise MapError(f"{where}: not a counter; counters are {', '.join(counter_names())}")
    return r.low, r.high


def _check_overlaps(rmap: RegisterMap) -> None:
    ordered = sorted(enumerate(rmap.registers), key=lambda p: (p[1].device_id, p[1].table.value, p[1].address))
    for (i, a), (j, b) in itertools.pairwise(ordered):
        if (a.device_id, a.table) == (b.device_id, b.table) and b.address < a.end:
            raise MapError(
                f"register map {rmap.source}: entry {j} ({b.name!r}, {b.role.value}) at {b.table.value} {b.address} "
                f"overlaps entry {i} ({a.name!r}, {a.role.value}) at {a.address}-{a.end - 1}"
            )


def _check_complete(rmap: RegisterMap, spec: LineSpec) -> None:
    need: list[tuple[Role, Sequence[str]]] = [
        (Role.STATUS, STATUS_NAMES),
        (Role.SENSOR, [s.name for s in spec.sensors]),
        (Role.COUNTER, counter_names()),
        (Role.COMMAND, COMMAND_HEADER),
    ]
    for role, names in need:
        for name in names:
            if rmap.get(role, name) is None:
                raise MapError(f"register map {rmap.source}: {role.value} {name!r} is unmapped")


def _check_window(rmap: RegisterMap) -> None:
    cmd = sorted(rmap.of(Role.COMMAND), key=lambda r: r.address)
    if len({r.device_id for r in cmd}) > 1:
        raise MapError(f"register map {rmap.source}: the command window spans device ids; it must be one block")
    for i, r in enumerate(cmd[:2]):
        if r.name != COMMAND_HEADER[i]:
            raise MapError(
                f"register map {rmap.source}: entry {r.name!r} at holding {r.address}: the command window starts "
                f"with {COMMAND_HEADER[0]!r} then {COMMAND_HEADER[1]!r}"
            )
    start = cmd[0].address
    end = start + sum(r.width for r in cmd)  # entries do not overlap, so inside this span they are contiguous
    for r in cmd:
        if r.end > end:
            raise MapError(
                f"register map {rmap.source}: command entry {r.name!r} at holding {r.address} is outside the "
                f"command window (holding {start}-{end - 1}, one contiguous block from {COMMAND_HEADER[0]!r})"
            )
    window = rmap.command_window
    if window.count > MAX_WRITE:
        raise MapError(
            f"register map {rmap.source}: the command window takes {window.count} registers; one FC16 write "
            f"carries at most {MAX_WRITE}"
        )
