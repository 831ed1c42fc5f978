"""The one codec between engineering values and 16-bit Modbus registers.

Every register value of the Modbus layer goes through `Encoding.encode` and `Encoding.decode`, on
the client and in the virtual PLC alike, so the two ends cannot disagree. The encodings are the
ones any Modbus client knows: 16-, 32- and 64-bit integers and IEEE-754 float32 and float64, bytes
big-endian inside each register (the Modbus rule), the words of a 32- or 64-bit value in a
configurable order. 64-bit values carry what 32 bits cannot: a timestamp in ms since the epoch, a
cumulative meter that must not lose resolution as it grows.
Integers carry scaled values, `value = raw * scale + offset`. A missing value (NaN, a dropout)
travels as NaN in a float32 and as a reserved raw value in an integer: the most negative one for
signed types, the largest one for unsigned types, which no real value may use. A counter
(`wraps=True`: a PLC's heartbeat, a sequence number, a parts meter) has no missing value: it runs
over its type's whole raw range and wraps, as a PLC counter does.
"""

from __future__ import annotations

import enum
import math
import struct
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


class RegisterType(enum.Enum):
    """How a value is laid out in registers."""

    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    FLOAT32 = "float32"
    INT64 = "int64"
    UINT64 = "uint64"
    FLOAT64 = "float64"

    @property
    def width(self) -> int:
        """Number of 16-bit registers a value takes."""
        return _WIDTHS[self]

    @property
    def is_float(self) -> bool:
        """Whether the registers hold an IEEE-754 float (else a scaled integer)."""
        return self in (RegisterType.FLOAT32, RegisterType.FLOAT64)


_WIDTHS = {
    RegisterType.INT16: 1,
    RegisterType.UINT16: 1,
    RegisterType.INT32: 2,
    RegisterType.UINT32: 2,
    RegisterType.FLOAT32: 2,
    RegisterType.INT64: 4,
    RegisterType.UINT64: 4,
    RegisterType.FLOAT64: 4,
}


class WordOrder(enum.Enum):
    """Which word of a 32- or 64-bit value comes first."""

    BIG = "big"  # high word at the lower address (the common PLC default)
    LITTLE = "little"  # low word first (all words reversed)


# Relative rounding of a decoded value: float64 arithmetic for integer registers, the float's own precision.
_EPS = {t: float(np.finfo(np.float32 if t is RegisterType.FLOAT32 else np.float64).eps) * 4 for t in RegisterType}

# struct format and the whole raw range; the reserved missing value is its lowest (signed) or highest end
_FORMATS = {
    RegisterType.INT16: (">h", -(2**15), 2**15 - 1),
    RegisterType.UINT16: (">H", 0, 2**16 - 1),
    RegisterType.INT32: (">i", -(2**31), 2**31 - 1),
    RegisterType.UINT32: (">I", 0, 2**32 - 1),
    RegisterType.INT64: (">q", -(2**63), 2**63 - 1),
    RegisterType.UINT64: (">Q", 0, 2**64 - 1),
}
_FLOATS = {
    RegisterType.FLOAT32: (">f", struct.unpack(">f", b"\x7f\x7f\xff\xff")[0]),
    RegisterType.FLOAT64: (">d", struct.unpack(">d", b"\x7f\xef\xff\xff\xff\xff\xff\xff")[0]),
}


def _missing(kind: RegisterType) -> int:
    """The raw value an integer type reserves for a missing value (counters reserve none)."""
    _, low, high = _FORMATS[kind]
    return low if low < 0 else high


