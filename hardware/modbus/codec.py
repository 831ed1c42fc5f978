"""The one codec between engineering values and 16-bit Modbus registers.

Every register value of the Modbus layer goes through `Encoding.encode` and `Encoding.decode`, on
the client and in the virtual PLC alike, so the two ends cannot disagree. The encodings are the
ones any Modbus client knows: 16-, 32- and 64-bit integers and IEEE-754 float32 and float64, bytes
big-endian inside each register (the Modbus rule), the words of a 32- or 64-bit value in a
configurable order. 64-bit values carry what 32 bits cannot: a timestamp in ms since the epoch, a
cumulative meter that must not lose resolution as it grows.
Integers carry scaled values, `value = raw * scale + offset`. A missing value (NaN, a dropout)
travels as NaN in a float32 and as a reserved raw value in an integer: the most negative one for
signed types, the largest one for unsigned types, which no real value may use.
"""

from __future__ import annotations

import enum
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass


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


# struct format and the raw range usable by real values (the reserved missing value excluded)
_FORMATS = {
    RegisterType.INT16: (">h", -(2**15) + 1, 2**15 - 1, -(2**15)),
    RegisterType.UINT16: (">H", 0, 2**16 - 2, 2**16 - 1),
    RegisterType.INT32: (">i", -(2**31) + 1, 2**31 - 1, -(2**31)),
    RegisterType.UINT32: (">I", 0, 2**32 - 2, 2**32 - 1),
    RegisterType.INT64: (">q", -(2**63) + 1, 2**63 - 1, -(2**63)),
    RegisterType.UINT64: (">Q", 0, 2**64 - 2, 2**64 - 1),
}
_FLOATS = {
    RegisterType.FLOAT32: (">f", struct.unpack(">f", b"\x7f\x7f\xff\xff")[0]),
    RegisterType.FLOAT64: (">d", struct.unpack(">d", b"\x7f\xef\xff\xff\xff\xff\xff\xff")[0]),
}


@dataclass(frozen=True)
class Encoding:
    """How one engineering value is stored: type, scale and offset (integers), word order (32-bit).

    Raises:
        ValueError: a scale that is zero or not finite, an offset that is not finite.
    """

    type: RegisterType
    scale: float = 1.0
    offset: float = 0.0
    word_order: WordOrder = WordOrder.BIG

    def __post_init__(self) -> None:
        """Check that the scaling can be inverted."""
        if not (math.isfinite(self.scale) and self.scale != 0):
            raise ValueError(f"scale must be a finite, non-zero number, got {self.scale!r}")
        if not math.isfinite(self.offset):
            raise ValueError(f"offset must be a finite number, got {self.offset!r}")

    @property
    def width(self) -> int:
        """Number of 16-bit registers a value takes."""
        return self.type.width

    def span(self) -> tuple[float, float]:
        """The lowest and highest engineering value this encoding can carry."""
        if self.type.is_float:
            top = _FLOATS[self.type][1]
            return (-top * abs(self.scale) + self.offset, top * abs(self.scale) + self.offset)
        _, low, high, _ = _FORMATS[self.type]
        ends = (low * self.scale + self.offset, high * self.scale + self.offset)
        return min(ends), max(ends)

    def fits(self, low: float, high: float) -> bool:
        """Whether every value in [low, high] can be carried."""
        lo, hi = self.span()
        return lo <= low and high <= hi

    def encode(self, value: float) -> tuple[int, ...]:
        """The registers (each 0-65535) that carry `value`; NaN is carried as missing.

        Raises:
            ValueError: the value is infinite or outside `span()`.
        """
        if math.isnan(value):
            if self.type.is_float:
                return self._words(struct.pack(_FLOATS[self.type][0], math.nan))
            fmt, _, _, missing = _FORMATS[self.type]
            return self._words(struct.pack(fmt, missing))
        lo, hi = self.span()
        if not lo <= value <= hi:
            raise ValueError(f"value {value!r} is outside the {self.type.value} encoding's range [{lo:g}, {hi:g}]")
        raw = (value - self.offset) / self.scale
        if self.type.is_float:
            return self._words(struct.pack(_FLOATS[self.type][0], raw))
        fmt, low, high, _ = _FORMATS[self.type]
        return self._words(struct.pack(fmt, min(max(round(raw), low), high)))

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
        fmt, _, _, missing = _FORMATS[self.type]
        value = struct.unpack(fmt, data)[0]
        return math.nan if value == missing else value * self.scale + self.offset

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
        post: list[tuple[int, bool, float, float, float]] = []
        for i, (enc, start) in sorted(enumerate(entries), key=lambda p: p[1][1]):
            fmt += "x" * (2 * (start - at)) + _CODES[enc.type]
            at = start + enc.width
            missing = math.nan if enc.type.is_float else float(_FORMATS[enc.type][3])
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
