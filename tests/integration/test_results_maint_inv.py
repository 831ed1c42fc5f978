"""The Maintenance and Inventory presets of issue 10 compose, train a few hundred steps and compare."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from envs.registration import TASKS
from experiments.build import heuristics, make_env
from tests.presets import TINY_RUN, compose_train, train_tiny_preset

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
    run = tmp_path / "run"
    rows = train_tiny_preset(preset, run, TINY)
    policies = {r["policy"] for r in rows}
    assert policies == {"learned", *(f"{h} (heuristic)" for h in PRESETS[preset][1])}
    assert all(np.isfinite(float(r["return"])) for r in rows)
    assert Path(run / "final" / "kpi_table.md").read_text().count("| learned |") == 1
