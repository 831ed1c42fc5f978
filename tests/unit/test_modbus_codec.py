"""The register codec: the images any Modbus client reads, exact round trips, missing values, counters, limits."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hardware.modbus import Encoding, RegisterType, WordOrder
from hardware.modbus.codec import Layout

ORDERS = list(WordOrder)


@pytest.mark.parametrize(
    ("encoding", "value", "image"),
    [
        (Encoding(RegisterType.INT16), -2.0, (0xFFFE,)),
        (Encoding(RegisterType.UINT16), 513.0, (0x0201,)),
        (Encoding(RegisterType.INT32), float(0x12345678), (0x1234, 0x5678)),
        (Encoding(RegisterType.INT32, word_order=WordOrder.LITTLE), float(0x12345678), (0x5678, 0x1234)),
        (Encoding(RegisterType.UINT32), 65536.0, (0x0001, 0x0000)),
        (Encoding(RegisterType.FLOAT32), 1.0, (0x3F80, 0x0000)),
        (Encoding(RegisterType.FLOAT32, word_order=WordOrder.LITTLE), -2.5, (0x0000, 0xC020)),
        (Encoding(RegisterType.INT16, scale=0.1, offset=-20.0), 25.3, (453,)),  # (25.3 + 20) / 0.1
        (Encoding(RegisterType.UINT64), float(0x0001_0002_0003_0004), (1, 2, 3, 4)),
        (Encoding(RegisterType.UINT64, word_order=WordOrder.LITTLE), float(0x0001_0002_0003_0004), (4, 3, 2, 1)),
        (Encoding(RegisterType.INT64), -1.0, (0xFFFF,) * 4),
        (Encoding(RegisterType.FLOAT64), 1.0, (0x3FF0, 0, 0, 0)),
        (Encoding(RegisterType.FLOAT64, word_order=WordOrder.LITTLE), -2.0, (0, 0, 0, 0xC000)),
        (Encoding(RegisterType.UINT64, scale=0.001), 1_764_547_200.123, (0, 0x019A, 0xD735, 0x847B)),  # ms since epoch
    ],
)
def test_values_take_the_standard_register_images(encoding, value, image):
    assert encoding.encode(value) == image
    assert encoding.decode(image) == pytest.approx(value, rel=1e-15, abs=1e-9)


@pytest.mark.parametrize("order", ORDERS)
@given(value=st.floats(min_value=-1e30, max_value=1e30, allow_nan=False))
def test_float32_round_trips_to_float32_precision(order, value):
    enc = Encoding(RegisterType.FLOAT32, word_order=order)
    assert enc.decode(enc.encode(value)) == struct.unpack(">f", struct.pack(">f", value))[0]


@pytest.mark.parametrize("order", ORDERS)
@given(value=st.floats(allow_nan=False, allow_infinity=False))
def test_float64_round_trips_exactly(order, value):
    enc = Encoding(RegisterType.FLOAT64, word_order=order)
    assert enc.decode(enc.encode(value)) == value


@pytest.mark.parametrize("kind", [t for t in RegisterType if not t.is_float])
@pytest.mark.parametrize("order", ORDERS)
@given(
    fraction=st.floats(min_value=0.0, max_value=1.0),
    scale=st.sampled_from([1.0, 0.01, 0.5, -0.25, 10.0]),
    offset=st.sampled_from([0.0, -40.0, 273.15]),
)
def test_scaled_integers_round_trip_within_half_a_step(kind, order, fraction, scale, offset):
    enc = Encoding(kind, scale=scale, offset=offset, word_order=order)
    low, high = enc.span()
    value = min(max(low + fraction * (high - low), low), high)  # 64-bit spans exceed float64 precision
    registers = enc.encode(value)
    assert len(registers) == kind.width
    assert all(0 <= r <= 0xFFFF for r in registers)
    assert abs(enc.decode(registers) - value) <= abs(scale) / 2 + 1e-9 * max(1.0, abs(value))


@pytest.mark.parametrize("kind", list(RegisterType))
def test_a_missing_value_travels_as_missing(kind):
    enc = Encoding(kind)
    assert math.isnan(enc.decode(enc.encode(math.nan)))


def test_the_missing_integer_is_reserved_so_no_real_value_reads_as_missing():
    int16, uint16 = Encoding(RegisterType.INT16), Encoding(RegisterType.UINT16)
    assert int16.span() == (-32767.0, 32767.0)
    assert uint16.span() == (0.0, 65534.0)
    assert math.isnan(int16.decode((0x8000,)))
    assert math.isnan(uint16.decode((0xFFFF,)))


def test_values_outside_the_range_are_refused_naming_the_range():
    enc = Encoding(RegisterType.UINT16, scale=0.01)
    assert enc.fits(0.0, 655.0)
    assert not enc.fits(0.0, 700.0)
    with pytest.raises(ValueError, match=r"value 700\.0 is outside the uint16 encoding's range \[0, 655\.34\]"):
        enc.encode(700.0)
    with pytest.raises(ValueError, match="outside"):
        enc.encode(math.inf)


@pytest.mark.parametrize(
    "enc", [Encoding(RegisterType.FLOAT64, scale=2.0), Encoding(RegisterType.FLOAT32, scale=1e300)]
)
def test_an_infinite_value_is_refused_by_a_float_scaled_past_its_range(enc):
    # the span of a float64 scaled by 2 overflows to infinity, yet an infinite float reads back as missing
    for value in (math.inf, -math.inf):
        assert not enc.fits(value, value)
        with pytest.raises(ValueError, match="outside"):
            enc.encode(value)


def test_bad_registers_and_scalings_are_refused():
    enc = Encoding(RegisterType.FLOAT32)
    with pytest.raises(ValueError, match="takes 2 registers, got 1"):
        enc.decode((0,))
    with pytest.raises(ValueError, match="0-65535"):
        enc.decode((0, 70000))
    with pytest.raises(ValueError, match="scale must be a finite, non-zero number"):
        Encoding(RegisterType.INT16, scale=0.0)


@given(
    kinds=st.lists(
        st.tuples(st.sampled_from(list(RegisterType)), st.sampled_from(ORDERS), st.integers(0, 3)),
        min_size=1,
        max_size=12,
    ),
    data=st.data(),
)
def test_a_layout_decodes_a_run_exactly_as_each_encoding_does(kinds, data):
    entries, at = [], 0
    for kind, order, gap in kinds:
        at += gap
        entries.append((Encoding(kind, scale=0.5, offset=1.0, word_order=order), at))
        at += kind.width
    registers = data.draw(st.lists(st.integers(0, 0xFFFF), min_size=at, max_size=at))
    expected = [enc.decode(registers[a : a + enc.width]) for enc, a in entries]
    got = Layout(list(reversed(entries)), at).decode(registers)  # any order of entries
    assert [math.isnan(x) for x in got] == [math.isnan(x) for x in reversed(expected)]
    assert [x for x in got if not math.isnan(x)] == [x for x in reversed(expected) if not math.isnan(x)]


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("kind", list(RegisterType))
def test_a_layout_decodes_a_missing_value_and_the_range_ends_as_the_encoding_does(kind, order):
    """The edges random registers seldom hit: uint64's missing all-ones is 2**64 once made a float."""
    enc = Encoding(kind, scale=0.001, word_order=order)
    images = [enc.encode(math.nan), *(enc.encode(end) for end in enc.span())]
    if kind.is_float:  # an infinite float is missing too
        words = struct.unpack(f">{kind.width}H", struct.pack(">f" if kind.width == 2 else ">d", math.inf))
        images.append(words if order is WordOrder.BIG else words[::-1])
    layout = Layout([(enc, kind.width * i) for i in range(len(images))], kind.width * len(images))
    got = layout.decode([r for image in images for r in image])
    expected = [enc.decode(image) for image in images]
    assert math.isnan(got[0])
    assert [math.isnan(x) for x in got] == [math.isnan(x) for x in expected]
    assert [x for x in got if not math.isnan(x)] == [x for x in expected if not math.isnan(x)]


