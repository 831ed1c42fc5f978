"""The Speed and Energy presets of issue 10 compose, train a few hundred steps and compare with their tuned rules."""

from __future__ import annotations

import pytest

from experiments.build import heuristics, make_env, tuned_baseline
from tests.presets import TINY_RUN, compose_train, train_tiny_preset

TINY = [*TINY_RUN, "task.max_episode_steps=20"]
# preset -> (task, line, control period s, episode steps, the heuristics its final table compares with)
PRESETS = {
    "speed": ("Speed", "flow5_busy", 300.0, 96, {"fixed_speed", "nominal_speed"}),
    "energy": ("Energy", "flow5", 120.0, 720, {"tou_energy"}),
}


@pytest.mark.parametrize("preset", list(PRESETS))
def test_preset_runs_its_line_at_its_period_against_its_tuned_heuristics(preset):
    task, line, period, steps, rules = PRESETS[preset]
    cfg = compose_train([f"experiment={preset}"])
    assert (cfg.task.name, cfg.line.name) == (task, line)
    assert set(heuristics(cfg)) == rules
    assert cfg.warm_start.heuristic in rules  # the policy starts as a rule its final table compares with
    env = make_env(cfg)
    try:
        assert env.unwrapped.line.spec.control_period_s == period
        assert env.spec.max_episode_steps == steps
        for name in rules:
            tuned_baseline(cfg, env, name)  # the tuned parameters build the rule
    finally:
        env.close()


@pytest.mark.slow
@pytest.mark.parametrize("preset", list(PRESETS))
def test_preset_trains_exports_and_compares_with_every_heuristic(preset, tmp_path):
    *_, rules = PRESETS[preset]
    run = tmp_path / "run"
    rows = train_tiny_preset(preset, run, TINY)
    assert {r["policy"] for r in rows} == {"learned", *(f"{h} (heuristic)" for h in rules)}
    assert {r["seed"] for r in rows} == {"20000"}
