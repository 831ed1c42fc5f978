"""The Maintenance and Inventory presets of issue 10 compose, train a few hundred steps and compare."""

from __future__ import annotations

import csv
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from agents.artifact import PolicyArtifact
from envs.registration import TASKS
from experiments.build import heuristics, make_env
from experiments.report import EPISODE
from experiments.train import train
from tests.presets import TINY_RUN, compose_train

TINY = [*TINY_RUN, "task.max_episode_steps=24"]
# preset: (control period, s; the heuristics its final table compares with)
PRESETS = {
    "maintenance": (3600.0, {"reactive", "fixed_interval", "condition_based"}),
    "inventory": (3600.0, {"ss_reorder"}),
}


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_decides_hourly_and_names_every_heuristic_of_its_task(preset):
    period, names = PRESETS[preset]
    cfg = compose_train([f"experiment={preset}"])
    assert set(heuristics(cfg)) == names
    env = make_env(cfg)
    try:
        assert env.unwrapped.line.spec.control_period_s == period
        # the episode still covers the registered span of line time: a week, three days
        registered = gym.spec(cfg.task.id).max_episode_steps * TASKS[cfg.task.name][2]
        assert cfg.task.max_episode_steps * period == registered
    finally:
        env.close()


@pytest.mark.slow
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_trains_exports_and_compares_with_every_heuristic(tmp_path, preset):
    cfg = compose_train([f"experiment={preset}", *TINY])
    train(cfg, tmp_path / "run")
    run = tmp_path / "run"
    artifact = PolicyArtifact.load(run / "artifact")
    env = make_env(cfg)
    try:
        obs, _ = env.reset(seed=20_000)
        for _ in range(5):
            action, _ = artifact.predict(obs, deterministic=True)
            assert env.action_space.contains(np.asarray(action, dtype=env.action_space.dtype))
            obs, *_ = env.step(action)
    finally:
        env.close()
    with (run / "final" / "episodes.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["mode"] == EPISODE]
    policies = {r["policy"] for r in rows}
    assert policies == {"learned", *(f"{h} (heuristic)" for h in PRESETS[preset][1])}
    assert all(np.isfinite(float(r["return"])) for r in rows)
    assert Path(run / "final" / "kpi_table.md").read_text().count("| learned |") == 1
