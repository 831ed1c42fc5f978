"""No free levers: a degenerate policy that pulls one lever to its end scores worse than the line's rule."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

import envs  # noqa: F401  (registers the ids)
from agents.baselines import make_baseline
from agents.rollout import run_episode
from envs.setpoint import SetpointTask
from hardware import Lever

SEEDS = (0, 1)


class _Fixed:
    """A policy that always answers the same action."""

    def __init__(self, action: np.ndarray) -> None:
        self.action = action

    def predict(self, observation: Any, state: Any = None, episode_start: Any = None, deterministic: bool = False):
        return self.action, state


class _OrderMax:
    """The Factory rules, but ordering the largest quantity at every tick."""

    def __init__(self, env: gym.Env) -> None:
        self.rules = make_baseline(env, "factory_rules")
        task: SetpointTask = env.unwrapped.task
        acts = [a for a in task.spec.actuators if a.lever in task.levers]
        self.order = next(k for k, a in enumerate(acts) if a.lever is Lever.REORDER)

    def predict(self, observation: Any, state: Any = None, episode_start: Any = None, deterministic: bool = False):
        action, _ = self.rules.predict(observation)
        action = np.array(action, copy=True)
        action[self.order] = 1.0
        return action, state


def test_ordering_the_maximum_every_tick_scores_worse_than_the_factory_rules():
    env = gym.make("smartline/Factory-v0")
    for seed in SEEDS:
        rules = run_episode(env, make_baseline(env, "factory_rules"), seed)
        greedy = run_episode(env, _OrderMax(env), seed)
        assert greedy.kpis.orders_placed > 10 * max(rules.kpis.orders_placed, 1)
        assert greedy.kpis.stock_unit_h > rules.kpis.stock_unit_h
        assert greedy.total_reward < rules.total_reward


def test_running_flat_out_and_scrapping_scores_worse_than_the_line_rule_and_pays_for_its_scrap():
    env = gym.make("smartline/Energy-v0")
    n = len(env.unwrapped.line.spec.stations)
    flat_out = np.array([1.0] * n + [0.0] * n, dtype=np.float32)  # every station at its top speed, running
    line_rule = np.zeros(2 * n, dtype=np.float32)  # nominal speed, always run
    for seed in SEEDS:
        rule = _rollout_terms(env, _Fixed(line_rule), seed)
        fast = _rollout_terms(env, _Fixed(flat_out), seed)
        assert fast["scrap_parts"] > rule["scrap_parts"]
        assert fast["reward/scrap"] == -env.unwrapped.task.weights.scrap_cost * fast["scrap_parts"]
        assert fast["reward/wear"] < rule["reward/wear"]
        assert fast["return"] < rule["return"]


def _rollout_terms(env: gym.Env, policy: _Fixed, seed: int) -> dict[str, float]:
    """Return, scrapped parts and the summed reward terms of one episode."""
    env.reset(seed=seed)
    sums: dict[str, float] = {"return": 0.0}
    done = False
    while not done:
        _, reward, term, trunc, info = env.step(policy.action)
        sums["return"] += float(reward)
        for key, value in info.items():
            if key.startswith("reward/"):
                sums[key] = sums.get(key, 0.0) + value
        done = term or trunc
    sums["scrap_parts"] = float(info["kpis"].scrap_parts)
    return sums