@pytest.mark.parametrize("kind", [t for t in RegisterType if not t.is_float and t.width <= 2])  # exact in a float
def test_a_counter_has_no_missing_value_and_wraps_over_its_whole_range(kind):
    """A PLC counter's top value is a count like any other; one step past it is the bottom."""
    counter, plain = Encoding(kind, wraps=True), Encoding(kind)
    low, high = counter.span()
    assert high - low == counter.modulus - 1
    for value in (low, high):
        assert counter.decode(counter.encode(value)) == value
    top = plain.encode(math.nan)  # what a measurement of this type reserves for missing
    assert not math.isnan(counter.decode(top))
    assert counter.encode(high + 1) == counter.encode(low)
    assert counter.encode(low - 1) == counter.encode(high)
    assert Layout([(counter, 0)], kind.width).decode(list(top)) == [counter.decode(top)]
    with pytest.raises(ValueError, match="has no missing value"):
        counter.encode(math.nan)


def test_the_protocol_counters_read_65535_and_wrap_to_0():
    uint16 = Encoding(RegisterType.UINT16, wraps=True)
    assert uint16.decode((0xFFFF,)) == 65535.0
    assert [uint16.encode(v) for v in (65535.0, 65536.0, 65537.0)] == [(0xFFFF,), (0,), (1,)]
    assert Encoding(RegisterType.UINT32, wraps=True).decode((0xFFFF, 0xFFFF)) == 0xFFFFFFFF
    assert Encoding(RegisterType.UINT64, wraps=True).decode((0xFFFF,) * 4) == float(2**64 - 1)
    with pytest.raises(ValueError, match="cannot wrap"):
        Encoding(RegisterType.FLOAT32, wraps=True)


