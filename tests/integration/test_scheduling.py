"""The Scheduling env: optimal schedules replay exactly, masks match the twin, waits never stall the line."""

from __future__ import annotations

import dataclasses
import re
import warnings

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import envs  # noqa: F401  (registers the ids)
from envs.jobshop import instance_definition, instance_line, load_instance
from envs.registration import make_scheduling
from envs.scheduling import SchedulingEnv, SchedulingTask
from hardware import Command, Frame, JobStatus, Line
from hardware.twin import State, TwinLine

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


def test_the_task_line_rule_gives_the_twin_own_fifo_makespan():
    """Always taking the task's `line_rule` reproduces the twin's own FIFO run on la01 (not where arrivals tie)."""
    env = gym.make("smartline/Scheduling-v0", instance="la01")
    env.reset(seed=0)
    terminated, total = False, 0.0
    while not terminated:
        _, reward, terminated, _, info = env.step(env.unwrapped.task.line_rule(env.unwrapped.frame))
        total += reward
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


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), line=st.sampled_from(["ft06", "la02", "flow5_orders"]))
def test_the_jobs_offered_are_exactly_those_waiting_at_the_free_station_in_the_twin(seed, line):
    env = make_scheduling(line=line) if line == "flow5_orders" else SchedulingEnv(*twin_instance(line))
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    terminated = False
    while not terminated:
        mask = env.action_masks()
        station = env.task.decision(env.frame).station
        twin = env.line._plant.stations[station]  # the twin's runtime state, read for the check only
        assert twin.state is State.IDLE
        assert twin.assigned is None
        assert set(np.flatnonzero(mask[:-1])) == {job.id for job in twin.queue}
        probe = int(rng.integers(len(mask)))
        action = probe if rng.random() < 0.3 else int(rng.choice(np.flatnonzero(mask)))
        _, _, terminated, _, info = env.step(action)
        assert info["invalid_action"] == (not mask[action])


def twin_instance(name: str) -> tuple[TwinLine, SchedulingTask]:
    line = instance_line(name, kernel=False)
    return line, SchedulingTask(line.spec)


@pytest.mark.parametrize("kwargs", [{}, {"instance": "ft06"}, {"scenario": "breakdown_wave"}])
def test_a_policy_that_waits_whenever_it_may_still_finishes(kwargs):
    """Waiting is offered only while the line will move on without the station, so waiting never stalls it."""
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
    assert d.jobs[0] == min(d.jobs)  # at time 0 the queue is in job order
    assert env.unwrapped.frame.jobs.status[invalid] != JobStatus.ACTIVE


def test_every_open_decision_but_the_last_may_wait_and_then_time_moves_on():
    """At time 0 on ft06 every station has work; all may wait but the last asked, which must start a job."""
    env = gym.make("smartline/Scheduling-v0", instance="ft06").unwrapped
    env.reset(seed=0)
    n = env.task.n_jobs
    open_stations = [d.station for d in env.frame.pending]
    asked = []
    while env.action_masks()[n]:
        asked.append(env.task.decision(env.frame).station)
        env.step(n)
        assert env.frame.time == 0.0
    last = env.task.decision(env.frame)
    assert [*asked, last.station] == open_stations
    _, reward, *_ = env.step(env.task.line_rule(env.frame))
    assert reward < 0  # the one started job ran until an event asked the waiting stations again
    assert env.task.decision(env.frame) is not None


class Silent:
    """A line whose frames after the start never show a decision: a line stuck for good."""

    def __init__(self, line: Line) -> None:
        self.line, self.spec = line, line.spec

    def reset(self, seed: int | None = None) -> Frame:
        """Start the inner line."""
        return self.line.reset(seed)

    def write(self, command: Command) -> None:
        """Pass the command on."""
        self.line.write(command)

    def advance(self, dt: float) -> Frame:
        """Advance the inner line, hiding its decisions."""
        return dataclasses.replace(self.line.advance(dt), pending=())

    def read(self) -> Frame:
        """Read the inner line."""
        return self.line.read()

    def close(self) -> None:
        """Close the inner line."""
        self.line.close()


def test_a_line_that_never_offers_a_decision_is_an_error_not_a_hang():
    line = Silent(instance_line("ft06"))
    env = SchedulingEnv(line, SchedulingTask(line.spec))
    env.reset(seed=0)
    with pytest.raises(RuntimeError, match=r"line 'ft06' is stuck at line clock \d+ s"):
        follow_line_rule(env)


