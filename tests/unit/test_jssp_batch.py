"""The batched job-shop schedule builder: valid schedules, hand-checked makespans, the platform env's rules."""

from __future__ import annotations

import itertools

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401  # registers the smartline/ envs
from agents.dispatching import DispatchRule
from envs.jobshop import Instance, ScheduleError, check_schedule, load_instance
from envs.jssp_batch import (
    FEATURES,
    MACHINE_FEATURES,
    N_FEATURES,
    N_MACHINE_FEATURES,
    N_OPERATION_FEATURES,
    ActionSet,
    InstanceBatch,
    ScheduleBuilder,
    generate_instances,
)

# Priority keys over the builder's features, lower first: SPT, MWKR and MOPNR.
RULE_KEYS = {"spt": (0, 1.0), "mwkr": (7, -1.0), "mopnr": (8, -1.0)}


def run_rule(instance: Instance, rule: str, action_set: str = "non_delay") -> ScheduleBuilder:
    column, sign = RULE_KEYS[rule]
    builder = ScheduleBuilder(InstanceBatch.of([instance]), 1, action_set)
    while not builder.done:
        features, mask, _ = builder.observe()
        key = np.where(mask, sign * features[..., column], np.inf)
        builder.step(np.argmax(key <= key.min(axis=1, keepdims=True), axis=1))  # ties: the lowest job id
    return builder


def env_makespan(name: str, rule: str) -> float:
    env = gym.make("smartline/Scheduling-v0", instance=name)
    policy = DispatchRule(env, rule)
    obs, _ = env.reset(seed=0)
    done = False
    while not done:
        action, _ = policy.predict(obs[None])
        obs, _, terminated, truncated, info = env.step(int(action[0]))
        done = terminated or truncated
    env.close()
    return float(info["makespan"])


def test_a_hand_checked_two_job_schedule():
    # job 0: m0 for 3, then m1 for 2; job 1: m1 for 2, then m0 for 4
    instance = Instance("two", 2, ((0, 1), (1, 0)), ((3, 2), (2, 4)))
    builder = ScheduleBuilder(InstanceBatch.of([instance]), 1, "all")
    for job in (0, 1, 0, 1):
        builder.step(np.array([job]))
    np.testing.assert_array_equal(builder.starts[0], [[0, 3], [0, 3]])
    assert builder.makespan[0] == 7
    assert check_schedule(instance, builder.starts[0]) == 7
    with pytest.raises(ScheduleError, match="already complete"):
        builder.step(np.array([0]))


def test_hand_checked_operation_features():
    # three jobs on two machines: u = 17/6, job work 5, 6 and 6, machine loads 8 (m0) and 9 (m1),
    # lower bound 9; per job u * 2 operations, per machine u * 3 jobs
    instance = Instance("three", 2, ((0, 1), (1, 0), (0, 1)), ((3, 2), (2, 4), (1, 5)))
    f = InstanceBatch.of([instance]).operation_features()[0]
    assert f.shape == (3, 2, N_OPERATION_FEATURES)
    assert f.dtype == np.float32
    u, lb = 17 / 6, 9.0
    per_job, per_machine = 2 * u, 3 * u
    expected = [
        [
            [3 / u, 0, 5 / per_job, 5 / lb, 8 / per_machine, 8 / lb, 5 / lb],
            [2 / u, 0.5, 2 / per_job, 2 / lb, 9 / per_machine, 9 / lb, 5 / lb],
        ],
        [
            [2 / u, 0, 6 / per_job, 6 / lb, 9 / per_machine, 9 / lb, 6 / lb],
            [4 / u, 0.5, 4 / per_job, 4 / lb, 8 / per_machine, 8 / lb, 6 / lb],
        ],
        [
            [1 / u, 0, 6 / per_job, 6 / lb, 8 / per_machine, 8 / lb, 6 / lb],
            [5 / u, 0.5, 5 / per_job, 5 / lb, 9 / per_machine, 9 / lb, 6 / lb],
        ],
    ]
    np.testing.assert_allclose(f, expected, rtol=1e-6)


