"""CP-SAT on job-shop instances, and the `cpsat` baseline replaying its schedule through the Scheduling env."""

from __future__ import annotations

import dataclasses
from typing import cast

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401  (registers the ids)
from agents.baselines import make_baseline
from agents.cpsat import (
    CpSatDispatch,
    CpSatError,
    instance_from_spec,
    machine_orders,
    schedule_makespan,
    semi_active,
    solve_cpsat,
)
from envs.jobshop import Instance, load_instance
from envs.scheduling import SchedulingEnv
from hardware import JobStatus

TWO_BY_TWO = Instance("two", 2, routes=((0, 1), (1, 0)), times=((3, 2), (4, 1)))


def replay(name: str, **params: float) -> tuple[CpSatDispatch, float, np.ndarray]:
    """Run the `cpsat` baseline through the env on instance `name`: its plan, the env's makespan and start times."""
    env = gym.make("smartline/Scheduling-v0", instance=name)
    baseline = make_baseline(env, "cpsat", **params)
    assert isinstance(baseline, CpSatDispatch)
    obs, _ = env.reset(seed=0)
    instance = baseline.instance
    starts = np.full((instance.n_jobs, instance.n_machines), -1.0)
    terminated = False
    base = cast(SchedulingEnv, env.unwrapped)
    while not terminated:
        frame = base.frame
        decision = base.task.decision(frame)
        assert decision is not None
        station = decision.station
        action = int(baseline.predict(obs)[0])
        if action < instance.n_jobs:
            starts[action, instance.routes[action].index(station)] = frame.time
        obs, _, terminated, _, info = env.step(action)
        assert not info["invalid_action"]
    return baseline, info["makespan"], starts


def test_ft06_env_makespan_is_the_cpsat_optimum_55():
    baseline, makespan, starts = replay("ft06", time_limit_s=5.0)
    plan = baseline.schedule
    assert plan is not None
    assert plan.status == "OPTIMAL"
    assert plan.optimal
    assert plan.makespan == plan.lower_bound == 55
    assert makespan == 55.0
    np.testing.assert_array_equal(starts, plan.starts)


def test_the_env_replays_a_ta01_schedule_exactly_even_when_the_limit_stops_short_of_optimal():
    """Under a 1 s limit CP-SAT is far from proving ta01 (15x15); whatever it finds, the env runs it as planned."""
    baseline, makespan, starts = replay("ta01", time_limit_s=1.0, workers=1)
    plan = baseline.schedule
    assert plan is not None
    assert makespan == plan.makespan
    np.testing.assert_array_equal(starts, plan.starts)
    assert 1231 <= plan.makespan <= 2 * 1231  # ta01's optimum is 1231; a loaded machine may stop the search early
    assert plan.lower_bound <= 1231


def test_solve_reports_a_valid_left_shifted_schedule():
    plan = solve_cpsat(TWO_BY_TWO, time_limit_s=5.0)
    # job 0: m0 then m1; job 1: m1 then m0. Optimal: m1 runs job 1 [0, 4) before job 0 [4, 6)
    assert plan.makespan == plan.lower_bound == 6
    np.testing.assert_array_equal(plan.starts, [[0, 4], [0, 4]])
    assert schedule_makespan(TWO_BY_TWO, plan.starts) == 6


def test_semi_active_left_shifts_idle_time_away_and_refuses_deadlocked_orders():
    starts = semi_active(TWO_BY_TWO, [[0, 1], [0, 1]])  # m1 waits for job 0 (free at 3) before job 1
    np.testing.assert_array_equal(starts, [[0, 3], [5, 9]])  # by operation: job 1 on m1 at 5, then m0 at 9
    assert machine_orders(TWO_BY_TWO, starts) == [[0, 1], [0, 1]]
    assert schedule_makespan(TWO_BY_TWO, starts) == 10
    with pytest.raises(ValueError, match="'two': the machine orders deadlock"):
        semi_active(TWO_BY_TWO, [[1, 0], [0, 1]])  # m0 waits for job 1's second op, m1 for job 0's second
    with pytest.raises(ValueError, match="machine 0 order \\[0\\] must hold jobs \\[0, 1\\]"):
        semi_active(TWO_BY_TWO, [[0], [0, 1]])


def test_release_times_delay_the_jobs():
    plan = solve_cpsat(TWO_BY_TWO, time_limit_s=5.0, release=(10, 0))
    assert plan.starts[0, 0] >= 10
    assert plan.makespan == 15  # job 0 alone from 10: 3 + 2 after job 1 is done by 5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"time_limit_s": 0.0}, "time_limit_s must be a finite number > 0"),
        ({"time_limit_s": 1.0, "workers": 0}, "workers must be an integer >= 1, got 0"),
        ({"time_limit_s": 1.0, "release": (0,)}, "release: expected 2 non-negative start times for 'two'"),
    ],
)
def test_bad_solver_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        solve_cpsat(TWO_BY_TWO, **kwargs)


def test_no_schedule_within_the_limit_is_an_error_naming_the_instance():
    with pytest.raises(CpSatError, match="instance 'ta11': CP-SAT found no schedule within 1e-06 s"):
        solve_cpsat(load_instance("ta11"), time_limit_s=1e-6)