SHORT_OF_MATERIAL = """
name: short
layout: jobshop
machines: {m: {}}
stations: [{name: a, machine: m}, {name: b, machine: m}]
variants:
  - {name: P, route: [a, b], processing_time_s: [30, 20]}
  - {name: Q, route: [b, a], processing_time_s: [25, 35]}
changeover_time_s: [[0, 5], [5, 0]]
demand: {jobs: [{variant: P}, {variant: Q}, {variant: P}, {variant: Q}, {variant: P}]}
supply: {initial_stock_units: 2, reorder_point_units: 1, order_quantity_units: 10, lead_time_mean_s: 86400}
"""


@pytest.mark.parametrize("seed", range(4))
def test_a_line_waiting_hours_for_material_is_waiting_not_stuck(tmp_path, seed):
    path = tmp_path / "short.yaml"
    path.write_text(SHORT_OF_MATERIAL)
    env = gym.make("smartline/Scheduling-v0", line=str(path))
    env.reset(seed=seed)
    terminated, info = False, {}
    while not terminated:
        _, _, terminated, _, info = env.step(env.unwrapped.task.line_rule(env.unwrapped.frame))
    work = 5 * 55.0
    assert info["makespan"] > 100 * work  # the delivery took longer than the stall limit of the work alone
    assert info["kpis"].good_parts == 5


def follow_line_rule(env: SchedulingEnv) -> None:
    """Step with the line's own rule until the episode ends."""
    terminated = False
    while not terminated:
        _, _, terminated, _, _ = env.step(env.task.line_rule(env.frame))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"instance": "ft99"}, "instance 'ft99'"),
        ({"line": "flow9"}, "line 'flow9'"),
        ({"scenario": "meteor"}, "scenario 'meteor'"),
        ({"objective": "profit"}, "objective 'profit'"),
        ({"instance": "ft06", "scenario": "price_spike"}, "instance"),
        ({"line": "flow5"}, "fixed job set"),
        ({"due_date_factor": 3.0}, r"due_date_factor: sets due dates on a job-shop instance \(instance=...\)"),
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
        (
            "smartline/Speed-v0",
            {"weights": 2.0},
            "weights: expected a mapping of SpeedWeights fields to prices, got 2.0",
        ),
        (
            "smartline/Energy-v0",
            {"weights": [("energy", 2)]},
            r"weights: expected a mapping .*, got \[\('energy', 2\)\]",
        ),
        ("smartline/Energy-v0", {"scenario": "meteor"}, "scenario 'meteor'"),
        ("smartline/Factory-v0", {"control_period_s": 0}, "control_period_s must be > 0 and finite, got 0"),
        ("smartline/Speed-v0", {"control_period_s": "60"}, "control_period_s must be > 0 and finite, got '60'"),
        ("smartline/Inventory-v0", {"order_levels": 1}, "order_levels must be a whole number >= 2, got 1"),
        ("smartline/Inventory-v0", {"order_levels": 9.0}, r"order_levels must be a whole number >= 2, got 9\.0"),
        ("smartline/Inventory-v0", {"order_levels": "9"}, "order_levels must be a whole number >= 2, got '9'"),
        ("smartline/Inventory-v0", {"order_levels": True}, "order_levels must be a whole number >= 2, got True"),
        ("smartline/Maintenance-v0", {"line": "/no/such/line.yaml"}, "line '/no/such/line.yaml'"),
        ("smartline/Speed-v0", {"warmup_h": (5, 1)}, r"warmup_h: .* 0 <= min <= max, got \(5, 1\)"),
        ("smartline/Speed-v0", {"warmup_h": (-1, 2)}, r"warmup_h: .* got \(-1, 2\)"),
        ("smartline/Speed-v0", {"warmup_h": 5}, r"warmup_h: give \(min, max\) hours, 0 <= min <= max, got 5$"),
        (  # accepted and dropped before: a sweep over warm-ups compared identical runs
            "smartline/Speed-v0",
            {"start": "cold", "warmup_h": (5, 5)},
            r"warmup_h: episodes on line 'flow5' start cold \(start=cold\): .* or give start='warm'$",
        ),
        (
            "smartline/Speed-v0",
            {"line": "flow5_orders", "warmup_h": (5, 5)},
            r"start cold \(start=auto, a fixed job set\): there is no warm-up to set; leave warmup_h out$",
        ),
    ],
)
def test_bad_task_kwargs_name_the_problem(env_id, kwargs, message):
    with pytest.raises(ValueError, match=message):
        gym.make(env_id, **kwargs)


