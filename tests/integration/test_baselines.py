"""Baselines as SB3 policies on the registered envs, and what each rule buys on the default line."""

from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import DummyVecEnv

import envs  # noqa: F401  (registers the ids)
from agents.baselines import BASELINES, Rule, configured_params, make_baseline
from configs import CONFIG_DIR, config_file
from experiments.build import make_env
from hardware.twin import TwinLine
from tests.unit.test_baselines import TASK_OF

FT06_OPTIMUM = 55.0


@pytest.mark.parametrize("name", list(BASELINES))
def test_evaluate_policy_runs_every_baseline(name):
    task = TASK_OF[name]
    if task == "Scheduling":
        env = gym.make("smartline/Scheduling-v0", instance="ft06")
    else:
        env = gym.make(f"smartline/{task}-v0", max_episode_steps=50)
    rewards, lengths = evaluate_policy(
        make_baseline(env, name), env, n_eval_episodes=2, return_episode_rewards=True, warn=False
    )
    assert np.isfinite(rewards).all()
    if task != "Scheduling":
        assert lengths == [50, 50]


def ft06_makespan(rule: str) -> float:
    env = gym.make("smartline/Scheduling-v0", instance="ft06")
    baseline = make_baseline(env, rule)
    obs, _ = env.reset(seed=0)
    terminated = False
    while not terminated:
        obs, _, terminated, _, info = env.step(baseline.predict(obs, deterministic=True)[0])
    return info["makespan"]


def test_dispatching_rules_give_reasonable_and_different_ft06_makespans():
    makespans = {rule.value: ft06_makespan(rule.value) for rule in Rule}
    print("ft06 makespans:", makespans)  # the figures, with pytest -s
    assert all(FT06_OPTIMUM <= m <= 2 * FT06_OPTIMUM for m in makespans.values())
    assert any(m != makespans["fifo"] for m in makespans.values())
    assert makespans == {rule.value: ft06_makespan(rule.value) for rule in Rule}  # deterministic


def failures(name: str, seed: int) -> int:
    env = gym.make("smartline/Maintenance-v0", max_episode_steps=7 * 288)  # a week of 5-minute ticks
    baseline = make_baseline(env, name)
    obs, _ = env.reset(seed=seed)
    truncated = False
    while not truncated:
        obs, _, _, truncated, info = env.step(baseline.predict(obs)[0])
    return info["kpis"].failures


def test_condition_based_maintenance_fails_less_than_reactive_over_a_week():
    """Same seeds, same machines: the rule only acts once vibration shows wear, then fewer failures follow.

    Seeds 0-9 each give condition-based at most as many failures as reactive (22 against 38 in all).
    """
    seeds = (0, 1, 2)
    assert sum(failures("condition_based", s) for s in seeds) < sum(failures("reactive", s) for s in seeds)


# the supplier is out from day 2 for two days: long enough for the stock a rule keeps to matter
OUTAGE = [{"kind": "supplier_outage", "start_s": 86400.0, "duration_s": 172800.0}]


def stockout_h(seed: int, **params: float) -> float:
    env = gym.make("smartline/Inventory-v0", scenario=OUTAGE, start="cold")  # three days from time 0, as below
    baseline = make_baseline(env, "ss_reorder", **params)
    obs, _ = env.reset(seed=seed)
    truncated = False
    while not truncated:
        obs, _, _, truncated, info = env.step(baseline.predict(obs)[0])
    return info["kpis"].stockout_time_s / 3600.0


def line_rule_stockout_h(seed: int) -> float:
    """The same line and scenario with reorders left to the line's own reorder-point rule."""
    line = TwinLine.from_yaml(config_file("line", "flow5"), seed=seed, scenarios=OUTAGE)
    line.reset()
    return line.advance(3 * 86400.0).kpis.stockout_time_s / 3600.0


@pytest.mark.parametrize("seed", [0, 1])
def test_ss_reorder_stocks_out_no_longer_than_the_line_rule_in_a_supplier_outage(seed):
    """By default (s, S) is the line's own rule (s and S = s + Q): the outage outlasts the stock either way.

    Raising s to cover the outage is the lever the rule gives a plant engineer.
    """
    line_rule = line_rule_stockout_h(seed)
    assert line_rule > 10.0
    assert stockout_h(seed) <= line_rule + 1e-6
    assert stockout_h(seed, reorder_point_units=1500.0, order_up_to_units=4000.0) < line_rule / 2