def test_the_instance_of_a_line_is_its_job_set_on_mean_times():
    env = gym.make("smartline/Scheduling-v0")  # flow5_orders: 60 orders through 5 stations
    instance, release = instance_from_spec(env.unwrapped.task.spec)
    assert (instance.n_jobs, instance.n_machines) == (60, 5)
    assert instance.routes[0] == (0, 1, 2, 3, 4)
    assert instance.times[0] == (60, 62, 50, 48, 55)
    assert release == (0,) * 60
    spec = env.unwrapped.task.spec
    half = dataclasses.replace(spec.jobs[3], times_s=(60.5, 62.0, 50.0, 48.0, 55.0))
    with pytest.raises(ValueError, match=r"job 3 operation 0 time = 60\.5 s is not a whole number"):
        instance_from_spec(dataclasses.replace(spec, jobs=(*spec.jobs[:3], half, *spec.jobs[4:])))


def test_the_baseline_predicts_one_observation_at_a_time():
    env = gym.make("smartline/Scheduling-v0", instance="ft06")
    obs, _ = env.reset(seed=0)
    baseline = make_baseline(env, "cpsat")
    with pytest.raises(ValueError, match="predicts one at a time, got 2"):
        baseline.predict(np.stack([obs, obs]))


def test_without_holding_the_plan_is_a_priority_rule_that_never_idles_a_station_with_work():
    env = gym.make("smartline/Scheduling-v0", instance="ft06")
    baseline = make_baseline(env, "cpsat", hold_for_plan=False)
    obs, _ = env.reset(seed=0)
    terminated, waits_while_jobs_wait = False, 0
    while not terminated:
        action = int(baseline.predict(obs)[0])
        waits_while_jobs_wait += action == 6 and bool(env.unwrapped.action_masks()[:6].any())
        obs, _, terminated, _, info = env.step(action)
    assert waits_while_jobs_wait == 0
    assert info["makespan"] > baseline.plan().makespan == 55  # ft06's optimum needs deliberate idle time


def test_holding_the_plan_never_waits_for_a_scrapped_job():
    """On flow5_orders parts are scrapped; a station held for a scrapped job's next operation idled for good."""

    def makespan_and_scrapped(rule: str) -> tuple[float, int]:
        env = gym.make("smartline/Scheduling-v0")
        baseline = make_baseline(env, rule, **({"time_limit_s": 5.0} if rule == "cpsat" else {}))
        obs, _ = env.reset(seed=20002)
        done = False
        while not done:
            obs, _, terminated, truncated, info = env.step(int(baseline.predict(obs)[0]))
            done = terminated or truncated
        return info["makespan"], int((env.unwrapped.frame.jobs.status == JobStatus.SCRAPPED).sum())

    (cpsat, scrapped), (spt, _) = makespan_and_scrapped("cpsat"), makespan_and_scrapped("spt")
    assert scrapped > 0  # the case: 5 jobs scrapped on this seed
    assert cpsat < 1.5 * spt  # 4,918 s against SPT's 3,639 s; waiting for the scrapped ones: 19,001 s


def test_hold_for_plan_must_be_a_bool_and_the_seed_an_integer():
    env = gym.make("smartline/Scheduling-v0", instance="ft06")
    with pytest.raises(ValueError, match="hold_for_plan must be true or false, got 'yes'"):
        make_baseline(env, "cpsat", hold_for_plan="yes")
    for seed in ("x", 1.7, True):  # 1.7 was cut to 1; "x" a ValueError naming nothing
        with pytest.raises(ValueError, match=f"seed must be an integer, got {seed!r}"):
            make_baseline(env, "cpsat", seed=seed)


def test_a_job_that_visits_a_machine_twice_is_solved_and_replayed(tmp_path):
    """Job 0 runs on m0, m1, m0 again; job 1 on m1, m0, m1 again; m2 stays unused. m0's load 12 is the optimum."""
    path = tmp_path / "loop.txt"
    path.write_text("2 3\n0 3 1 2 0 4\n1 2 0 5 1 1\n")
    instance = load_instance(path)
    plan = solve_cpsat(instance, time_limit_s=5.0)
    assert (plan.status, plan.makespan, plan.lower_bound) == ("OPTIMAL", 12, 12)
    np.testing.assert_array_equal(plan.starts, [[0, 3, 8], [0, 3, 8]])
    assert machine_orders(instance, plan.starts) == [[0, 1, 0], [1, 0, 1], []]
    with pytest.raises(ValueError, match=r"machine 0 order \[0, 1\] must hold jobs \[0, 0, 1\]"):
        semi_active(instance, [[0, 1], [1, 0, 1], []])
    env = gym.make("smartline/Scheduling-v0", instance=str(path))
    base = cast(SchedulingEnv, env.unwrapped)
    baseline = make_baseline(env, "cpsat")
    obs, _ = env.reset(seed=0)
    starts = np.zeros((2, 3))
    terminated = False
    while not terminated:
        action = int(baseline.predict(obs)[0])
        if action < instance.n_jobs:
            starts[action, int(base.frame.jobs.step[action])] = base.frame.time
        obs, _, terminated, _, info = env.step(action)
        assert not info["invalid_action"]
    assert info["makespan"] == 12
    np.testing.assert_array_equal(starts, plan.starts)