@pytest.mark.parametrize(
    ("env_id", "kwargs", "taken"),
    [
        ("smartline/Speed-v0", {"weights": {"energy": np.int64(2)}}, lambda e: e.task.weights.energy == 2.0),
        ("smartline/Speed-v0", {"weights": {"energy": np.float32(0.5)}}, lambda e: e.task.weights.energy == 0.5),
        (
            "smartline/Maintenance-v0",
            {"action": "due_box", "max_due_h": np.int64(100)},
            lambda e: e.task.max_due_h == 100,
        ),
        (
            "smartline/Inventory-v0",
            {"action": "order_up_to", "min_order_units": np.int64(500)},
            lambda e: e.task.min_order_units == 500,
        ),
        (
            "smartline/Factory-v0",
            {"reorder": "order_up_to", "min_order_units": np.float32(500)},
            lambda e: e.task.min_order_units == 500,
        ),
        (
            "smartline/Speed-v0",
            {"warmup_h": (np.int64(2), np.int64(3))},
            lambda e: 2 * 3600 <= e.frame.time <= 3 * 3600,
        ),
    ],
)
def test_numpy_numbers_are_numbers_to_the_env(env_id, kwargs, taken):
    # a sweep over np.arange(...) or float32 values was refused as "must be a finite number, got np.int64(2)"
    env = gym.make(env_id, **kwargs)
    env.reset(seed=0)
    assert taken(env.unwrapped)


@pytest.mark.parametrize(
    ("env_id", "kwargs", "message"),
    [
        ("smartline/Maintenance-v0", {"max_due_h": 100.0}, "max_due_h=100.0 is ignored: only action='due_box' uses it"),
        ("smartline/Maintenance-v0", {"action": "box", "max_due_h": 50}, "max_due_h=50 is ignored"),
        (
            "smartline/Inventory-v0",
            {"min_order_units": 625.0},
            "min_order_units=625.0 is ignored: only action='order_up_to' or 'order_up_to_box' uses it",
        ),
        (
            "smartline/Inventory-v0",
            {"action": "order_up_to_box", "order_levels": 17},
            "order_levels=17 is ignored: only action='quantity' or 'order_up_to' uses it",
        ),
        (
            "smartline/Factory-v0",
            {"min_order_units": 500.0},
            "min_order_units=500.0 is ignored: only reorder='order_up_to' uses it",
        ),
    ],
)
def test_a_setting_the_chosen_action_does_not_use_is_named_in_a_warning(env_id, kwargs, message):
    """`max_due_h` with a binary action, or a least order with order quantities, changed nothing without a word."""
    with pytest.warns(UserWarning, match=f"^{re.escape(message)}"):
        env = gym.make(env_id, **kwargs)
    env.close()


@pytest.mark.parametrize(
    ("env_id", "kwargs"),
    [
        ("smartline/Maintenance-v0", {"action": "due_box", "max_due_h": 100.0}),
        ("smartline/Maintenance-v0", {"action": "binary", "max_due_h": 200.0}),  # the default, as a preset writes it
        ("smartline/Inventory-v0", {"action": "order_up_to", "order_levels": 17, "min_order_units": 625.0}),
        ("smartline/Inventory-v0", {"action": "order_up_to_box", "min_order_units": 625.0}),
        ("smartline/Factory-v0", {"reorder": "order_up_to", "min_order_units": 500.0}),
    ],
)
def test_settings_the_chosen_action_uses_raise_no_warning(env_id, kwargs):
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".* is ignored: only ")
        gym.make(env_id, **kwargs).close()


def test_unknown_kwarg_is_named():
    with pytest.raises(TypeError, match="speeed"):
        gym.make("smartline/Speed-v0", speeed=1.0)


def test_line_object_must_own_the_task_levers():
    from hardware.twin import TwinLine
    from tests.lines import FLOW5

    with pytest.raises(ValueError, match=r"needs the agent to own levers \['speed'\]"):
        gym.make("smartline/Speed-v0", line=TwinLine.from_yaml(FLOW5))
    # a lever the task never sets: the line's own rule for it stands down (reorders: the store ran dry)
    more = TwinLine.from_yaml(FLOW5, control={"levers": ["speed", "reorder"], "control_period_s": 60.0})
    with pytest.raises(ValueError, match=r"hands the agent levers \['reorder'\] that SpeedTask never sets"):
        gym.make("smartline/Speed-v0", line=more)


def test_a_line_object_ticks_at_its_own_period():
    """A period other than the line's was dropped without a word: each step still took the line's 60 s."""
    from hardware.twin import TwinLine
    from tests.lines import FLOW5

    line = TwinLine.from_yaml(FLOW5, control={"levers": ["speed"], "control_period_s": 60.0})
    with pytest.raises(ValueError, match=r"control_period_s: a Line object ticks at its own period \(60.0 s\), not 10"):
        gym.make("smartline/Speed-v0", line=line, control_period_s=10.0)
    env = gym.make("smartline/Speed-v0", line=line, control_period_s=60.0)  # its own: accepted
    _, info = env.reset(seed=0)
    assert env.step(env.action_space.sample())[4]["time"] - info["time"] == pytest.approx(60.0)
