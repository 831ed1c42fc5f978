"""The random-search trainer runs through experiments.train and exports the policy it found, exactly."""

from __future__ import annotations

import csv
import json
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from agents.artifact import PolicyArtifact
from agents.random_search import LinearPolicy, search_step
from agents.rollout import episode_kpis, run_episode
from experiments.build import ConfigError, check, make_env, tuned_baseline
from experiments.random_search import RandomSearch, _init_worker, _worker_return
from experiments.train import train
from tests.presets import compose_train

TINY_ARS = [
    "agent.iterations=2",
    "agent.directions=4",
    "agent.top=2",
    "agent.evaluate_every=1",
    "agent.workers=1",
    "warm_start.steps=120",
    "task.max_episode_steps=30",
    "evaluation.episodes=1",
    "final.episodes=2",
    "final.continuing_seeds=0",
    "progress_bar=false",
]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("preset", "rule"),
    [("energy_ars", "tou_energy"), ("factory_ars", "factory_rules"), ("inventory_ars", "ss_reorder")],
)
def test_ars_trains_exports_its_linear_policy_and_reports_it_against_the_rule(tmp_path, preset, rule):
    cfg = compose_train([f"experiment={preset}", *TINY_ARS, "agent.keep_best=false"])
    train(cfg, tmp_path)
    stored = np.load(tmp_path / "linear_policy.npz")
    policy = LinearPolicy(**{k: stored[k] for k in stored.files})
    artifact = PolicyArtifact.load(tmp_path / "artifact")
    assert artifact.manifest["algorithm"] == "ARS"  # what trained it, not the PPO actor that carries it
    env = make_env(cfg)
    try:
        obs, _ = env.reset(seed=20_000)
        observations = [obs]
        for _ in range(20):
            action, _ = artifact.predict(obs, deterministic=True)
            obs, *_ = env.step(action)
            observations.append(obs)
    finally:
        env.close()
    batch = np.array(observations)
    exported, _ = artifact.predict(batch, deterministic=True)
    np.testing.assert_allclose(exported, policy.predict(batch)[0], atol=1e-4)
    history = json.loads((tmp_path / "history.json").read_text())
    assert [h["iteration"] for h in history["evaluations"]] == [0, 1, 2]
    assert history["exported_iteration"] == 2  # the last: keep_best is off
    with (tmp_path / "final" / "episodes.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {r["policy"] for r in rows} == {"learned", f"{rule} (heuristic)"}
    assert {r["seed"] for r in rows} == {"20000", "20001"}


def test_keep_best_exports_the_policy_of_the_best_evaluation(tmp_path):
    cfg = compose_train(["experiment=energy_ars", *TINY_ARS, "agent.iterations=4", "agent.keep_best=true"])
    train(cfg, tmp_path)
    history = json.loads((tmp_path / "history.json").read_text())
    returns = {h["iteration"]: h["eval_mean_return"] for h in history["evaluations"]}
    assert len(set(returns.values())) > 1  # the evaluations differ, so the choice means something
    assert history["exported_iteration"] == max(returns, key=lambda k: returns[k])
    stored = np.load(tmp_path / "linear_policy.npz")
    env = make_env(cfg)
    try:
        policy = LinearPolicy(**{k: stored[k] for k in stored.files})
        kept = run_episode(env, policy, int(cfg.evaluation.seed)).total_reward
    finally:
        env.close()
    assert kept == pytest.approx(returns[history["exported_iteration"]])  # one evaluation episode: its return


def test_the_search_starts_as_the_rule_it_is_warm_started_from(tmp_path):
    cfg = compose_train(
        ["experiment=energy_ars", *TINY_ARS, "agent.iterations=1", "warm_start.steps=720", "task.max_episode_steps=720"]
    )
    trainer = RandomSearch(iterations=1, workers=1)
    env = make_env(cfg)
    try:
        start = trainer._start(cfg, env, iter(range(1_000_000, 1_000_100)), np.random.default_rng(0))
        rule = tuned_baseline(cfg, env, "tou_energy")
        obs, _ = env.reset(seed=10_000)
        gaps = []
        for _ in range(200):
            a_rule, _ = rule.predict(obs)
            gaps.append(np.abs(start.predict(obs)[0] - a_rule))
            obs, *_ = env.step(a_rule)
    finally:
        env.close()
    assert np.mean(gaps) < 0.05


def test_the_factory_search_starts_running_the_line_as_the_tuned_rule_does_for_a_week():
    """Its reorders, maintenance, modes and speeds: the rule's actions have an exact linear fit."""
    cfg = compose_train(["experiment=factory_ars", "warm_start.steps=2880", "task.max_episode_steps=5040"])
    trainer = RandomSearch(**{k: v for k, v in cfg.agent.items() if not str(k).startswith("_")})
    env = make_env(cfg)
    try:
        start = trainer._start(cfg, env, iter(range(1_000_000, 1_000_100)), np.random.default_rng(0))
        rule = tuned_baseline(cfg, env, "factory_rules")
        ours, theirs = (episode_kpis(e.kpis, e.info) for e in (run_episode(env, p, 10_000) for p in (start, rule)))
    finally:
        env.close()
    assert theirs["preventive_maintenances"] >= 1
    assert theirs["orders_placed"] >= 2
    for key in ("preventive_maintenances", "failures", "orders_placed", "stockout_h"):
        assert ours[key] == theirs[key], key
    for key in ("good_parts", "energy_cost"):
        assert ours[key] == pytest.approx(theirs[key], rel=0.005), key


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["agent.top=9"], r"top: must be at most directions \(8\), got 9"),
        (["agent.noise=0"], r"noise: must be > 0"),
        (["agent.workers=0"], r"workers: must be a positive whole number"),
    ],
)
def test_bad_search_settings_are_refused_naming_them(overrides, message):
    cfg = compose_train(["experiment=energy_ars", *overrides])
    params = {k: v for k, v in cfg.agent.items() if not str(k).startswith("_")}
    with pytest.raises(ValueError, match=message):
        RandomSearch(**params)


