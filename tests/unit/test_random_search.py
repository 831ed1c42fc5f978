"""Random search: the linear policy, its least-squares start and one ARS step, on problems with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from agents.random_search import LinearPolicy, fit_linear, search_step

LOW, HIGH = -np.ones(2), np.ones(2)


def _policy(weights: np.ndarray, bias: np.ndarray) -> LinearPolicy:
    return LinearPolicy(weights, bias, np.zeros(3), np.ones(3), LOW, HIGH)


def test_fit_linear_recovers_a_linear_rule_and_standardises_by_the_data():
    rng = np.random.default_rng(0)
    obs = rng.normal([1.0, -2.0, 0.5], [0.5, 0.3, 0.01], size=(500, 3))
    true_w = np.array([[0.2, -0.1, 0.0], [0.0, 0.3, 0.0]])  # actions stay inside [-1, 1]
    actions = obs @ true_w.T + np.array([0.1, 0.2])
    policy = fit_linear(obs, actions, LOW, HIGH, std_floor=0.2, ridge=1e-9)
    assert policy.std[2] == pytest.approx(0.2)  # a near-constant feature gets the floor
    assert policy.std[0] == pytest.approx(0.5, rel=0.1)
    predicted, _ = policy.predict(obs)
    np.testing.assert_allclose(predicted, np.clip(actions, LOW, HIGH), atol=1e-4)


def test_the_folded_map_on_raw_observations_is_the_policy():
    rng = np.random.default_rng(1)
    policy = LinearPolicy(
        rng.normal(size=(2, 3)), rng.normal(size=2), rng.normal(size=3), rng.uniform(0.5, 2, 3), LOW, HIGH
    )
    obs = rng.normal(size=(50, 3))
    weights, bias = policy.folded()
    np.testing.assert_allclose(policy.predict(obs)[0], np.clip(obs @ weights.T + bias, LOW, HIGH), atol=1e-5)


def test_search_steps_climb_a_concave_return_towards_its_peak():
    target_w, target_b = np.array([[0.3, -0.2, 0.1], [0.0, 0.4, -0.3]]), np.array([0.2, -0.1])

    def returns(policies, seeds):
        return np.array([-np.sum((p.weights - target_w) ** 2) - np.sum((p.bias - target_b) ** 2) for p in policies])

    policy = _policy(np.zeros((2, 3)), np.zeros(2))
    rng = np.random.default_rng(0)
    start = -returns([policy], [0])[0]
    for i in range(200):
        policy = search_step(policy, returns, list(range(8 * i, 8 * i + 8)), rng, 0.03, 0.02, 4).policy
    assert -returns([policy], [0])[0] < 0.05 * start


def test_each_direction_meets_the_same_seed_plus_and_minus():
    seen: list[list[int]] = []

    def returns(policies, seeds):
        seen.append(list(seeds))
        assert len(policies) == len(seeds)
        return np.arange(len(seeds), dtype=float)

    search_step(_policy(np.zeros((2, 3)), np.zeros(2)), returns, [7, 8, 9], np.random.default_rng(0), 0.1, 0.1, 2)
    assert seen == [[7, 8, 9, 7, 8, 9]]


def test_common_seeds_cancel_noise_shared_by_both_runs_of_a_direction():
    target = np.array([0.5, -0.5])
    noise = np.random.default_rng(5).normal(0.0, 100.0, 10_000)  # per seed, 100x the signal, the same for + and -

    def returns(policies, seeds):
        return np.array([noise[s] - np.sum((p.bias - target) ** 2) for p, s in zip(policies, seeds, strict=True)])

    policy = _policy(np.zeros((2, 3)), np.zeros(2))
    rng = np.random.default_rng(0)
    cosines = []
    for i in range(20):
        moved = search_step(policy, returns, list(range(8 * i, 8 * i + 8)), rng, 0.05, 1.0, 8).policy
        step, towards = moved.bias - policy.bias, target - policy.bias
        cosines.append(step @ towards / (np.linalg.norm(step) * np.linalg.norm(towards)))
    assert np.mean(cosines) > 0.7  # each step heads for the peak although one run's noise is 100x the gain


def test_a_search_of_some_action_components_moves_only_their_rows_and_the_same_draws_as_a_full_one():
    target_w, target_b = np.array([[0.3, -0.2, 0.1], [0.0, 0.4, -0.3]]), np.array([0.2, -0.1])

    def returns(policies, seeds):
        return np.array([-np.sum((p.weights - target_w) ** 2) - np.sum((p.bias - target_b) ** 2) for p in policies])

    start = _policy(np.full((2, 3), 0.5), np.full(2, 0.5))
    seeds = list(range(8))
    some = search_step(start, returns, seeds, np.random.default_rng(3), 0.03, 0.02, 4, np.array([False, True]))
    every = search_step(start, returns, seeds, np.random.default_rng(3), 0.03, 0.02, 4, np.array([True, True]))
    full = search_step(start, returns, seeds, np.random.default_rng(3), 0.03, 0.02, 4)
    np.testing.assert_array_equal(some.policy.weights[0], start.weights[0])
    assert some.policy.bias[0] == start.bias[0]
    assert np.all(some.policy.weights[1] != start.weights[1])
    np.testing.assert_array_equal(every.policy.weights, full.policy.weights)  # all flags: the search as before
    with pytest.raises(ValueError, match=r"searched needs a flag per action component, \(2,\): \(3,\)"):
        search_step(start, returns, seeds, np.random.default_rng(3), 0.03, 0.02, 4, np.ones(3, dtype=bool))


@pytest.mark.parametrize(
    ("top", "noise", "step", "message"),
    [(0, 0.1, 0.1, "top must lie in 1..3"), (4, 0.1, 0.1, "top must lie in 1..3"), (1, 0.0, 0.1, "must be > 0")],
)
def test_search_step_refuses_bad_settings(top, noise, step, message):
    with pytest.raises(ValueError, match=message):
        search_step(
            _policy(np.zeros((2, 3)), np.zeros(2)),
            lambda p, s: np.zeros(len(s)),
            [1, 2, 3],
            np.random.default_rng(0),
            noise,
            step,
            top,
        )
