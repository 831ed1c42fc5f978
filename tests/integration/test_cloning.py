"""Warm start: a heuristic cloned into PPO's policy acts as the heuristic does, on states of its own making."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import SAC

from agents.warm_start import Demonstrations, clone, collect, discounted_returns, perturbed
from experiments.build import ConfigError, check, make_agent, make_env, make_vec_env, tuned_baseline
from tests.presets import compose_train

ENERGY = ["experiment=energy", "n_envs=2", "progress_bar=false"]


@pytest.fixture
def energy():
    """The Energy preset's config, its two training envs (normalised) and one plain env, closed after."""
    cfg = compose_train(ENERGY)
    venv = make_vec_env(cfg)
    env = make_env(cfg)
    yield cfg, venv, env
    venv.close()
    env.close()


def test_discounted_returns_restart_at_each_episode_end():
    rewards = np.array([[1.0, 2.0], [1.0, 2.0], [1.0, 2.0]])
    ends = np.array([[False, True], [False, False], [False, False]])
    out = discounted_returns(rewards, ends, 0.5)
    assert out[:, 0] == pytest.approx([1.75, 1.5, 1.0])
    assert out[:, 1] == pytest.approx([2.0, 3.0, 2.0])  # the first step ended its episode


def test_collect_records_the_heuristics_action_not_the_noisy_one_it_executed(energy):
    cfg, venv, env = energy
    rule = tuned_baseline(cfg, env, "tou_energy")
    demos = collect(venv, rule, 301, gamma=0.95, noise=0.3, seed=1)
    assert demos.observations.shape == (302, venv.observation_space.shape[0])  # whole vector steps
    assert demos.actions.shape == (302, venv.action_space.shape[0])
    raw = venv.unnormalize_obs(demos.observations)
    expected, _ = rule.predict(raw)
    np.testing.assert_allclose(demos.actions, expected, atol=1e-6)
    encoder = env.unwrapped.task.encoder
    speeds = raw[:, [encoder.column(n) for n in encoder.names if n.endswith(".speed_ratio")]]
    assert speeds.std() > 0.01  # the noise moved the line off the rule's one speed


def test_collect_refuses_a_negative_noise_and_no_steps(energy):
    cfg, venv, env = energy
    rule = tuned_baseline(cfg, env, "tou_energy")
    with pytest.raises(ValueError, match="noise must be >= 0"):
        collect(venv, rule, 10, 0.95, noise=-0.1)
    with pytest.raises(ValueError, match="steps must be a positive whole number"):
        collect(venv, rule, 0, 0.95)


def _closed_loop(env, policy, seed: int, steps: int) -> tuple[float, np.ndarray]:
    """Return over `steps` and the actions `policy` took, driving `env` itself from `seed`."""
    obs, _ = env.reset(seed=seed)
    total, actions = 0.0, []
    for _ in range(steps):
        action, _ = policy.predict(obs, deterministic=True)
        actions.append(np.asarray(action))
        obs, reward, *_ = env.step(action)
        total += float(reward)
    return total, np.array(actions)


def test_a_cloned_policy_drives_the_line_as_the_rule_does_on_a_held_out_seed(energy):
    cfg, venv, env = energy
    model = make_agent(cfg, venv, None)
    rule = tuned_baseline(cfg, env, "tou_energy")
    demos = collect(venv, rule, 6000, gamma=0.95, noise=0.2)
    result = clone(model, demos, epochs=8, batch_size=256, learning_rate=1e-3)
    assert result.steps == 6000
    assert result.action_loss < 0.01

    def learned_predict(obs, deterministic=True):
        return model.predict(venv.normalize_obs(obs), deterministic=deterministic)

    class Learned:
        predict = staticmethod(learned_predict)

    rule_return, _ = _closed_loop(env, rule, 20_000, 360)
    cloned_return, cloned_actions = _closed_loop(env, Learned, 20_000, 360)
    speed = cloned_actions[:, ::2]  # speed and mode alternate per station
    assert np.abs(speed - (-0.5)).mean() < 0.05  # the rule's 0.75 of nominal, not the untrained 1.0
    assert cloned_return == pytest.approx(rule_return, rel=0.03)


