"""Observations use their range: recorded from episodes of the line's own rules, per task and scenario.

Saturated means clipped: the physical reading lies beyond its sensor's range, so the feature sits
at a bound while the value moves on. A feature at a bound the quantity itself cannot pass (an
empty queue, a full buffer, no order outstanding) is not saturated: the observation is exact.
Coverage is the spread between the 1st and 99th percentile of a feature over the recorded steps,
as a fraction of its [0, 1] scale. At least 10%: a feature squeezed into less than a tenth of its
scale (stock over 50,000 units or hours since maintenance over a year put a whole day's variation
into about 1%) barely moves a network input at standard initialisation, while the percentiles
ignore rare excursions.

The rules are the line's own: action 0 where it is (nominal speed, always run, repair on failure
only), the task's heuristic where action 0 would order nothing (Inventory, Factory). Episodes run
through the env API only, so they hold for cold and warm starts alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401  (registers the smartline envs)
from agents.baselines import make_baseline
from envs.encoding import SensorEncoder
from envs.lines import shipped_scenarios

MAX_SATURATED = 0.01  # fraction of steps a feature may sit clipped at a bound
MIN_COVERAGE = 0.10  # 1st-99th percentile spread, fraction of the feature's scale
SEEDS = (0, 1)
# Task: (heuristic, or None for action 0; steps per episode, at least a day). Two days for the
# stock tasks, so that a reorder is outstanding in every episode even from a cold start.
RULES: dict[str, tuple[str | None, int]] = {
    "Speed": (None, 1440),  # one day at 60 s
    "Energy": (None, 720),  # one day at 120 s
    "Maintenance": (None, 864),  # three days at 300 s
    "Inventory": ("ss_reorder", 1440),  # two days at 120 s
    "Factory": ("factory_rules", 2880),  # two days at 60 s
}
# Categorical codes: checked to stay in range, not for spread.
CATEGORICAL = ("state", "setup_variant")
# The policy's own setpoint read back: under the line's rule it is nominal by definition.
SETPOINT_ECHO = ("speed_ratio",)


@dataclass(frozen=True)
class Record:
    """Observations and the physical readings they were made from, over all seeds' steps."""

    encoder: SensorEncoder
    obs: np.ndarray  # (steps, observation size)
    values: np.ndarray  # (steps, len(encoder.names)), physical, NaN where dropped out
    low: np.ndarray  # range of each observed sensor
    high: np.ndarray


@cache
def record(task: str, scenario: str) -> Record:
    """Run the line's own rules on `task` under `scenario` for every seed and keep every step."""
    rule, steps = RULES[task]
    obs_rows: list[np.ndarray] = []
    value_rows: list[np.ndarray] = []
    for seed in SEEDS:
        env = gym.make(f"smartline/{task}-v0", scenario=scenario, max_episode_steps=steps)
        base = env.unwrapped
        spec = base.line.spec
        encoder: SensorEncoder = base.task.encoder
        columns = [spec.sensor_index(n) for n in encoder.names]
        policy = make_baseline(env, rule) if rule is not None else None
        zero = np.zeros(env.action_space.shape or (), dtype=env.action_space.dtype)
        obs, _ = env.reset(seed=seed)
        done = False
        while not done:
            obs_rows.append(obs)
            value_rows.append(base.frame.values[columns])
            action = zero if policy is None else policy.predict(obs)[0]
            obs, _, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
        env.close()
    sensors = [spec.sensors[i] for i in columns]
    return Record(
        encoder,
        np.array(obs_rows),
        np.array(value_rows),
        np.array([s.low for s in sensors]),
        np.array([s.high for s in sensors]),
    )


def quantity(name: str) -> str:
    """The sensor's quantity without its station (`press.queue_parts` -> `queue_parts`)."""
    return name.split(".", 1)[1]


CASES = [pytest.param(t, s, id=f"{t}-{s}") for t in RULES for s in shipped_scenarios()]


def test_every_shipped_scenario_is_recorded():
    assert {"none", "price_spike", "supplier_outage", "demand_surge", "breakdown_wave"} <= set(shipped_scenarios())


@pytest.mark.parametrize(("task", "scenario"), CASES)
def test_no_feature_sits_saturated(task, scenario):
    r = record(task, scenario)
    v = r.values
    seen = ~np.isnan(v)
    clipped = ((v < r.low) | (v > r.high)) & seen
    share = clipped.sum(axis=0) / np.maximum(seen.sum(axis=0), 1)
    worst = {n: round(float(s), 4) for n, s in zip(r.encoder.names, share, strict=True) if s > MAX_SATURATED}
    assert not worst, f"features clipped at a bound more than {MAX_SATURATED:.0%} of steps: {worst}"


@pytest.mark.parametrize(("task", "scenario"), CASES)
def test_every_feature_varies_over_its_range(task, scenario):
    r = record(task, scenario)
    narrow = {}
    for k, name in enumerate(r.encoder.names):
        if quantity(name) in CATEGORICAL + SETPOINT_ECHO:
            continue
        feature = r.obs[~np.isnan(r.values[:, k]), k]
        p1, p99 = np.percentile(feature, [1, 99])
        if p99 - p1 < MIN_COVERAGE:
            narrow[name] = (round(float(p1), 3), round(float(p99), 3))
    assert not narrow, f"features whose 1st-99th percentiles span under {MIN_COVERAGE:.0%} of the scale: {narrow}"


@pytest.mark.parametrize(("task", "scenario"), CASES)
def test_state_codes_stay_in_range(task, scenario):
    r = record(task, scenario)
    for k, name in enumerate(r.encoder.names):
        if quantity(name) in CATEGORICAL:
            readings = r.values[:, k]
            assert readings.min() >= r.low[k], name
            assert readings.max() <= r.high[k], name
            # every code reads back exactly: categories never blur into their neighbours
            assert np.array_equal(np.rint(r.encoder.decode(r.obs, name)), readings), name


@pytest.mark.parametrize("task", list(RULES))
def test_decode_reads_back_every_unclipped_reading(task):
    r = record(task, "price_spike")
    for k, name in enumerate(r.encoder.names):
        v = r.values[:, k]
        valid = r.encoder.valid(r.obs, name)
        assert np.array_equal(valid, ~np.isnan(v)), name
        inside = valid & (v >= r.low[k]) & (v <= r.high[k])
        decoded = r.encoder.decode(r.obs[inside], name)
        # float32 features: the reading comes back to within the encoder's comparison slack
        np.testing.assert_allclose(decoded, v[inside], rtol=0, atol=r.encoder.tolerance(name), err_msg=name)


@pytest.mark.parametrize("task", list(RULES))
def test_encoding_does_not_change_with_the_scenario(task):
    """A policy trained without a scenario is evaluated under one: same features, same scales."""
    seen = []
    for scenario in shipped_scenarios():
        env = gym.make(f"smartline/{task}-v0", scenario=scenario)
        seen.append((env.unwrapped.line.spec.sensors, env.observation_space))
        env.close()
    assert all(sensors == seen[0][0] and space == seen[0][1] for sensors, space in seen)
