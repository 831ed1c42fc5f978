"""Actions: a wrong shape is an error naming the space; an invalid value never reaches the line and is counted."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401  (registers the ids)
from hardware import Lever

TICK_TASKS = ("Speed", "Energy", "Maintenance", "Inventory", "Factory")


def _written(env: gym.Env) -> list[np.ndarray]:
    """Record every setpoint vector the env writes to its line."""
    line = env.unwrapped.line
    seen: list[np.ndarray] = []
    original = line.write

    def write(command):
        if command.setpoints is not None:
            seen.append(np.array(command.setpoints))
        original(command)

    line.write = write
    return seen


@pytest.mark.parametrize("task", [*TICK_TASKS, "Scheduling"])
def test_a_wrong_shape_is_an_error_naming_the_expected_space(task):
    env = gym.make(f"smartline/{task}-v0")
    env.reset(seed=0)
    shape = env.action_space.shape or ()
    wrong = np.zeros((2, *shape, 3))
    with pytest.raises(ValueError, match=r"action: expected .* of shape") as raised:
        env.step(wrong)
    assert str(shape) in str(raised.value)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_speed_is_never_written_and_is_counted(bad):
    env = gym.make("smartline/Speed-v0")
    env.reset(seed=0)
    written = _written(env)
    action = np.zeros(env.action_space.shape, dtype=np.float32)
    action[1] = bad
    _, _, _, _, info = env.step(action)
    assert info["invalid_action"]
    assert info["invalid_actions"] == 1
    assert np.isfinite(written[-1]).all()
    nominal = [a.default for a in env.unwrapped.line.spec.actuators]
    np.testing.assert_array_equal(written[-1], nominal)  # the line's own setting stands
    _, _, _, _, info = env.step(np.zeros(env.action_space.shape, dtype=np.float32))
    assert not info["invalid_action"]
    assert info["invalid_actions"] == 1
    _, info = env.reset(seed=1)
    assert info["invalid_actions"] == 0


def test_maintenance_requests_only_zero_or_one():
    env = gym.make("smartline/Maintenance-v0")
    env.reset(seed=0)
    written = _written(env)
    n = env.action_space.shape[0]
    action = np.zeros(n)
    action[0] = 0.5
    action[1] = 1.0
    _, _, _, _, info = env.step(action)
    assert info["invalid_action"]
    expected = np.zeros(n)
    expected[1] = 1.0  # the valid request goes out, the half-request does not
    np.testing.assert_array_equal(written[-1], expected)


@pytest.mark.parametrize("level", [-1, 9, 2.5, np.nan, True, np.True_, np.array([True])])  # `True` is no level 1
def test_an_order_level_outside_the_space_orders_nothing(level):
    env = gym.make("smartline/Inventory-v0")
    env.reset(seed=0)
    written = _written(env)
    _, _, _, _, info = env.step(level)
    assert info["invalid_action"]
    assert written[-1].tolist() == [0.0]
    _, _, _, _, info = env.step(np.array([3]))
    assert not info["invalid_action"]
    assert written[-1][0] == pytest.approx(3 / 8 * env.unwrapped.line.spec.actuators[0].high)


def test_a_boolean_request_is_a_valid_maintenance_action():
    env = gym.make("smartline/Maintenance-v0")
    env.reset(seed=0)
    written = _written(env)
    _, _, _, _, info = env.step(np.array([False, True, False, False, False]))
    assert not info["invalid_action"]
    assert written[-1].tolist() == [0.0, 1.0, 0.0, 0.0, 0.0]


def test_reset_takes_no_options():
    env = gym.make("smartline/Speed-v0")
    env.reset(seed=0, options={})
    with pytest.raises(ValueError, match=r"reset: LineEnv takes no options, got \['start'\]"):
        env.reset(seed=0, options={"start": "cold"})


def test_an_invalid_dispatch_falls_back_to_fifo_and_is_counted():
    env = gym.make("smartline/Scheduling-v0", instance="ft06")
    env.reset(seed=0)
    decision = env.unwrapped.task.decision(env.unwrapped.frame)
    _, _, _, _, info = env.step(np.nan)
    assert info["invalid_action"]
    assert info["invalid_actions"] == 1
    assert env.unwrapped.frame.jobs.status[decision.jobs[0]] != 1  # FIFO's job left the queue


def test_the_wear_term_sums_to_the_health_deficit_left_behind():
    """Over an episode, the net health used is the machines' health deficit at its end less at its start."""
    env = gym.make("smartline/Speed-v0", line="flow5_busy", scenario="breakdown_wave", max_episode_steps=1000)
    env.reset(seed=6)
    line = env.unwrapped.line
    deficit_start = float((1.0 - line.health()).sum())
    price = env.unwrapped.task.weights.wear_cost_per_health
    total, done = 0.0, False
    action = np.ones(env.action_space.shape, dtype=np.float32)  # flat out: wear and failures happen
    while not done:
        _, _, term, trunc, info = env.step(action)
        total += info["reward/wear"]
        done = term or trunc
    assert info["kpis"].failures > 0  # repairs restored health along the way
    deficit_end = float((1.0 - line.health()).sum())
    assert total == pytest.approx(-price * (deficit_end - deficit_start), rel=1e-9, abs=1e-6)
    assert Lever.SPEED in line.spec.levers
