"""KPIs over any window of a run, and episodes scored after a policy has settled into its own state."""

from __future__ import annotations

import dataclasses
import re

import gymnasium as gym
import numpy as np
import pytest
from hydra import compose, initialize_config_dir

import envs  # noqa: F401  (registers the ids)
from agents.baselines import make_baseline
from agents.rollout import run_episode
from experiments.build import ConfigError, make_env
from experiments.evaluate import evaluate
from experiments.report import EPISODE, settled_mode
from hardware import Frame, Kpis
from hardware.counters import window_kpis
from tests.presets import CONFIGS

HOUR = 3600.0
ADDITIVE = ("good_parts", "scrap_parts", "jobs_released", "jobs_done", "energy_kwh", "energy_cost", "co2_kg")


def frames_of_a_run(steps: int, seed: int, action: float = 0.0) -> tuple[list[Frame], int]:
    """Every frame of one Speed episode of `steps` steps at a fixed setting, and the line's station count."""
    env = gym.make("smartline/Speed-v0", line="flow5", max_episode_steps=steps)
    env.reset(seed=seed)
    frames = [env.unwrapped.frame]
    done = False
    while not done:
        _, _, term, trunc, _ = env.step(np.full(env.action_space.shape, action, dtype=np.float32))
        frames.append(env.unwrapped.frame)
        done = term or trunc
    return frames, len(env.unwrapped.line.spec.stations)


def test_the_window_from_the_episodes_first_frame_is_the_episodes_kpis():
    frames, n = frames_of_a_run(120, seed=3)
    whole = window_kpis(frames[0], frames[-1], n)
    for name in Kpis.names():
        assert getattr(whole, name) == pytest.approx(getattr(frames[-1].kpis, name), rel=1e-12, abs=1e-9), name
    assert whole.good_parts > 0


def test_windows_split_a_run_into_parts_that_add_up_with_ratios_of_their_own():
    frames, n = frames_of_a_run(180, seed=5, action=-0.5)
    first, second = window_kpis(frames[0], frames[60], n), window_kpis(frames[60], frames[-1], n)
    whole = frames[-1].kpis
    for name in ADDITIVE:
        assert getattr(first, name) + getattr(second, name) == pytest.approx(getattr(whole, name), rel=1e-9), name
    elapsed_h = (frames[-1].time - frames[60].time) / HOUR
    assert second.throughput_per_h == pytest.approx(second.good_parts / elapsed_h)
    assert second.energy_cost_per_good_part == pytest.approx(second.energy_cost / second.good_parts)
    assert 0.0 < second.oee <= 1.0
    assert second.wip_parts == whole.wip_parts  # a level: as it is at the window's end
    assert first.wip_parts == frames[60].kpis.wip_parts


def test_a_window_needs_counters_and_must_not_run_backwards():
    frames, n = frames_of_a_run(30, seed=1)
    bare = dataclasses.replace(frames[0], counters=None)
    with pytest.raises(ValueError, match="frames carry no counters"):
        window_kpis(bare, frames[-1], n)
    with pytest.raises(ValueError, match=r"the window ends at .* s, before it starts at"):
        window_kpis(frames[-1], frames[0], n)


def test_a_run_scored_from_a_step_counts_its_return_and_kpis_from_that_step():
    env = gym.make("smartline/Factory-v0", max_episode_steps=120)
    rule = make_baseline(env.unwrapped, "factory_rules")
    obs, _ = env.reset(seed=8)
    frames, rewards, done = [env.unwrapped.frame], [], False
    while not done:
        obs, reward, term, trunc, _ = env.step(rule.predict(obs, deterministic=True)[0])
        frames.append(env.unwrapped.frame)
        rewards.append(float(reward))
        done = term or trunc
    scored = run_episode(env, rule, 8, scored_from=50)
    assert scored.steps == 120
    assert scored.total_reward == pytest.approx(sum(rewards[50:]))
    expected = window_kpis(frames[50], frames[-1], len(env.unwrapped.line.spec.stations))
    assert scored.kpis == expected
    assert scored.kpis.good_parts < scored.info["kpis"].good_parts  # the episode's own KPIs stay whole
    with pytest.raises(ValueError, match=r"scored_from: seed 8's episode ended after 120 steps, not after 120"):
        run_episode(env, rule, 8, scored_from=120)


def compose_evaluate(overrides: list[str]):
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        return compose("evaluate", overrides=overrides)


def test_evaluate_scores_each_seed_once_more_after_an_episode_of_its_own(tmp_path, caplog):
    """The settled row of a policy is the second half of a run twice the episode's length, paired per seed."""
    cfg = compose_evaluate(
        [
            "task=energy",
            "task.max_episode_steps=90",
            "policies=[tou_energy,nominal_speed]",
            "+heuristics={tou_energy:{speed_ratio:0.8}}",
            "episodes=3",
            "continuing_seeds=0",
            "settle_episodes=1",
        ]
    )
    caplog.set_level("INFO")
    rows = evaluate(cfg, tmp_path)
    mode = settled_mode(1)
    assert mode == "episode after 1 of its own"
    policies = ("tou_energy", "nominal_speed")
    assert {(r.policy, r.mode) for r in rows} == {(p, m) for p in policies for m in (EPISODE, mode)}
    settled = {(r.policy, r.seed): r for r in rows if r.mode == mode}
    plain = {(r.policy, r.seed): r for r in rows if r.mode == EPISODE}
    cfg.task.max_episode_steps = 180
    env = make_env(cfg)
    rule = make_baseline(env.unwrapped, "tou_energy", speed_ratio=0.8)
    seeds = (30000, 30001, 30002)
    for seed in seeds:
        second_half = run_episode(env, rule, seed, scored_from=90)
        row = settled[("tou_energy", seed)]
        assert row.values["return"] == pytest.approx(second_half.total_reward)
        assert row.values["good_parts"] == second_half.kpis.good_parts
        assert row.values["return"] != pytest.approx(plain[("tou_energy", seed)].values["return"])
    assert f"| tou_energy | none | {mode} | 3 |" in (tmp_path / "kpi_table.md").read_text()
    returns = {key: row.values["return"] for key, row in settled.items()}
    diff = np.mean([returns[("tou_energy", s)] - returns[("nominal_speed", s)] for s in seeds])
    said = re.escape(f"nominal_speed: return difference {diff:+,.1f} ")
    assert re.search(rf"^{mode}: tou_energy .*{said}", caplog.text, re.M)


def test_settling_is_refused_where_episodes_end_with_their_job_set():
    settle = ["policies=[spt]", "episodes=1", "continuing_seeds=0", "settle_episodes=1"]
    cfg = compose_evaluate(["task=scheduling", "line=flow5_orders", *settle])
    with pytest.raises(ConfigError, match=r"^settle_episodes: task Scheduling runs a fixed job set, which ends"):
        evaluate(cfg, None)  # type: ignore[arg-type]
    bad = compose_evaluate(["policies=[nominal_speed]", "settle_episodes=-1"])
    with pytest.raises(ConfigError, match=r"^settle_episodes: must be a whole number >= 0, got -1"):
        evaluate(bad, None)  # type: ignore[arg-type]
