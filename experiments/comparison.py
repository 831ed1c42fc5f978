"""Run policies side by side: per-episode on held-out seeds, then continuing operation without reset.

Both train's final table and `evaluate` use `compare`, so every evaluation table shows what a
policy scores in one episode and what it does to the line over days of continuing operation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
from omegaconf import DictConfig

from agents.rollout import Policy, run_episode
from experiments.build import continuing_steps, make_env
from experiments.report import EPISODE, Row, continuing_mode, episode_row

Policies = Callable[[gym.Env[Any, Any]], Sequence[tuple[str, Policy]]]  # labelled policies built on an env


def run_rows(
    cfg: DictConfig,
    policies: Policies,
    scenario: str | None,
    label: str,
    seeds: Sequence[int],
    mode: str = EPISODE,
    max_episode_steps: int | None = None,
) -> list[Row]:
    """Each policy on each seed of one env of the configured task; rows labelled `label` and `mode`."""
    env = make_env(cfg, scenario=scenario, max_episode_steps=max_episode_steps)
    try:
        return [
            episode_row(name, label, run_episode(env, policy, s), mode) for name, policy in policies(env) for s in seeds
        ]
    finally:
        env.close()


def compare(
    cfg: DictConfig,
    policies: Policies,
    scenario: str | None,
    label: str,
    seeds: Sequence[int],
    continuing_days: float,
    continuing_seeds: int,
) -> tuple[list[Row], str | None]:
    """Per-episode rows on `seeds`, then `continuing_days` without reset on the first `continuing_seeds`.

    Returns the rows and a note when there is no continuing run (none asked for, or a task
    without a control period, such as Scheduling's fixed job set), else None.
    """
    rows = run_rows(cfg, policies, scenario, label, seeds)
    if continuing_seeds <= 0:
        return rows, "no continuing run: continuing_seeds is 0"
    probe = make_env(cfg, scenario=scenario)
    try:
        steps = continuing_steps(probe, continuing_days)
    finally:
        probe.close()
    if steps is None:
        return rows, f"no continuing run: task {cfg.task.name} runs a fixed job set, not a clock"
    mode = continuing_mode(continuing_days)
    week_seeds = list(seeds)[:continuing_seeds]
    rows.extend(run_rows(cfg, policies, scenario, label, week_seeds, mode, max_episode_steps=steps))
    return rows, None
