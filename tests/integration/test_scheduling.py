"""The Scheduling env: optimal schedules replay exactly, masks are exact, rewards sum to the objective."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import envs  # noqa: F401  (registers the ids)
from hardware import JobStatus
from hardware.twin import State

# Machine sequences of an optimal ft06 schedule (makespan 55), found once by a randomised
# Giffler-Thompson search; replaying them semi-actively must give exactly 55.
FT06_OPTIMAL = [
    [0, 3, 2, 5, 1, 4],
    [1, 3, 5, 0, 4, 2],
    [0, 2, 1, 4, 3, 5],
    [2, 5, 3, 0, 1, 4],
    [1, 4, 3, 2, 5, 0],
    [2, 5, 1, 4, 0, 3],
]


def replay(env: gym.Env, sequences: list[list[int]]) -> tuple[float, dict]:
    """Follow per-station job sequences: start the next job in sequence if it waits, else wait."""
    base = env.unwrapped
    n_jobs = base.task.n_jobs
    position = [0] * len(sequences)
    env.reset(seed=0)
    total, terminated = 0.0, False
    while not terminated:
        station = base.task.decision(base.frame).station
        waiting = base.task.decision(base.frame).jobs
        seq = sequences[station]
        wanted = seq[position[station]] if position[station] < len(seq) else None
        if wanted in waiting:
            action = wanted
            position[station] += 1
        else:
            action = n_jobs
        _, reward, terminated, _, info = env.step(action)
        assert not info["invalid_action"]
        total += reward
    return total, info


def test_optimal_ft06_schedule_replays_to_55():
    env = gym.make("smartline/Scheduling-v0", instance="ft06")
    total, info = replay(env, FT06_OPTIMAL)
    assert info["makespan"] == 55.0
    assert total == -55.0


def test_fifo_sequence_gives_the_line_rule_makespan():
    """Always taking the first waiting job reproduces the twin's own FIFO run."""
    env = gym.make("smartline/Scheduling-v0", instance="la01")
    env.reset(seed=0)
    terminated, total = False, 0.0
    while not terminated:
        d = env.unwrapped.task.decision(env.unwrapped.frame)
        _, reward, terminated, _, info = env.step(d.jobs[0])
        total += reward
    from envs.jobshop import instance_definition, load_instance
    from hardware.twin import TwinLine

    definition = instance_definition(load_instance("la01"))
    definition["control"] = {"levers": []}
    fifo = TwinLine.from_config(seed=0, **definition)
    fifo.reset()
    assert fifo.advance(1e6).kpis.last_completion_s == info["makespan"] == -total


def test_weighted_tardiness_rewards_sum_to_the_schedule_total():
    env = gym.make("smartline/Scheduling-v0", objective="weighted_tardiness")
    rng = np.random.default_rng(2)
    env.reset(seed=2)
    total, terminated = 0.0, False
    while not terminated:
        _, reward, terminated, _, info = env.step(int(rng.choice(np.flatnonzero(env.unwrapped.action_masks()))))
        total += reward
    kpis = info["kpis"]
    assert kpis.weighted_tardiness_s > 0
    assert total == pytest.approx(-kpis.weighted_tardiness_s, rel=1e-9)
    assert info["reward/weighted_tardiness"] <= 0


def expected_mask(env: gym.Env) -> np.ndarray:
    """Valid actions computed from the twin's own state, independently of the task's mask."""
    base = env.unwrapped
    plant = base.line._plant  # the twin's runtime state, read for the check only
    station = base.task.decision(base.frame).station
    valid = np.zeros(base.task.n_jobs + 1, dtype=bool)
    for job in plant.stations[station].queue:
        valid[job.id] = True
    working = (State.WARMUP, State.BUSY, State.CHANGEOVER, State.DOWN, State.MAINTENANCE)
    in_process = any(s.assigned is not None or s.state in working for s in plant.stations)
    unreleased = (base.frame.jobs.status == JobStatus.PENDING).any()
    valid[-1] = in_process or unreleased
    return valid


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), instance=st.sampled_from(["ft06", "la02", "ta03"]))
def test_masks_exclude_exactly_the_invalid_actions(seed, instance):
    env = gym.make("smartline/Scheduling-v0", instance=instance)
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    terminated = False
    while not terminated:
        mask = env.unwrapped.action_masks()
        np.testing.assert_array_equal(mask, expected_mask(env))
        probe = int(rng.integers(len(mask)))
        if not mask[probe]:
            _, _, terminated, _, info = env.step(probe)
            assert info["invalid_action"]
        else:
            _, _, terminated, _, info = env.step(int(rng.choice(np.flatnonzero(mask))))
            assert not info["invalid_action"]