def test_an_observation_rule_evaluates_on_a_vectorised_env_like_a_policy():
    vec = DummyVecEnv([lambda: gym.make("smartline/Scheduling-v0", instance="la01")] * 2)
    rule = make_baseline(vec.envs[0], "mwkr")
    rewards, _ = evaluate_policy(rule, vec, n_eval_episodes=4, return_episode_rewards=True, warn=False)
    assert rewards == [-735.0] * 4  # the deterministic instance: every episode the same schedule


@pytest.mark.parametrize("name", list(BASELINES))
def test_every_heuristic_config_instantiates_through_hydra_with_its_parameters(name):
    """`agent=<name>` builds the rule the way `make_baseline(env, name)` does, and overrides reach it."""
    task = TASK_OF[name].lower()
    line = "flow5_orders" if task == "scheduling" else "flow5"
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        quick = ["agent.time_limit_s=1"] if name == "cpsat" else []  # the solver's limit, not the rule, is tested here
        cfg = compose("train", overrides=[f"agent={name}", f"task={task}", f"line={line}", *quick])
    env = make_env(cfg)
    built = instantiate(cfg.agent, env=env)
    plain = make_baseline(env, name, **({"time_limit_s": 1} if quick else {}))
    assert type(built) is type(plain)
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(built.predict(obs)[0], plain.predict(obs)[0])
    for key, value in (configured_params(name) | ({"time_limit_s": 1} if quick else {})).items():
        assert cfg.agent[key] == value


def test_a_command_line_override_reaches_the_rule():
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["agent=condition_based", "task=maintenance", "agent.threshold_mm_s.weld=3.5"])
    rule = instantiate(cfg.agent, env=make_env(cfg))
    assert rule.trigger.threshold_mm_s.tolist() == [3.78, 6.24, 3.5, 2.468, 3.78]


def flow5_with(**changes: dict) -> dict:
    """flow5's definition with some of its hidden parameters changed (`section={key: value}` merged in)."""
    definition = copy.deepcopy(yaml.safe_load(config_file("line", "flow5").read_text()))
    for section, values in changes.items():
        node = definition
        *path, last = section.split(".")
        for key in path:
            node = node[key]
        node[last] = {**node.get(last, {}), **values}
    return definition


HIDDEN_RULES = [
    ("Factory", "factory_rules"),
    ("Inventory", "ss_reorder"),
    ("Maintenance", "condition_based"),
    ("Maintenance", "fixed_interval"),
    ("Energy", "tou_energy"),
]


@pytest.mark.parametrize(("task", "name"), HIDDEN_RULES)
def test_a_baseline_ignores_the_twins_hidden_parameters(task, name):
    """Same parameters, and the same actions on the same physical readings, whatever the line hides.

    The changed line has another reorder rule, a cnc that vibrates more as it wears and another
    tariff; the spec shows only their effect on the sensor ranges, so each env encodes the same
    frame on its own ranges and the rule must decode both to the same decision.
    """
    hidden = flow5_with(
        supply={"reorder_point_units": 300.0, "order_quantity_units": 4000.0},
        **{"machines.cnc": {"sensors": {"vibration_wear_gain": 9.0, "vibration_busy_mm_s": 3.0}}},
        grid={"tariff": [{"from_hour": 0, "price_per_kwh": 0.15}, {"from_hour": 18, "price_per_kwh": 0.35}]},
    )
    shipped = gym.make(f"smartline/{task}-v0", line="flow5").unwrapped
    changed = gym.make(f"smartline/{task}-v0", line=hidden).unwrapped
    assert changed.line.params.supply.reorder_point_units == 300.0  # the change took
    a, b = make_baseline(shipped, name), make_baseline(changed, name)
    assert parameters(a) == parameters(b)
    changed.reset(seed=0)
    frames = [changed.frame]
    for _ in range(40):
        changed.step(changed.action_space.sample())
        frames.append(changed.frame)
    on_shipped = a.predict(np.stack([shipped.task.observe(f) for f in frames]))[0]
    on_changed = b.predict(np.stack([changed.task.observe(f) for f in frames]))[0]
    np.testing.assert_allclose(on_shipped, on_changed, atol=1e-6)


def parameters(baseline) -> dict[str, object]:
    """The parameters a baseline holds, by name (thresholds as lists)."""
    out = {}
    for key in ("price_threshold_per_kwh", "interval_h"):
        if hasattr(baseline, key):
            out[key] = getattr(baseline, key)
    if hasattr(baseline, "trigger"):
        out["threshold_mm_s"] = baseline.trigger.threshold_mm_s.tolist()
    if hasattr(baseline, "reorder"):
        out["s"], out["S"] = baseline.reorder.reorder_point_units, baseline.reorder.order_up_to_units
    return out
