"""Episodes start on a line as it runs; KPIs count from the episode's start; wear is counted and priced."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import yaml

import envs  # noqa: F401  (registers the ids)
from agents.rollout import episode_kpis
from configs import config_file
from hardware import Command
from hardware.twin import TwinLine

HOUR = 3600.0
COUNTERS = ("good_parts", "scrap_parts", "jobs_released", "energy_kwh", "energy_cost", "co2_kg", "failures")


def test_warm_episodes_start_inside_the_warmup_range_with_a_running_line():
    env = gym.make("smartline/Speed-v0", line="flow5_busy", warmup_h=(24.0, 48.0))
    starts, health = [], []
    for seed in range(6):
        env.reset(seed=seed)
        line = env.unwrapped.line
        frame = env.unwrapped.frame
        starts.append(frame.time)
        health.append(line.health())
        assert frame.kpis.good_parts == 0
        assert frame.kpis.energy_kwh == 0.0
        assert frame.kpis.wip_parts > 0  # the backlog and buffers carried over
        queues = [frame.values[line.spec.sensor_index(f"{s}.queue_parts")] for s in line.spec.stations]
        assert sum(queues) > 0
    starts_h = np.array(starts) / HOUR
    assert ((starts_h >= 24.0) & (starts_h <= 48.0)).all()
    assert len({round(t % 24.0, 3) for t in starts_h}) == len(starts_h)  # the time of day varies
    assert (np.array(health) < 1.0).all()  # every machine has worked before the episode


def test_same_seed_same_warm_start_and_cold_start_is_time_zero():
    env = gym.make("smartline/Speed-v0")
    a, _ = env.reset(seed=7)
    b, _ = env.reset(seed=7)
    np.testing.assert_array_equal(a, b)
    cold = gym.make("smartline/Speed-v0", start="cold")
    cold.reset(seed=7)
    assert cold.unwrapped.frame.time == 0.0
    assert (cold.unwrapped.line.health() == 1.0).all()


def test_episode_kpis_are_the_counters_change_since_the_episode_start():
    """A warm episode under the line's own setting counts exactly what a cold run counts between the same instants."""
    env = gym.make("smartline/Speed-v0", line="flow5", max_episode_steps=120)
    env.reset(seed=3)
    start_s = env.unwrapped.frame.time
    zero = np.zeros(env.action_space.shape, dtype=np.float32)
    done = False
    while not done:
        _, _, term, trunc, info = env.step(zero)
        done = term or trunc
    episode, end_s = info["kpis"], info["time"]

    # The same seed without levers, started cold, runs the same line: read its counters at both instants.
    cold = TwinLine.from_yaml(config_file("line", "flow5"), seed=3)
    cold.reset()
    at_start = cold.advance(start_s).kpis
    assert cold.read().time == pytest.approx(start_s)
    at_end = cold.advance(end_s - start_s).kpis
    for name in COUNTERS:
        assert getattr(episode, name) == pytest.approx(getattr(at_end, name) - getattr(at_start, name), abs=1e-9)
    assert episode.throughput_per_h == pytest.approx(episode.good_parts * HOUR / (end_s - start_s))


def test_the_parts_an_episode_leaves_in_the_line_are_what_it_found_plus_released_minus_departed():
    """`wip_end_parts` shows work pushed past the horizon: a slow line ends with more parts in it."""
    left = {}
    for speed in (-1.0, 1.0):  # the slowest and fastest setting of every station
        env = gym.make("smartline/Speed-v0", line="flow5", max_episode_steps=240)
        env.reset(seed=4)
        found = env.unwrapped.frame.kpis.wip_parts
        assert found > 0
        action = np.full(env.action_space.shape, speed, dtype=np.float32)
        done = False
        while not done:
            _, _, term, trunc, info = env.step(action)
            done = term or trunc
        kpis = info["kpis"]
        values = episode_kpis(kpis, info)
        assert values["wip_end_parts"] == found + kpis.jobs_released - kpis.jobs_done
        assert kpis.jobs_done == kpis.good_parts + kpis.scrap_parts
        left[speed] = values["wip_end_parts"]
    assert left[-1.0] > left[1.0]


