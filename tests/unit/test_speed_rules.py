"""Speed and energy rules: a fixed speed and the time-of-use rule's speeds decode to the ratios they name."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401  (registers the ids)
from agents.baselines import make_baseline
from tests.unit.test_baselines import decoded, energy_env, set_reading

# flow5's speed limits: cnc and robot 0.5-1.2, press 0.5-1.15
STATIONS = ("cut", "press", "weld", "paint", "assemble")


def speed_env() -> gym.Env:
    env = gym.make("smartline/Speed-v0")
    env.reset(seed=0)
    return env


def speeds(env: gym.Env, action: np.ndarray) -> dict[str, float]:
    return {k.removesuffix(".speed"): v for k, v in decoded(env, action).items() if k.endswith(".speed")}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, [1.0, 1.0, 1.0, 1.0, 1.0]),
        ({"speed_ratio": 0.8}, [0.8, 0.8, 0.8, 0.8, 0.8]),
        ({"speed_ratio": 1.2}, [1.2, 1.15, 1.2, 1.2, 1.2]),  # the press stops at its limit
        ({"station_speed_ratio": {"press": 1.15}}, [1.0, 1.15, 1.0, 1.0, 1.0]),
        ({"speed_ratio": 0.9, "station_speed_ratio": {"press": 1.1, "cut": 0.6}}, [0.6, 1.1, 0.9, 0.9, 0.9]),
    ],
)
def test_fixed_speed_sets_every_station_to_its_ratio_within_its_limits(params, expected):
    env = speed_env()
    obs = env.observation_space.sample()
    action, _ = make_baseline(env, "fixed_speed", **params).predict(obs)
    assert env.action_space.contains(action)
    got = speeds(env, action)
    assert list(got) == list(STATIONS)
    np.testing.assert_allclose(list(got.values()), expected, rtol=1e-6)


def test_fixed_speed_acts_the_same_on_every_observation():
    env = speed_env()
    rule = make_baseline(env, "fixed_speed", speed_ratio=1.1)
    batch = np.stack([env.observation_space.sample() for _ in range(4)])
    actions, _ = rule.predict(batch)
    assert actions.shape == (4, 5)
    assert (actions == actions[0]).all()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"speed_ratio": 0.0}, r"speed_ratio must be a finite number > 0"),
        ({"speed_ratio": float("nan")}, r"speed_ratio must be a finite number > 0"),
        # below every station's limit: all at 0.5, which a sweep would rank as 0.5 under another name
        (
            {"speed_ratio": 0.3},
            r"speed_ratio: 0\.3 is outside every station's speed limits \(the line's speeds span 0\.5 to 1\.2\)",
        ),
        ({"station_speed_ratio": {"pres": 1.1}}, r"station_speed_ratio: the line has no station 'pres'"),
        ({"station_speed_ratio": {"press": 1.2}}, r"station_speed_ratio\.press: 1\.2 is outside .*\[0\.5, 1\.15\]"),
        (
            {"station_speed_ratio": [1.1]},
            r"station_speed_ratio: must map station names to speed ratios, .* got \[1\.1\]",
        ),
    ],
)
def test_fixed_speed_refuses_bad_ratios_naming_them(params, message):
    with pytest.raises(ValueError, match=message):
        make_baseline(speed_env(), "fixed_speed", **params)


def test_time_of_use_runs_its_cheap_and_dear_speeds_by_price():
    env = energy_env()
    task = env.unwrapped.task
    tou = make_baseline(env, "tou_energy", price_threshold_per_kwh=0.2, speed_ratio=1.1, dear_speed_ratio=0.7)
    obs = np.zeros(env.observation_space.shape, dtype=np.float32)
    set_reading(obs, task, "weld.queue_parts", 2.0)
    for price, speed, standby in [(0.16, 1.1, set()), (0.22, 0.7, {"cut", "press", "paint", "assemble"})]:
        set_reading(obs, task, "line.price_per_kwh", price)
        action, _ = tou.predict(obs)
        assert env.action_space.contains(action)
        np.testing.assert_allclose(list(speeds(env, action).values()), [speed] * 5, rtol=1e-6)
        modes = {k.removesuffix(".mode"): v for k, v in decoded(env, action).items() if k.endswith(".mode")}
        assert modes == {s: 1.0 if s in standby else 2.0 for s in STATIONS}  # 1 standby, 2 run


def test_time_of_use_speed_ratios_are_checked():
    with pytest.raises(ValueError, match=r"dear_speed_ratio must be a finite number > 0"):
        make_baseline(energy_env(), "tou_energy", dear_speed_ratio=-1.0)


@pytest.mark.parametrize(
    ("env_id", "rule", "param"),
    [
        ("smartline/Energy-v0", "tou_energy", "price_threshold_per_kwh"),
        ("smartline/Factory-v0", "factory_rules", "standby_price_per_kwh"),
    ],
)
def test_a_price_threshold_above_what_the_price_sensor_reads_is_refused(env_id, rule, param):
    env = gym.make(env_id)
    with pytest.raises(ValueError, match=rf"{param} \(50 per kWh\) is above the top of what the price sensor reads"):
        make_baseline(env, rule, **{param: 50.0})
    assert make_baseline(env, rule, **{param: 2.0})  # RESULTS' "no standby": above every tariff, within the range