def test_hand_checked_machine_state():
    # the three jobs above after job 2's first operation (machine 0, 0 to 1): machine 0 is booked
    # until 1 with 7 left on it, machine 1 free with 9; the frontier is 0 (job 1 on machine 1), the
    # bound 9 (machine 1's load)
    instance = Instance("three", 2, ((0, 1), (1, 0), (0, 1)), ((3, 2), (2, 4), (1, 5)))
    builder = ScheduleBuilder(InstanceBatch.of([instance]), 2, "all")
    builder.step(np.array([2, 2]))
    machines, route_left = builder.observe_machines()
    assert machines.shape == (2, 2, N_MACHINE_FEATURES) == (2, 2, len(MACHINE_FEATURES))
    assert machines.dtype == route_left.dtype == np.float32
    u, per_machine = 17 / 6, 3 * 17 / 6
    expected = [[1 / u, 7 / per_machine, 8 / 9, 1 / 3, 2 / 3], [0.0, 9 / per_machine, 1.0, 2 / 3, 1.0]]
    np.testing.assert_allclose(machines, [expected, expected], rtol=1e-6)
    np.testing.assert_allclose(route_left[0], [[0.5, 0.5], [0.5, 0.5], [0.0, 1.0]])
    builder.step(np.array([2, 0]))  # rollout 0 finishes job 2, rollout 1 starts job 0
    _, route_left = builder.observe_machines()
    np.testing.assert_allclose(route_left, [[[0.5, 0.5], [0.5, 0.5], [0.0, 0.0]], [[0.0, 1.0], [0.5, 0.5], [0.0, 1.0]]])


