"""The sensor codec: linear and log scales, the inverse, validity and the spec's checks."""

from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401  (registers the ids)
from envs.encoding import SensorEncoder, rescale
from hardware import Frame, LineSpec, SensorSpec

PRICE = SensorSpec("line.price_per_kwh", "currency/kWh", 0.0, 5.6, log_reference=0.1)
TEMP = SensorSpec("m.bearing_temp_c", "degC", 8.0, 110.0, station=0, dropouts=True)
SPEC = LineSpec("two", ("m",), ("A",), (TEMP, PRICE), (), frozenset(), None)


def encoder() -> SensorEncoder:
    return SensorEncoder(SPEC, lambda s: True)


def frame(temp: float, price: float) -> Frame:
    return Frame(0.0, 0, np.array([temp, price]), np.zeros(2), ())


def test_log_scale_spans_the_range_and_gives_the_small_values_room():
    enc = encoder()
    assert enc.encode(PRICE.name, 0.0) == 0.0
    assert enc.encode(PRICE.name, 5.6) == pytest.approx(1.0)
    prices = np.linspace(0.0, 5.6, 200)
    assert np.all(np.diff(enc.encode(PRICE.name, prices)) > 0)
    # a tariff of 0.10-0.28 takes 16% of the scale where a linear one would give it 3%
    assert enc.encode(PRICE.name, 0.28) - enc.encode(PRICE.name, 0.10) > 0.15


@pytest.mark.parametrize(("name", "values"), [(PRICE.name, [0.0, 0.1, 0.28, 1.4, 5.6]), (TEMP.name, [8, 25, 60, 110])])
def test_decode_inverts_encoding_of_frames(name, values):
    enc = encoder()
    other = {PRICE.name: 0.2, TEMP.name: 30.0}
    rows = []
    for v in values:
        reading = {**other, name: float(v)}
        rows.append(enc(frame(reading[TEMP.name], reading[PRICE.name])))
    obs = np.stack(rows)
    np.testing.assert_allclose(enc.decode(obs, name), values, rtol=0, atol=enc.tolerance(name))


def test_values_beyond_the_range_read_as_its_bounds():
    enc = encoder()
    obs = np.stack([enc(frame(-40.0, 9.0)), enc(frame(500.0, 0.0))])
    np.testing.assert_allclose(enc.decode(obs, PRICE.name), [5.6, 0.0])
    np.testing.assert_allclose(enc.decode(obs, TEMP.name), [8.0, 110.0])


def test_a_dropout_is_a_flag_never_a_nan():
    enc = encoder()
    obs = np.stack([enc(frame(np.nan, 0.2)), enc(frame(50.0, 0.2))])
    assert np.isfinite(obs).all()
    assert enc.valid(obs, TEMP.name).tolist() == [False, True]
    assert enc.valid(obs, PRICE.name).tolist() == [True, True]  # cannot drop out
    assert obs[0, enc.column(TEMP.name)] == 0.0


def test_unknown_sensor_is_named():
    with pytest.raises(ValueError, match=r"does not observe sensor 'm\.vibration_mm_s'"):
        encoder().decode(np.zeros(3), "m.vibration_mm_s")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"low": 1.0, "high": 0.0}, "range high 0.0 is below low 1.0"),
        ({"log_reference": 0.0}, "log_reference must be > 0"),
    ],
)
def test_spec_rejects_bad_ranges_by_sensor_name(kwargs, message):
    fields = {"name": "line.x", "unit": "u", "low": 0.0, "high": 1.0} | kwargs
    with pytest.raises(ValueError, match=rf"sensor 'line\.x': {message}"):
        SensorSpec(**fields)


def test_full_scale_actions_land_exactly_on_the_limits():
    lows = np.round(np.arange(0.01, 1.0, 0.01), 2)  # 0.45: 1 - 1 * (1 - 0.45) is 0.44999999999999996
    high, centre = np.full_like(lows, 1.2), np.ones_like(lows)
    assert (rescale(-np.ones_like(lows), lows, high, centre) == lows).all()
    assert (rescale(np.ones_like(lows), lows, high, centre) == high).all()


def test_a_speed_task_takes_its_lowest_action_on_a_line_of_any_minimum_speed(flow5_definition):
    definition = copy.deepcopy(flow5_definition)
    definition["machines"]["cnc"]["speed_min_ratio"] = 0.45
    env = gym.make("smartline/Speed-v0", line=definition, max_episode_steps=3)
    env.reset(seed=0)
    for _ in range(3):
        env.step(-np.ones(env.action_space.shape, dtype=np.float32))
    assert env.unwrapped.frame.time > 0
