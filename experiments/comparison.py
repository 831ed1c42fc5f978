"""Run policies side by side: per-episode on held-out seeds, then continuing operation without reset.

Both train's final table and `evaluate` use `compare`, so every evaluation table shows what a
policy scores in one episode and what it does to the line over days of continuing operation.
Optionally each policy also plays settled episodes: an episode scored after it has run the line
for whole episodes of its own from the same start, so neither the warm-up's state (the line's
rules) nor the state it leaves at the end decides the comparison.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
from omegaconf import DictConfig, OmegaConf

from agents.rollout import Policy, run_episode
from experiments.build import ConfigError, continuing_steps, episode_steps, make_env
from experiments.errors import positive_number, whole_number
from experiments.report import EPISODE, Row, continuing_mode, episode_row, settled_mode

Policies = Callable[[gym.Env[Any, Any]], Sequence[tuple[str, Policy]]]  # labelled policies built on an env


def checked_seeds(node: DictConfig, prefix: str = "") -> list[int]:
    """The seeds of a comparison (`episodes` of them from `seed`), its settings checked first.

    `node` holds `episodes`, `seed`, `continuing_seeds`, `continuing_days` and, where it has it,
    `settle_episodes` (evaluate's and robustness's configs, `tune`); a `ConfigError` names the
    key with `prefix` (`tune.`).
    """
    episodes = whole_number(f"{prefix}episodes", node.episodes)
    seed = whole_number(f"{prefix}seed", node.seed, least=0)
    whole_number(f"{prefix}continuing_seeds", node.continuing_seeds, least=0)
    positive_number(f"{prefix}continuing_days", node.continuing_days)
    if "settle_episodes" in node:
        whole_number(f"{prefix}settle_episodes", node.settle_episodes, least=0)
    return [seed + i for i in range(episodes)]


def runs_on(cfg: DictConfig) -> str:
    """What the configured env runs on, for titles: the line's name, or the job-shop instance that replaces it."""
    instance = OmegaConf.select(cfg, "task.kwargs.instance")
    return f"instance {instance}" if instance is not None else str(cfg.line.name)


def clocked(cfg: DictConfig) -> bool:
    """Whether the configured task runs on a clock (a control period), so that it can run on without reset.

    Scheduling's fixed job set ends when its last job does: it has no continuing or settled run.
    """
    probe = make_env(cfg)
    try:
        return _clocked(probe)
    finally:
        probe.close()


def _clocked(env: gym.Env[Any, Any]) -> bool:
    return env.unwrapped.line.spec.control_period_s is not None  # type: ignore[attr-defined]


def run_rows(
    cfg: DictConfig,
    policies: Policies,
    scenario: str | None,
    label: str,
    seeds: Sequence[int],
    mode: str = EPISODE,
    max_episode_steps: int | None = None,
    scored_from: int = 0,
) -> list[Row]:
    """Each policy on each seed of one env of the configured task; rows labelled `label` and `mode`.

    Return and KPIs count from step `scored_from` (0: the whole episode).
    """
    env = make_env(cfg, scenario=scenario, max_episode_steps=max_episode_steps)
    try:
        return [
            episode_row(name, label, run_episode(env, policy, s, scored_from=scored_from), mode)
            for name, policy in policies(env)
            for s in seeds
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
    settle_episodes: int = 0,
) -> tuple[list[Row], str | None]:
    """Per-episode rows on `seeds`, then `continuing_days` without reset on the first `continuing_seeds`.

    With `settle_episodes` > 0, also settled rows on `seeds`: each run lasts `settle_episodes` + 1
    episodes from the same reset and is scored on its last (mode `settled_mode`). Returns the rows
    and a note when there is no continuing run (none asked for, or a task without a control
    period, such as Scheduling's fixed job set) or it has fewer seeds than asked (there are fewer
    episodes), else None.
    """
    steps, clocked = None, True
    if continuing_seeds > 0 or settle_episodes > 0:  # only then is the line's clock asked for
        probe = make_env(cfg, scenario=scenario)
        try:
            clocked = _clocked(probe)
            steps = continuing_steps(probe, continuing_days) if continuing_seeds > 0 else None
        finally:
            probe.close()
    if settle_episodes > 0 and not clocked:
        raise ConfigError(f"settle_episodes: task {cfg.task.name} runs a fixed job set, which ends: none to settle")
    rows = run_rows(cfg, policies, scenario, label, seeds)
    if settle_episodes > 0:
        episode = episode_steps(cfg)
        settled, scored_from = (settle_episodes + 1) * episode, settle_episodes * episode
        mode = settled_mode(settle_episodes)
        rows.extend(run_rows(cfg, policies, scenario, label, seeds, mode, settled, scored_from))
    if continuing_seeds <= 0:
        return rows, "no continuing run: continuing_seeds is 0"
    if steps is None:
        return rows, f"no continuing run: task {cfg.task.name} runs a fixed job set, not a clock"
    mode = continuing_mode(continuing_days)
    week_seeds = list(seeds)[:continuing_seeds]
    rows.extend(run_rows(cfg, policies, scenario, label, week_seeds, mode, max_episode_steps=steps))
    if continuing_seeds > len(week_seeds):
        n = len(week_seeds)
        return rows, f"continuing run on {n} of the {continuing_seeds} seeds asked: it takes the episodes', {n} here"
    return rows, None