@pytest.mark.parametrize("kwargs", [{}, {"instance": "ft06"}, {"scenario": "breakdown_wave"}])
def test_a_policy_that_waits_whenever_it_may_still_finishes(kwargs):
    """Waiting is only offered when the line moves on by itself, so it can never deadlock the line."""
    env = gym.make("smartline/Scheduling-v0", **kwargs)
    env.reset(seed=1)
    n = env.unwrapped.task.n_jobs
    terminated, steps = False, 0
    ops = sum(len(j.route) for j in env.unwrapped.line.spec.jobs)
    while not terminated:
        mask = env.unwrapped.action_masks()
        _, _, terminated, _, info = env.step(n if mask[n] else int(np.flatnonzero(mask)[0]))
        steps += 1
        assert steps < 50 * ops, "the line stopped moving"
    assert info["makespan"] < 10 * env.unwrapped.task.horizon_s


def test_invalid_action_falls_back_to_the_line_rule():
    env = gym.make("smartline/Scheduling-v0", instance="ft06")
    env.reset(seed=0)
    d = env.unwrapped.task.decision(env.unwrapped.frame)
    invalid = next(j for j in range(6) if j not in d.jobs)
    _, _, _, _, info = env.step(invalid)
    assert info["invalid_action"]
    assert env.unwrapped.frame.jobs.status[d.jobs[0]] == JobStatus.ACTIVE  # FIFO took the first in queue
    assert env.unwrapped.frame.jobs.status[invalid] != JobStatus.ACTIVE


def test_waiting_passes_the_turn_and_time_moves_on():
    env = gym.make("smartline/Scheduling-v0", instance="ft06")
    env.reset(seed=0)
    n = env.unwrapped.task.n_jobs
    first = env.unwrapped.task.decision(env.unwrapped.frame)
    # at time 0 nothing is in process yet, so waiting is not allowed
    assert not env.unwrapped.action_masks()[n]
    env.step(first.jobs[0])
    while env.unwrapped.frame.time == 0.0:
        mask = env.unwrapped.action_masks()
        assert mask[n]
        _, reward, *_ = env.step(n)
    assert reward < 0
    assert env.unwrapped.task.decision(env.unwrapped.frame) is not None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"instance": "ft99"}, "instance 'ft99'"),
        ({"line": "flow9"}, "line 'flow9'"),
        ({"scenario": "meteor"}, "scenario 'meteor'"),
        ({"objective": "profit"}, "objective 'profit'"),
        ({"instance": "ft06", "scenario": "price_spike"}, "instance"),
        ({"line": "flow5"}, "fixed job set"),
    ],
)
def test_bad_scheduling_kwargs_name_the_problem(kwargs, message):
    with pytest.raises(ValueError, match=message):
        gym.make("smartline/Scheduling-v0", **kwargs)


@pytest.mark.parametrize(
    ("env_id", "kwargs", "message"),
    [
        ("smartline/Speed-v0", {"weights": {"energy": -1.0}}, r"weights\.energy must be a finite number >= 0"),
        ("smartline/Speed-v0", {"weights": {"enrgy": 1.0}}, "unknown weight 'enrgy'"),
        ("smartline/Energy-v0", {"scenario": "meteor"}, "scenario 'meteor'"),
        ("smartline/Factory-v0", {"control_period_s": 0}, "control_period_s must be > 0"),
        ("smartline/Inventory-v0", {"order_levels": 1}, "order_levels must be >= 2"),
        ("smartline/Maintenance-v0", {"line": "/no/such/line.yaml"}, "line '/no/such/line.yaml'"),
    ],
)
def test_bad_task_kwargs_name_the_problem(env_id, kwargs, message):
    with pytest.raises(ValueError, match=message):
        gym.make(env_id, **kwargs)


def test_unknown_kwarg_is_named():
    with pytest.raises(TypeError, match="speeed"):
        gym.make("smartline/Speed-v0", speeed=1.0)


def test_line_object_must_own_the_task_levers():
    from hardware.twin import TwinLine
    from tests.lines import FLOW5

    with pytest.raises(ValueError, match=r"needs the agent to own levers \['speed'\]"):
        gym.make("smartline/Speed-v0", line=TwinLine.from_yaml(FLOW5))