def test_the_factory_search_moves_speed_and_mode_components_only():
    cfg = compose_train(["experiment=factory_ars"])
    env = make_env(cfg)
    try:
        searched = RandomSearch(levers=tuple(cfg.agent.levers)).searched(env)
        names = [a.name for a in env.unwrapped.task.spec.actuators]
    finally:
        env.close()
    assert [n for n, s in zip(names, searched, strict=True) if s] == [
        f"{station}.{what}" for station in ("cut", "press", "weld", "paint", "assemble") for what in ("speed", "mode")
    ]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["experiment=factory_ars", "agent.levers=[speed,oops]"], r"^agent.levers: must be a list of some of dispatch"),
        (["experiment=energy_ars", "agent.levers=[reorder]"], r"^agent.levers: the task acts on mode, speed, not"),
        (["experiment=factory_ars", "agent.ridge=-1"], r"^agent.ridge: must be >= 0, got -1"),
        (["experiment=energy_ars", "agent.noise=abc"], r"^agent.noise: must be > 0, got 'abc'$"),
        (["experiment=energy_ars", "agent.ridge=null"], r"^agent.ridge: must be >= 0, got None$"),
        (["experiment=energy_ars", "agent.keep_best=abc"], r"^agent.keep_best: must be true or false, got 'abc'$"),
        (["experiment=factory_ars", "agent.levers=speed"], r"^agent.levers: must be a list .*, got 'speed'$"),
    ],
)
def test_search_settings_that_cannot_run_on_the_task_stop_at_check_naming_them(overrides, message):
    with pytest.raises(ConfigError, match=message):
        check(compose_train(overrides))


def test_random_search_on_a_discrete_task_is_a_config_error_naming_the_agent():
    quantities = ["task.kwargs.action=quantity", "task.kwargs.min_order_units=0.0"]  # no least order on quantities
    cfg = compose_train(["experiment=inventory", "agent=ars", *quantities])
    with pytest.raises(
        ConfigError, match=r"^agent._target_: RandomSearch drives Box actions; task Inventory acts in Discrete"
    ):
        check(cfg)


