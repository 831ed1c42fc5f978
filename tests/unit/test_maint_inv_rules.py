"""Rule changes of the maintenance and inventory baselines made for issue 10's sweeps."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401  (registers the ids)
from agents.baselines import make_baseline
from agents.decoder import SensorDecoder, available

SHIPPED_MM_S = [3.78, 6.24, 2.468, 2.468, 3.78]  # configs/agent/condition_based.yaml, station order


@pytest.fixture
def maintenance() -> gym.Env:
    env = gym.make("smartline/Maintenance-v0")
    env.reset(seed=0)
    return env


def test_threshold_scale_multiplies_every_station_threshold(maintenance):
    shipped = make_baseline(maintenance, "condition_based")
    scaled = make_baseline(maintenance, "condition_based", threshold_scale=1.25)
    np.testing.assert_allclose(shipped.trigger.threshold_mm_s, SHIPPED_MM_S)
    np.testing.assert_allclose(scaled.trigger.threshold_mm_s, [1.25 * t for t in SHIPPED_MM_S])


def test_a_larger_scale_maintains_later(maintenance):
    """Readings 10% above the shipped thresholds trigger the shipped rule everywhere, the 1.2x rule nowhere."""
    task = maintenance.unwrapped.task
    obs, _ = maintenance.reset(seed=0)
    obs = np.array(obs, dtype=np.float32)
    for station, threshold in zip(task.spec.stations, SHIPPED_MM_S, strict=True):
        name = f"{station}.vibration_mm_s"
        obs[task.encoder.column(name)] = task.encoder.encode(name, 1.1 * threshold)
    up = available(SensorDecoder(task), obs[None])[0]
    eager = make_baseline(maintenance, "condition_based").trigger(obs[None])[0]
    late = make_baseline(maintenance, "condition_based", threshold_scale=1.2).trigger(obs[None])[0]
    assert up.any()
    np.testing.assert_array_equal(eager, up)
    assert not late.any()


def test_a_reading_at_its_threshold_is_decided_alike_at_every_station(maintenance):
    """Float32 rounding put 3.0 mm/s a hair above or below 3.0 by station: [0 1 1 1 0]."""
    task = maintenance.unwrapped.task
    obs, _ = maintenance.reset(seed=0)
    obs = np.array(obs, dtype=np.float32)
    for station in task.spec.stations:
        name = f"{station}.vibration_mm_s"
        obs[task.encoder.column(name)] = task.encoder.encode(name, 3.0)
    at = make_baseline(maintenance, "condition_based", threshold_mm_s=3.0).trigger(obs[None])[0]
    above = make_baseline(maintenance, "condition_based", threshold_mm_s=2.99).trigger(obs[None])[0]
    assert not at.any()
    np.testing.assert_array_equal(above, available(SensorDecoder(task), obs[None])[0])
    assert above.any()


@pytest.mark.parametrize("scale", [0.0, -1.0, float("nan"), True])
def test_threshold_scale_must_be_a_positive_number(maintenance, scale):
    with pytest.raises(ValueError, match="threshold_scale must be a finite number > 0"):
        make_baseline(maintenance, "condition_based", threshold_scale=scale)


def test_box_maintenance_requests_exactly_the_components_above_one_half():
    env = gym.make("smartline/Maintenance-v0", action="box")
    env.reset(seed=0)
    task = env.unwrapped.task
    assert env.action_space == gym.spaces.Box(-1.0, 1.0, (5,), np.float32)
    command = task.command(np.array([0.51, 0.5, -1.0, 1.0, 0.2], dtype=np.float32), env.unwrapped.frame)
    requested = command.setpoints[task._acts]
    np.testing.assert_array_equal(requested, [1.0, 0.0, 0.0, 1.0, 0.0])


def test_binary_and_box_maintenance_run_a_rule_alike():
    returns = []
    for action in ("binary", "box"):
        env = gym.make("smartline/Maintenance-v0", action=action, max_episode_steps=200)
        rule = make_baseline(env, "fixed_interval", interval_h=8.0)
        obs, _ = env.reset(seed=3)
        total, done = 0.0, False
        while not done:
            a, _ = rule.predict(obs)
            obs, r, terminated, truncated, _ = env.step(a)
            total, done = total + r, terminated or truncated
        returns.append((total, env.unwrapped.frame.kpis.preventive_maintenances))
    assert returns[0] == returns[1]
    assert returns[0][1] > 0


def inventory(**kwargs) -> gym.Env:
    env = gym.make("smartline/Inventory-v0", action="order_up_to", order_levels=17, **kwargs)
    env.reset(seed=0)
    return env


def at_position(env: gym.Env, stock: float, on_order: float):
    frame = env.unwrapped.frame
    spec = env.unwrapped.line.spec
    values = np.array(frame.values)
    values[spec.sensor_index("line.stock_units")] = stock
    values[spec.sensor_index("line.on_order_units")] = on_order
    return dataclasses.replace(frame, values=values)


@pytest.mark.parametrize(
    ("level", "stock", "on_order", "ordered"),
    [
        (8, 1000.0, 500.0, 1000.0),  # target 2,500: the gap of 1,000 units
        (8, 1500.0, 500.0, 0.0),  # gap 500, below the 625-unit minimum
        (8, 1875.0, 0.0, 625.0),  # gap exactly the minimum
        (0, 0.0, 0.0, 0.0),  # level 0 never orders
        (16, 0.0, 0.0, 5000.0),  # target 5,000 from nothing: the largest order
        (4, 3000.0, 0.0, 0.0),  # above the target
    ],
)
def test_order_up_to_orders_the_gap_to_the_target_when_it_reaches_the_minimum(level, stock, on_order, ordered):
    env = inventory(min_order_units=625.0)
    task = env.unwrapped.task
    command = task.command(level, at_position(env, stock, on_order))
    assert command.setpoints[task._acts][0] == pytest.approx(ordered)


def test_order_up_to_orders_nothing_when_the_position_cannot_be_read():
    env = inventory()
    task = env.unwrapped.task
    assert task.command(16, at_position(env, float("nan"), 0.0)).setpoints[task._acts][0] == 0.0


def test_ss_reorder_on_order_up_to_targets_s_capital_below_s_and_nothing_above():
    env = inventory(min_order_units=625.0)
    rule = make_baseline(env, "ss_reorder", reorder_point_units=1000.0, order_up_to_units=2500.0)
    decoder = SensorDecoder(env.unwrapped.task)
    encoder = env.unwrapped.task.encoder
    obs = np.zeros(env.observation_space.shape, dtype=np.float32)
    levels = []
    for stock in (400.0, 1000.0, 1100.0):
        obs[encoder.column("line.stock_units")] = encoder.encode("line.stock_units", stock)
        assert decoder.value(obs, "line.stock_units") == pytest.approx(stock, rel=1e-4)
        levels.append(int(rule.predict(obs)[0]))
    assert levels == [8, 8, 0]  # level 8 is the 2,500-unit target


@pytest.mark.parametrize(
    ("env_id", "kwargs", "message"),
    [
        ("smartline/Maintenance-v0", {"action": "continuous"}, "action must be one of binary, box, due_box"),
        ("smartline/Maintenance-v0", {"max_due_h": 0.0}, "max_due_h must be a finite number > 0"),
        (
            "smartline/Inventory-v0",
            {"action": "base_stock"},
            "action must be one of quantity, order_up_to, order_up_to_box",
        ),
        ("smartline/Inventory-v0", {"min_order_units": -1.0}, "min_order_units must be a finite number >= 0"),
    ],
)
def test_bad_task_options_are_named(env_id, kwargs, message):
    with pytest.raises(ValueError, match=message):
        gym.make(env_id, **kwargs)


@pytest.mark.parametrize(
    ("a", "stock", "ordered"),
    [
        (0.0, 1000.0, 1500.0),  # target 2,500: the gap
        (-0.4, 1000.0, 0.0),  # target 1,500: gap 500, below the minimum
        (-1.0, 0.0, 0.0),  # target 0 never orders
        (1.0, 0.0, 5000.0),  # the largest target from nothing
        (float("nan"), 0.0, 0.0),  # invalid: no order
    ],
)
def test_continuous_target_orders_the_gap_to_a_rescaled_onto_zero_to_the_largest_order(a, stock, ordered):
    env = gym.make("smartline/Inventory-v0", action="order_up_to_box", min_order_units=625.0)
    env.reset(seed=0)
    task = env.unwrapped.task
    assert env.action_space == gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    command = task.command(np.array([a], dtype=np.float32), at_position(env, stock, 0.0))
    assert command.setpoints[task._acts][0] == pytest.approx(ordered)


def test_ss_reorder_runs_alike_on_order_up_to_levels_and_continuous_targets():
    """With S on a level (3,125 units), the (s, S) rule orders the same on both target actions."""
    ordered = []
    for action in ("order_up_to", "order_up_to_box"):
        levels = {"order_levels": 17} if action == "order_up_to" else {}  # the Box has no levels
        env = gym.make("smartline/Inventory-v0", action=action, **levels, min_order_units=625.0, max_episode_steps=400)
        rule = make_baseline(env, "ss_reorder", reorder_point_units=1800.0, order_up_to_units=3125.0)
        obs, _ = env.reset(seed=1)
        total, done = 0.0, False
        while not done:
            a, _ = rule.predict(obs)
            obs, r, terminated, truncated, _ = env.step(a)
            total, done = total + r, terminated or truncated
        kpis = env.unwrapped.frame.kpis
        ordered.append((round(total, 6), kpis.orders_placed, kpis.material_ordered))
    assert ordered[0] == ordered[1]
    assert ordered[0][1] > 0


def at_since(env: gym.Env, hours: list[float]):
    frame = env.unwrapped.frame
    spec = env.unwrapped.line.spec
    values = np.array(frame.values)
    for station, h in zip(spec.stations, hours, strict=True):
        values[spec.sensor_index(f"{station}.since_maintenance_h")] = h
    return dataclasses.replace(frame, values=values)


def test_due_box_requests_the_stations_whose_hours_since_maintenance_reach_their_due_time():
    env = gym.make("smartline/Maintenance-v0", action="due_box", max_due_h=200.0)
    env.reset(seed=0)
    task = env.unwrapped.task
    # due at 100 h, 100 h, 0 h (now), never (a = 1), 150 h
    action = np.array([0.0, 0.0, -1.0, 1.0, 0.5], dtype=np.float32)
    since = [100.0, 99.0, 0.0, 500.0, 151.0]
    requested = task.command(action, at_since(env, since)).setpoints[task._acts]
    np.testing.assert_array_equal(requested, [1.0, 0.0, 1.0, 0.0, 1.0])
    invalid = np.array([np.nan, 0.0, 0.0, 0.0, 0.0], dtype=np.float32)
    requested = task.command(invalid, at_since(env, [300.0, 300.0, 0.0, 0.0, float("nan")])).setpoints[task._acts]
    np.testing.assert_array_equal(requested, [0.0, 1.0, 0.0, 0.0, 0.0])


@pytest.mark.parametrize(
    ("name", "params"),
    [("reactive", {}), ("fixed_interval", {"interval_h": 6.0}), ("condition_based", {"threshold_scale": 0.5})],
)
def test_maintenance_rules_act_alike_on_binary_and_due_time_actions(name, params):
    outcomes = []
    for action in ("binary", "due_box"):
        env = gym.make("smartline/Maintenance-v0", action=action, control_period_s=1800.0, max_episode_steps=96)
        rule = make_baseline(env, name, **params)
        obs, _ = env.reset(seed=2)
        total, done = 0.0, False
        while not done:
            a, _ = rule.predict(obs)
            obs, r, terminated, truncated, _ = env.step(a)
            total, done = total + r, terminated or truncated
        outcomes.append((round(total, 6), env.unwrapped.frame.kpis.preventive_maintenances))
    assert outcomes[0] == outcomes[1]
    assert (outcomes[0][1] > 0) == (name != "reactive")


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        # press reads hours since maintenance up to 555.6 h: at 600 h it would never be maintained
        ("fixed_interval", {"interval_h": 600.0}, r"interval_h: 600 h is beyond what press.since_maintenance_h"),
        # weld's vibration sensor reads up to 11.425 mm/s: its shipped 2.468 times 4.7 is beyond it
        ("condition_based", {"threshold_mm_s": 12.0}, r"threshold_mm_s\[weld\]: 12 mm/s .* at or above the top"),
        ("condition_based", {"threshold_scale": 4.7}, r"threshold_mm_s\[weld\]: 11.5996 mm/s"),
    ],
)
def test_a_maintenance_rule_that_its_sensors_could_never_trigger_is_refused(maintenance, name, params, message):
    with pytest.raises(ValueError, match=message):
        make_baseline(maintenance, name, **params)


def test_the_highest_readable_interval_is_accepted_and_maintains_at_the_top_of_the_range(maintenance):
    rule = make_baseline(maintenance, "fixed_interval", interval_h=555.5)
    decoder = SensorDecoder(maintenance.unwrapped.task)
    obs = np.zeros(maintenance.observation_space.shape, dtype=np.float32)
    obs[maintenance.unwrapped.task.encoder.column("press.since_maintenance_h")] = 1.0  # 555.6 h or more
    assert decoder.value(obs, "press.since_maintenance_h") == pytest.approx(555.56, abs=0.01)
    assert rule.act(obs[None])[0].tolist() == [0, 1, 0, 0, 0]


@pytest.mark.parametrize(
    ("kwargs", "s", "big_s", "message"),
    [
        # the level nearest S = 2,400 is 2,500: 2,500 - 2,000 = 500 < 625, so s would act as 1,875
        ({}, 2000.0, 2400.0, r"the target \(2500 units\) .* act as reorder_point_units=1875"),
        ({"action": "order_up_to_box"}, 1000.0, 1500.0, r"the target \(1500 units\) .* act as reorder_point_units=875"),
        ({"action": "order_up_to_box"}, 1000.0, 6000.0, r"order_up_to_units \(6000\) is above the task's largest"),
        ({}, 7300.0, 9000.0, r"reorder_point_units \(7300\) is at or above the top of what the stock sensor reads"),
    ],
)
def test_an_ss_rule_the_target_action_cannot_carry_out_is_refused(kwargs, s, big_s, message):
    action = kwargs or {"action": "order_up_to", "order_levels": 17}
    env = gym.make("smartline/Inventory-v0", **action, min_order_units=625.0)
    with pytest.raises(ValueError, match=message):
        make_baseline(env, "ss_reorder", reorder_point_units=s, order_up_to_units=big_s)


def test_ss_rule_on_order_quantities_has_no_minimum_order():
    with pytest.warns(UserWarning, match="min_order_units=625.0 is ignored"):
        env = gym.make("smartline/Inventory-v0", min_order_units=625.0)
    assert make_baseline(env, "ss_reorder", reorder_point_units=1000.0, order_up_to_units=1500.0)


@pytest.mark.parametrize(
    ("s", "big_s", "message"),
    [  # quantity levels 0, 625, ..., 5000: an order is the level nearest S - position
        (800.0, 1000.0, r"the target \(1000 units\) less reorder_point_units \(800\) is below half an order level"),
        (800.0, 1112.5, r"below half an order level \(312\.5\).*act as reorder_point_units=800"),  # a tie: no order
        (800.0, 6000.0, r"more than the task's largest order \(5000 units\) above .* order_up_to_units=5800"),
    ],
)
def test_an_ss_rule_order_quantities_cannot_carry_out_is_refused(s, big_s, message):
    env = gym.make("smartline/Inventory-v0")
    with pytest.raises(ValueError, match=message):
        make_baseline(env, "ss_reorder", reorder_point_units=s, order_up_to_units=big_s)
    assert make_baseline(env, "ss_reorder", reorder_point_units=800.0, order_up_to_units=1113.0)  # orders 625 at s


@pytest.mark.parametrize(
    ("kwargs", "s", "big_s", "message"),
    [
        ({"reorder": "order_up_to", "min_order_units": 500.0}, 800.0, 1200.0, r"act as reorder_point_units=700"),
        ({"reorder": "order_up_to"}, 800.0, 9000.0, r"order_up_to_units \(9000\) is above the task's largest target"),
        ({}, 800.0, 9000.0, r"more than the task's largest order \(5000 units\) above reorder_point_units \(800\)"),
    ],
)
def test_a_factory_rule_whose_s_capital_s_the_task_cannot_carry_out_is_refused(kwargs, s, big_s, message):
    env = gym.make("smartline/Factory-v0", **kwargs)
    with pytest.raises(ValueError, match=message):
        make_baseline(env, "factory_rules", reorder_point_units=s, order_up_to_units=big_s)