def test_machine_state_matches_its_definition_on_random_schedules():
    batch = generate_instances(2, 6, 4, seed=11)
    builder = ScheduleBuilder(batch, 3, "active")
    rng = np.random.default_rng(0)
    while not builder.done:
        machines, route_left = builder.observe_machines()
        for r in range(builder.n_rollouts):
            routes = batch.routes[r // 3]
            left = [(j, k) for j in range(6) for k in range(builder.next_op[r, j], 4)]
            for m in range(4):
                on_m = [(j, k) for j, k in left if routes[j, k] == m]
                assert machines[r, m, 4] == pytest.approx(len(on_m) / 6)
                queued = sum(routes[j, builder.next_op[r, j]] == m for j in range(6) if builder.next_op[r, j] < 4)
                assert machines[r, m, 3] == pytest.approx(queued / 6)
                for j in range(6):
                    n_left = 4 - builder.next_op[r, j]
                    share = sum(1 for jj, _ in on_m if jj == j) / n_left if n_left else 0.0
                    assert route_left[r, j, m] == pytest.approx(share)
        mask = builder.mask()
        builder.step(np.array([rng.choice(np.flatnonzero(row)) for row in mask]))


@pytest.mark.parametrize(("rule", "makespan"), [("spt", 88), ("mwkr", 61), ("mopnr", 59)])
def test_ft06_under_a_rule_agrees_with_the_platform_scheduling_env(rule, makespan):
    builder = run_rule(load_instance("ft06"), rule)
    assert builder.makespan[0] == makespan
    assert env_makespan("ft06", rule) == makespan


@pytest.mark.parametrize("action_set", list(ActionSet))
def test_random_choices_build_valid_schedules_on_every_action_set(action_set):
    batch = generate_instances(3, 8, 5, seed=1)
    builder = ScheduleBuilder(batch, samples=4, action_set=action_set)
    rng = np.random.default_rng(0)
    while not builder.done:
        features, mask, machine = builder.observe()
        assert features.shape == (12, 8, N_FEATURES) == (12, 8, len(FEATURES))
        assert np.isfinite(features).all()
        assert mask.any(axis=1).all()
        assert ((machine >= 0) | ~mask).all()
        builder.step(np.argmax(np.where(mask, rng.random(mask.shape), -1.0), axis=1))
    for r in range(builder.n_rollouts):
        b = r // 4
        generated = Instance("generated", 5, tuple(map(tuple, batch.routes[b])), tuple(map(tuple, batch.times[b])))
        assert check_schedule(generated, builder.starts[r]) == builder.makespan[r]
        assert builder.makespan[r] >= batch.lower_bound()[b]


def test_action_sets_nest_and_the_active_set_keeps_the_optimum_of_small_instances():
    # every sequence of job choices of a 3x3 instance: 9! / (3! 3! 3!) = 1680 schedules
    sequences = np.array(sorted(set(itertools.permutations([0, 0, 0, 1, 1, 1, 2, 2, 2]))))
    for seed in range(2):
        batch = generate_instances(1, 3, 3, seed=seed, time_high=9)
        builders = {a: ScheduleBuilder(batch, len(sequences), a) for a in ActionSet}
        allowed = {a: np.ones(len(sequences), dtype=bool) for a in ActionSet}
        for t in range(sequences.shape[1]):
            masks = {a: b.observe()[1] for a, b in builders.items()}
            assert (masks[ActionSet.NON_DELAY] <= masks[ActionSet.ACTIVE]).all()
            assert (masks[ActionSet.ACTIVE] <= masks[ActionSet.ALL]).all()
            for a, b in builders.items():
                allowed[a] &= masks[a][np.arange(len(sequences)), sequences[:, t]]
                b.step(sequences[:, t])
        makespan = builders[ActionSet.ALL].makespan
        assert allowed[ActionSet.ALL].all()
        assert makespan[allowed[ActionSet.ACTIVE]].min() == makespan.min()
        assert allowed[ActionSet.ACTIVE].sum() < len(sequences)


def test_generated_instances_follow_taillard():
    batch = generate_instances(200, 15, 15, seed=7)
    assert batch.routes.shape == batch.times.shape == (200, 15, 15)
    assert (np.sort(batch.routes, axis=2) == np.arange(15)).all()  # every machine once per job
    assert batch.times.min() == 1
    assert batch.times.max() == 99
    assert abs(batch.times.mean() - 50.0) < 0.6  # uniform 1..99: mean 50, standard error 0.13
    counts = np.bincount(batch.routes[:, :, 0].ravel(), minlength=15)
    assert counts.min() > 150  # 3000 first operations over 15 machines: 200 each expected
    again = generate_instances(200, 15, 15, seed=7)
    np.testing.assert_array_equal(again.times, batch.times)
    assert not np.array_equal(generate_instances(200, 15, 15, seed=8).times, batch.times)


def test_bad_input_is_named():
    batch = generate_instances(1, 3, 3, seed=0)
    with pytest.raises(ScheduleError, match="action_set 'greedy'"):
        ScheduleBuilder(batch, 1, "greedy")
    builder = ScheduleBuilder(batch, 2)
    with pytest.raises(ScheduleError, match="need 2 job ids"):
        builder.step(np.array([0]))
    with pytest.raises(ScheduleError, match="times must be > 0"):
        InstanceBatch(batch.routes, np.zeros_like(batch.times), 3)
    with pytest.raises(ScheduleError, match="one size"):
        InstanceBatch.of([load_instance("ft06"), load_instance("la01")])


@pytest.mark.parametrize("action_set", list(ActionSet))
def test_a_caller_may_edit_the_mask_it_is_given(action_set):
    # the builder caches a step's candidates; a mask handed out must not alias them
    builder = ScheduleBuilder(generate_instances(1, 4, 3, seed=2), samples=2, action_set=action_set)
    expected = builder.mask().copy()
    builder.mask()[:] = False
    builder.observe()[1][:] = False
    assert (builder.mask() == expected).all()
    assert (builder.observe()[1] == expected).all()