def test_a_settled_search_scores_each_run_after_it_has_run_the_line_itself(tmp_path):
    """With settle_episodes=1 every evaluation is the return of the second episode-length of a double-length run."""
    cfg = compose_train(["experiment=energy_ars", *TINY_ARS, "agent.keep_best=false", "agent.settle_episodes=1"])
    train(cfg, tmp_path)
    history = json.loads((tmp_path / "history.json").read_text())
    stored = np.load(tmp_path / "linear_policy.npz")
    policy = LinearPolicy(**{k: stored[k] for k in stored.files})
    seed = int(cfg.evaluation.seed)
    double = make_env(cfg, max_episode_steps=60)
    try:
        settled = run_episode(double, policy, seed, scored_from=30)
        whole = run_episode(double, policy, seed)
    finally:
        double.close()
    assert settled.steps == 60
    assert history["evaluations"][-1]["eval_mean_return"] == pytest.approx(settled.total_reward)
    first_half = whole.total_reward - settled.total_reward
    assert abs(first_half) > 1.0  # the unscored half earned something: leaving it out changes the score


def test_a_search_worker_scores_its_run_after_settling_as_the_evaluation_does():
    cfg = compose_train(["experiment=energy_ars", "task.max_episode_steps=30", "warm_start.steps=120"])
    env = make_env(cfg)
    try:
        start = RandomSearch()._start(cfg, env, iter(range(1_000_000, 1_000_100)), np.random.default_rng(0))
    finally:
        env.close()
    initargs = (OmegaConf.to_container(cfg, resolve=True), 60, 30)
    with ProcessPoolExecutor(1, initializer=_init_worker, initargs=initargs) as pool:
        returns = list(pool.map(_worker_return, [start, start], [1_000_000, 1_000_001]))
    double = make_env(cfg, max_episode_steps=60)
    try:
        for seed, got in zip((1_000_000, 1_000_001), returns, strict=True):
            expected = run_episode(double, start, seed, scored_from=30).total_reward
            assert got == pytest.approx(expected)
            assert expected != pytest.approx(run_episode(double, start, seed).total_reward)
    finally:
        double.close()


def test_settle_episodes_must_be_a_whole_number_of_episodes():
    with pytest.raises(ValueError, match=r"settle_episodes: must be a whole number >= 0, got -1"):
        RandomSearch(settle_episodes=-1)
    with pytest.raises(ValueError, match=r"workers: must be a positive whole number, got True"):
        RandomSearch(workers=True)


def test_a_search_that_fails_while_starting_closes_the_envs_it_opened(tmp_path, monkeypatch):
    """The settled search's second env fails to build: the first, already open, is closed, not leaked."""
    cfg = compose_train(["experiment=energy_ars", *TINY_ARS, "agent.settle_episodes=1"])
    closed: list[bool] = []

    def make_env_then_fail(cfg, max_episode_steps=None):
        if closed:
            raise RuntimeError("the scored env cannot be built")
        env = make_env(cfg, max_episode_steps=max_episode_steps)
        shut = env.close

        def spy() -> None:
            closed[0] = True
            shut()

        closed.append(False)
        env.close = spy
        return env

    monkeypatch.setattr("experiments.random_search.make_env", make_env_then_fail)
    search = instantiate(cfg.agent, _convert_="all")  # as experiments.train builds it
    with pytest.raises(RuntimeError, match="the scored env cannot be built"):
        search.fit(cfg, tmp_path)
    assert closed == [True]


def test_a_search_stopped_early_keeps_each_evaluated_policy_and_the_evaluations(tmp_path, monkeypatch):
    """Ctrl-C during a search kept only TensorBoard events: its policies and history were written at its end."""
    steps: list[LinearPolicy] = []

    def step_then_stop(*args, **kwargs):
        if len(steps) == 2:
            raise KeyboardInterrupt
        step = search_step(*args, **kwargs)
        steps.append(step.policy)
        return step

    monkeypatch.setattr("experiments.random_search.search_step", step_then_stop)
    cfg = compose_train(["experiment=energy_ars", *TINY_ARS, "agent.iterations=4"])
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path)
    history = json.loads((tmp_path / "history.json").read_text())
    assert [h["iteration"] for h in history["evaluations"]] == [0, 1, 2]
    assert history["exported_iteration"] is None  # the search did not end: nothing was exported
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "iteration_0.npz",
        "iteration_1.npz",
        "iteration_2.npz",
    ]
    for iteration, policy in ((1, steps[0]), (2, steps[1])):
        stored = np.load(tmp_path / "checkpoints" / f"iteration_{iteration}.npz")
        np.testing.assert_array_equal(stored["weights"], policy.weights)
        np.testing.assert_array_equal(stored["bias"], policy.bias)
    assert not (tmp_path / "artifact").exists()