def test_health_consumed_is_the_health_the_machines_lost():
    line = TwinLine.from_yaml(config_file("line", "flow5"), seed=5)
    line.reset()
    before_h, before_kpi = line.health(), line.read().kpis.health_consumed
    checked = 0
    for _ in range(200):
        frame = line.advance(600.0)
        after_h = line.health()
        renewed = frame.kpis.failures + frame.kpis.preventive_maintenances
        if renewed == 0:
            assert frame.kpis.health_consumed - before_kpi == pytest.approx((before_h - after_h).sum(), abs=1e-12)
            checked += 1
        before_h, before_kpi = after_h, frame.kpis.health_consumed
        if renewed:
            break
    assert checked > 10


def test_running_fast_wears_more_per_good_part():
    """Wear per busy hour grows with speed squared and parts with speed, so wear per part grows with speed."""
    per_part = []
    for speed in (0.8, 1.0, 1.15):
        control = {"levers": ["speed"], "control_period_s": 48 * HOUR}
        line = TwinLine.from_yaml(config_file("line", "flow5_busy"), seed=11, control=control)
        line.reset()
        line.write(Command(setpoints=np.full(len(line.spec.actuators), speed)))
        kpis = line.advance(48 * HOUR).kpis
        assert line.read().time == 48 * HOUR
        per_part.append(kpis.health_consumed / kpis.good_parts)
    assert per_part[0] < per_part[1] < per_part[2]


def test_scenario_times_count_from_the_episode_start():
    """A price spike from 1 h to 5 h into the episode multiplies the price by its factor then, whatever the warm-up."""
    plain = gym.make("smartline/Energy-v0", max_episode_steps=200)
    spiked = gym.make("smartline/Energy-v0", scenario="price_spike", max_episode_steps=200)
    plain.reset(seed=2)
    spiked.reset(seed=2)
    spec = plain.unwrapped.line.spec
    price = spec.sensor_index("line.price_per_kwh")
    start_s = plain.unwrapped.frame.time
    assert start_s > 0
    action = np.zeros(plain.action_space.shape, dtype=np.float32)
    ratios = []
    for _ in range(200):
        plain.step(action)
        spiked.step(action)
        a, b = plain.unwrapped.frame, spiked.unwrapped.frame
        assert a.time == b.time
        ratios.append((a.time - start_s, b.values[price] / a.values[price]))
    inside = [r for t, r in ratios if HOUR < t < 5 * HOUR]
    outside = [r for t, r in ratios if t < HOUR or t > 5 * HOUR]
    assert inside
    assert outside
    np.testing.assert_allclose(inside, 5.0, rtol=1e-12)
    np.testing.assert_allclose(outside, 1.0, rtol=1e-12)


def test_start_arguments_are_checked_and_named():
    with pytest.raises(ValueError, match="start must be one of cold, warm, auto"):
        gym.make("smartline/Speed-v0", start="hot")
    with pytest.raises(ValueError, match=r"warmup_h: give \(min, max\) hours, 0 <= min <= max, got \(10.0, 5.0\)"):
        gym.make("smartline/Speed-v0", warmup_h=(10.0, 5.0))  # named as given, not as the line file's field
    line = TwinLine.from_yaml(config_file("line", "flow5"), seed=0, control={"levers": ["speed"]})
    with pytest.raises(ValueError, match="start, warmup_h: only applies to a line built from a definition"):
        gym.make("smartline/Speed-v0", line=line, start="cold")
    with pytest.raises(ValueError, match=r"start\.mode"):
        TwinLine.from_yaml(config_file("line", "flow5_orders"), start={"mode": "warm"})


def test_the_line_definition_says_how_its_episodes_start_unless_the_env_is_told():
    definition = yaml.safe_load(config_file("line", "flow5").read_text())
    definition["start"] = {"mode": "cold"}
    env = gym.make("smartline/Speed-v0", line=definition)
    env.reset(seed=0)
    assert env.unwrapped.frame.time == 0.0
    env = gym.make("smartline/Speed-v0", line=definition, start="warm")
    env.reset(seed=0)
    assert env.unwrapped.frame.time >= 24 * HOUR
    env = gym.make("smartline/Speed-v0", line="flow5_orders")  # a fixed job set: auto starts it cold
    env.reset(seed=0)
    assert env.unwrapped.frame.time == 0.0


def test_last_completion_counts_from_the_episode_start():
    env = gym.make("smartline/Speed-v0", max_episode_steps=30)
    env.reset(seed=4)
    assert env.unwrapped.frame.kpis.last_completion_s == 0.0
    start_s = env.unwrapped.frame.time
    done = False
    while not done:
        _, _, term, trunc, info = env.step(np.zeros(env.action_space.shape, dtype=np.float32))
        done = term or trunc
    assert 0.0 < info["kpis"].last_completion_s <= info["time"] - start_s