@dataclass(frozen=True)
class Encoding:
    """How one engineering value is stored: type, scale and offset (integers), word order (32-bit).

    `wraps`: a counter (integer types only): every raw value is a real value (there is no missing
    one) and `encode` wraps a value into the type's range modulo `modulus`, as a PLC counter does.

    Raises:
        ValueError: a scale that is zero or not finite, an offset that is not finite, a float that wraps.
    """

    type: RegisterType
    scale: float = 1.0
    offset: float = 0.0
    word_order: WordOrder = WordOrder.BIG
    wraps: bool = False

    def __post_init__(self) -> None:
        """Check that the scaling can be inverted and that only integers wrap."""
        if not (math.isfinite(self.scale) and self.scale != 0):
            raise ValueError(f"scale must be a finite, non-zero number, got {self.scale!r}")
        if not math.isfinite(self.offset):
            raise ValueError(f"offset must be a finite number, got {self.offset!r}")
        if self.wraps and self.type.is_float:
            raise ValueError(f"a {self.type.value} value cannot wrap: only integer counters do")

    @property
    def width(self) -> int:
        """Number of 16-bit registers a value takes."""
        return self.type.width

    @property
    def modulus(self) -> int:
        """Number of raw values of an integer type (2^bits): a counter wraps modulo this many steps.

        Raises:
            ValueError: a float type.
        """
        if self.type.is_float:
            raise ValueError(f"a {self.type.value} value has no modulus")
        return 1 << (16 * self.width)

    def span(self) -> tuple[float, float]:
        """The lowest and highest engineering value this encoding can carry."""
        if self.type.is_float:  # finite however far the scale stretches it: an infinite float reads as missing
            top, most = _FLOATS[self.type][1], sys.float_info.max
            return (max(-top * abs(self.scale) + self.offset, -most), min(top * abs(self.scale) + self.offset, most))
        low, high = self._raw_range()
        ends = (low * self.scale + self.offset, high * self.scale + self.offset)
        return min(ends), max(ends)

    def fits(self, low: float, high: float) -> bool:
        """Whether every value in [low, high] can be carried."""
        lo, hi = self.span()
        return lo <= low and high <= hi

    def resolution(self, value: float) -> float:
        """The engineering step between the register value that carries `value` and the next one."""
        if not self.type.is_float:
            return abs(self.scale)
        raw = (value - self.offset) / self.scale
        ulp = math.ulp(raw) if self.type is RegisterType.FLOAT64 else float(np.spacing(np.float32(raw)))
        return abs(ulp * self.scale)

    def encode(self, value: float, within: tuple[float, float] | None = None) -> tuple[int, ...]:
        """The registers (each 0-65535) that carry `value`; NaN is carried as missing; a counter wraps.

        `within`: (low, high) limits `value` must lie in and keep once decoded: where the nearest
        register value lies past a limit, the next one toward the inside is taken instead.

        Raises:
            ValueError: the value is infinite or outside `span()` or `within`, NaN for a counter, or
                no register value near `value` decodes inside `within`.
        """
        if math.isnan(value):
            if self.wraps:
                raise ValueError(f"a {self.type.value} counter has no missing value: NaN cannot be carried")
            if self.type.is_float:
                return self._words(struct.pack(_FLOATS[self.type][0], math.nan))
            return self._words(struct.pack(_FORMATS[self.type][0], _missing(self.type)))
        if self.wraps:
            if not math.isfinite(value):
                raise ValueError(f"a {self.type.value} counter carries finite values, got {value!r}")
            fmt, first, _ = _FORMATS[self.type]
            count = (round((value - self.offset) / self.scale) - first) % self.modulus + first
            return self._words(struct.pack(fmt, count))
        lo, hi = self.span()
        if not lo <= value <= hi:
            raise ValueError(f"value {value!r} is outside the {self.type.value} encoding's range [{lo:g}, {hi:g}]")
        if within is not None and not within[0] <= value <= within[1]:
            raise ValueError(f"value {value!r} is outside its limits [{within[0]:g}, {within[1]:g}]")
        raw = (value - self.offset) / self.scale
        if self.type.is_float:
            fmt = _FLOATS[self.type][0]
            stored = struct.unpack(fmt, struct.pack(fmt, raw))[0]
            return self._words(struct.pack(fmt, stored if within is None else self._inside(stored, within)))
        fmt, _, _ = _FORMATS[self.type]
        low, high = self._raw_range()
        whole = min(max(round(raw), low), high)
        return self._words(struct.pack(fmt, whole if within is None else int(self._inside(whole, within))))

    def decode(self, registers: Sequence[int]) -> float:
        """The engineering value `registers` carry (NaN for a missing value, or an infinite float).

        Raises:
            ValueError: the wrong number of registers, or a register outside 0-65535.
        """
        if len(registers) != self.width:
            raise ValueError(f"a {self.type.value} value takes {self.width} registers, got {len(registers)}")
        for r in registers:
            if not (isinstance(r, int) and 0 <= r <= 0xFFFF):
                raise ValueError(f"a register holds 0-65535, got {r!r}")
        words = list(registers) if self.word_order is WordOrder.BIG else list(reversed(registers))
        data = b"".join(w.to_bytes(2, "big") for w in words)
        if self.type.is_float:
            raw = struct.unpack(_FLOATS[self.type][0], data)[0]
            return raw * self.scale + self.offset if math.isfinite(raw) else math.nan
        value = struct.unpack(_FORMATS[self.type][0], data)[0]
        if not self.wraps and value == _missing(self.type):
            return math.nan
        return value * self.scale + self.offset

    def _raw_range(self) -> tuple[int, int]:
        """The raw integers real values may take: all of them for a counter, else all but the missing one."""
        _, low, high = _FORMATS[self.type]
        if self.wraps:
            return low, high
        return (low + 1, high) if low < 0 else (low, high - 1)

    def _inside(self, raw: float, within: tuple[float, float]) -> float:
        """`raw`, or the next raw value toward the inside of `within` when `raw` decodes outside it.

        Outside means by more than the arithmetic's own rounding: a raw 70 at scale 0.01 decodes to
        0.7000000000000001, which is the limit 0.7, and a float32 1.2 is the limit 1.2.
        """
        low, high = within
        value = raw * self.scale + self.offset
        slack = _EPS[self.type] * max(abs(value), abs(self.scale), abs(self.offset))
        if low - slack <= value <= high + slack:
            return raw
        up = (value < low) == (self.scale > 0)  # the raw direction that raises the value, if the value is low
        if self.type is RegisterType.FLOAT64:
            raw = math.nextafter(raw, math.inf if up else -math.inf)
        elif self.type is RegisterType.FLOAT32:
            raw = float(np.nextafter(np.float32(raw), np.float32(math.inf if up else -math.inf)))
        else:
            raw += 1 if up else -1
        first, last = (-math.inf, math.inf) if self.type.is_float else self._raw_range()
        if not (first <= raw <= last and low - slack <= raw * self.scale + self.offset <= high + slack):
            raise ValueError(
                f"no {self.type.value} value with scale {self.scale:g} and offset {self.offset:g} lies inside "
                f"[{low:g}, {high:g}] (the nearest is {value:g})"
            )
        return raw

    def _words(self, data: bytes) -> tuple[int, ...]:
        words = tuple(int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2))
        return words if self.word_order is WordOrder.BIG else words[::-1]