@pytest.mark.parametrize(
    ("encoding", "value", "written"),
    [
        (Encoding(RegisterType.UINT16, scale=0.2), 0.5, 0.6),  # nearest: 0.4
        (Encoding(RegisterType.UINT16, scale=0.2), 1.5, 1.4),  # nearest: 1.6
        (Encoding(RegisterType.INT16, scale=-0.2), 0.5, 0.6),  # a negative scale steps the other way
        (Encoding(RegisterType.UINT16, scale=0.2), 1.0, 1.0),  # on the grid: as it is
        (Encoding(RegisterType.FLOAT32), 1.2, float(np.float32(1.2))),  # the limit, to float32's precision
        (Encoding(RegisterType.FLOAT32), 0.5, 0.5),
    ],
)
def test_a_value_within_limits_is_written_inside_them(encoding, value, written):
    """Rounding to the register's grid never carries a setpoint past its limits (0.5-1.5, 0.5-1.2 for float32)."""
    limits = (0.5, 1.2) if encoding.type.is_float else (0.5, 1.5)
    out = encoding.decode(encoding.encode(value, within=limits))
    assert out == pytest.approx(written, rel=1e-12)
    assert limits[0] <= out <= limits[1] * (1 + 1e-7)  # float32's 1.2 is 1.2000000477


@pytest.mark.parametrize(("scale", "limits"), [(0.01, (0.3, 0.7)), (0.001, (0.7, 1.3)), (0.01, (0.35, 0.82))])
def test_a_setpoint_at_its_limit_is_written_at_it_not_a_step_inside(scale, limits):
    enc = Encoding(RegisterType.UINT16, scale=scale)
    for limit in limits:  # 70 * 0.01 is 0.7000000000000001: the limit, not past it
        assert enc.encode(limit, within=limits) == enc.encode(limit)


def test_limits_no_register_value_lies_inside_are_refused():
    enc = Encoding(RegisterType.INT32)
    with pytest.raises(ValueError, match=r"no int32 value with scale 1 and offset 0 lies inside \[0\.55, 0\.65\]"):
        enc.encode(0.6, within=(0.55, 0.65))
    with pytest.raises(ValueError, match=r"value 2\.0 is outside its limits \[0\.5, 1\.5\]"):
        enc.encode(2.0, within=(0.5, 1.5))


def test_resolution_is_the_step_between_neighbouring_register_values():
    assert Encoding(RegisterType.INT16, scale=-0.25).resolution(3.0) == 0.25
    assert Encoding(RegisterType.FLOAT32).resolution(1.0) == float(np.spacing(np.float32(1.0)))
    assert Encoding(RegisterType.FLOAT64, scale=2.0).resolution(4.0) == 2.0 * math.ulp(2.0)