def _values(model, observations: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model.policy.predict_values(torch.as_tensor(observations)).flatten().numpy()


def test_cloning_fits_the_critic_to_the_demonstrated_returns(energy):
    cfg, venv, env = energy
    model = make_agent(cfg, venv, None)
    demos = collect(venv, tuned_baseline(cfg, env, "tou_energy"), 2000, gamma=0.95, noise=0.2)
    spread = float(np.mean((demos.returns - demos.returns.mean()) ** 2))
    untrained = float(np.mean((_values(model, demos.observations) - demos.returns) ** 2))
    result = clone(model, demos, epochs=10, batch_size=128, learning_rate=1e-3)
    trained = float(np.mean((_values(model, demos.observations) - demos.returns) ** 2))
    assert trained == pytest.approx(result.value_loss, rel=0.2)
    assert trained < 0.9 * spread < untrained  # better than the best constant; the untrained critic is not


def test_an_off_policy_agent_cannot_be_cloned_into():
    cfg = compose_train(["task=energy", "agent=sac", "n_envs=1"])
    venv = make_vec_env(cfg)
    try:
        model = make_agent(cfg, venv, None)
        assert isinstance(model, SAC)
        demos = Demonstrations(np.zeros((4, 1), np.float32), np.zeros((4, 1), np.float32), np.zeros(4, np.float32))
        with pytest.raises(TypeError, match="cannot be warm-started: cloning needs a feed-forward actor-critic"):
            clone(model, demos, 1, 4, 1e-3)
    finally:
        venv.close()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["warm_start.heuristic=tou_enrgy"],
            r"^warm_start.heuristic: 'tou_enrgy' is not a heuristic \(did you mean tou_energy\?\)",
        ),
        (["warm_start.heuristic=reactive"], r"^warm_start.heuristic: .*drives MaintenanceTask"),
        (
            ["warm_start.heuristic=tou_energy", "agent=sac"],
            r"^warm_start.heuristic: cloning a heuristic needs an on-policy SB3 agent .* not SAC",
        ),
        (
            ["warm_start.heuristic=tou_energy", "warm_start.steps=0"],
            r"^warm_start.steps: must be a positive whole number, got 0",
        ),
        (
            ["warm_start.heuristic=tou_energy", "warm_start.noise=-1"],
            r"^warm_start.noise: must be a finite number >= 0, got -1",
        ),
        (
            ["warm_start.heuristic=tou_energy", "warm_start.learning_rate=0"],
            r"^warm_start.learning_rate: must be a finite number > 0",
        ),
    ],
)
def test_a_warm_start_that_cannot_run_is_a_config_error_naming_its_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        check(compose_train(["experiment=energy", *overrides]))


def test_a_rule_of_binary_requests_is_cloned_into_a_multibinary_policy():
    cfg = compose_train(["task=maintenance", "n_envs=1", "progress_bar=false"])
    venv, env = make_vec_env(cfg), make_env(cfg)
    try:
        model = make_agent(cfg, venv, None)
        rule = tuned_baseline(cfg, env, "condition_based")
        demos = collect(venv, rule, 600, gamma=0.99, noise=0.0)
        result = clone(model, demos, epochs=20, batch_size=64, learning_rate=3e-3)  # int8 labels crashed here
        assert np.isfinite(result.action_loss)
        predicted, _ = model.predict(demos.observations, deterministic=True)
        assert (predicted == demos.actions).all(axis=1).mean() > 0.95
    finally:
        venv.close()
        env.close()


def test_a_policy_that_cannot_be_cloned_into_is_refused_before_any_work():
    cfg = compose_train(["task=scheduling", "line=flow5_orders", "agent=maskable_ppo", "warm_start.heuristic=spt"])
    with pytest.raises(ConfigError, match=r"^warm_start.heuristic: MaskablePPO \(MaskableActorCriticPolicy\) cannot"):
        check(cfg)


@pytest.mark.parametrize(
    ("space", "action"),
    [(gym.spaces.Discrete(9), np.zeros(20_000, dtype=np.int64)), (gym.spaces.MultiBinary(5), np.zeros((20_000, 5)))],
)
def test_a_discrete_rollout_executes_a_random_action_at_the_noise_rate(space, action):
    """At rate 0.2, a fifth of the actions are redrawn (some redraws land on the rule's own action)."""
    space.seed(0)
    out = perturbed(action, space, 0.2, np.random.default_rng(0))
    changed = (out != action).reshape(len(action), -1).any(axis=1).mean()
    same_by_chance = 1 / 9 if isinstance(space, gym.spaces.Discrete) else 1 / 32
    assert changed == pytest.approx(0.2 * (1 - same_by_chance), abs=0.01)