_CODES = {
    RegisterType.INT16: "h",
    RegisterType.UINT16: "H",
    RegisterType.INT32: "i",
    RegisterType.UINT32: "I",
    RegisterType.FLOAT32: "f",
    RegisterType.INT64: "q",
    RegisterType.UINT64: "Q",
    RegisterType.FLOAT64: "d",
}


class Layout:
    """Many values laid out in one run of registers, decoded in one `struct` call (the hot path of a frame read).

    Decodes exactly as `Encoding.decode` does each value on its own.

    Args:
        entries: each value's encoding and the offset of its first register in the run; no two overlap.
        count: the run's length in registers.
    """

    def __init__(self, entries: Sequence[tuple[Encoding, int]], count: int) -> None:
        order = list(range(count))  # the run with each little-endian value's words put in big-endian order
        for enc, at in entries:
            if enc.width > 1 and enc.word_order is WordOrder.LITTLE:
                order[at : at + enc.width] = order[at : at + enc.width][::-1]
        self._order = order if order != list(range(count)) else None
        fmt, at = ">", 0
        # the reserved raw integer, compared exactly: float(2**64 - 1) is 2**64, which no uint64 equals
        post: list[tuple[int, bool, int | None, float, float]] = []
        for i, (enc, start) in sorted(enumerate(entries), key=lambda p: p[1][1]):
            fmt += "x" * (2 * (start - at)) + _CODES[enc.type]
            at = start + enc.width
            missing = None if enc.type.is_float or enc.wraps else _missing(enc.type)
            post.append((i, enc.type.is_float, missing, enc.scale, enc.offset))
        self._values = struct.Struct(fmt)
        self._registers = struct.Struct(f">{count}H")
        self._post = post
        self.count = count

    def decode(self, registers: Sequence[int]) -> list[float]:
        """The engineering values, in `entries` order (NaN for a missing value or an infinite float).

        Raises:
            ValueError: the wrong number of registers, or a register outside 0-65535.
        """
        if len(registers) != self.count:
            raise ValueError(f"expected {self.count} registers, got {len(registers)}")
        regs = registers if self._order is None else [registers[i] for i in self._order]
        try:
            raw = self._values.unpack_from(self._registers.pack(*regs))
        except struct.error as exc:
            raise ValueError(f"a register holds 0-65535: {exc}") from exc
        out = [math.nan] * len(self._post)
        for v, (i, is_float, missing, scale, offset) in zip(raw, self._post, strict=True):
            if is_float:
                if math.isfinite(v):
                    out[i] = v * scale + offset
            elif v != missing:
                out[i] = v * scale + offset
        return out
