"""`guard=plant` wraps every env's line (the twin, a PLC), keeps it within its limits, and shows in TensorBoard."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from hydra import compose, initialize_config_module
from omegaconf import DictConfig
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from envs.lines import resolve_line
from envs.registration import START_DEFAULT, TASKS
from experiments.build import ConfigError, check, make_env
from experiments.train import train
from hardware import Supervised
from hardware.guard import GuardedLine
from hardware.modbus import VirtualPLC, default_map, setpoint_spec
from hardware.twin import TwinLine
from tests.lines import FLOW5

EPISODE_STEPS = 32
TINY = [
    "total_timesteps=128",
    "n_envs=1",
    "agent.n_steps=64",
    "agent.batch_size=64",
    "evaluation.every_steps=128",
    "evaluation.episodes=1",
    "evaluation.figures=false",
    "final.episodes=1",
    "final.continuing_seeds=0",
    "checkpoint_every_steps=128",
    "progress_bar=false",
    "normalize.enabled=false",
    f"task.max_episode_steps={EPISODE_STEPS}",
]


def compose_train(overrides: list[str]) -> DictConfig:
    with initialize_config_module(config_module="configs", version_base="1.3"):
        return compose("train", overrides=overrides)


def test_the_guard_group_wraps_the_line_only_when_it_is_not_none():
    plain = make_env(compose_train([]))
    guarded = make_env(compose_train(["guard=plant"]))
    try:
        assert not isinstance(plain.unwrapped.line, GuardedLine)
        line = guarded.unwrapped.line
        assert isinstance(line, GuardedLine)
        assert [lock.name for lock in line.guard.interlocks] == [
            f"{s}.vibration" for s in ("cut", "press", "weld", "paint", "assemble")
        ]
        np.testing.assert_allclose(line.guard.rules.low, 0.6)
        np.testing.assert_allclose(line.guard.rules.high, 1.1)
    finally:
        plain.close()
        guarded.close()


def test_a_guard_config_that_contradicts_the_line_stops_before_work():
    too_fast = compose_train(["guard=plant"])
    too_fast.guard.limits["*.speed"] = [1.3, 1.4]
    with pytest.raises(ConfigError, match=r"^guard: limits leave actuator 'cut.speed' no value"):
        check(too_fast)
    backwards = compose_train(["guard=plant"])
    backwards.guard.rate_per_s["*.speed"] = -1.0
    with pytest.raises(ConfigError, match=r"^guard: rate_per_s\.\*\.speed must be a positive number"):
        check(backwards)
    with pytest.raises(ConfigError, match=r"^guard: frozen_samples must be a whole number >= 2, got 1$"):
        check(compose_train(["guard=plant", "guard.frozen_samples=1"]))


def test_random_actions_on_the_guarded_twin_stay_within_limits_and_rate():
    env = make_env(compose_train(["guard=plant", "task.max_episode_steps=240"]))
    spec = env.unwrapped.line.spec
    speed = [spec.sensor_index(f"{s}.speed_ratio") for s in spec.stations]
    vibration = [spec.sensor_index(f"{s}.vibration_mm_s") for s in spec.stations]
    env.action_space.seed(0)
    env.reset(seed=1)
    before = env.unwrapped.frame
    done, limited = False, 0
    while not done:
        _, _, terminated, truncated, info = env.step(env.action_space.sample())
        after = env.unwrapped.frame
        run = after.values[speed]
        assert np.all((run >= 0.6 - 1e-12) & (run <= 1.1 + 1e-12)), run
        assert np.all(np.abs(run - before.values[speed]) <= 0.005 * 60.0 + 1e-12)  # 0.005 ratio/s, 60 s ticks
        tripped = ~(before.values[vibration] <= 7.1)  # the interlock, decided on the frame the action saw
        assert np.all(run[tripped] <= 0.9 + 1e-12)
        limited += int(info["guard/clipped"] > 0)
        before = after
        done = terminated or truncated
    assert info["guard/checks"] == 240
    assert info["guard/clipped"] > 100  # random actions leave [0.6, 1.1] or move too fast most steps
    assert info["guard/interventions"] == info["guard/clipped"] + info["guard/blocked"]
    env.close()


def test_a_tiny_training_run_under_the_guard_logs_its_interventions(tmp_path):
    train(compose_train([*TINY, "guard=plant"]), tmp_path)
    events = next((tmp_path / "tb").rglob("events.out.tfevents.*"))
    acc = EventAccumulator(str(events.parent), size_guidance={"scalars": 0})
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"guard/checks", "guard/interventions", "guard/blocked", "guard/clipped"} <= tags
    assert any(t.startswith("guard/clamp/") and t.endswith(".speed") for t in tags)  # `:` shows as `/`
    last = {t: acc.Scalars(t)[-1].value for t in tags if t.startswith("guard/")}
    assert last["guard/checks"] == EPISODE_STEPS  # one check per step, counted per episode
    assert 0 < last["guard/interventions"] <= EPISODE_STEPS
    assert last["guard/interventions"] == pytest.approx(last["guard/clipped"] + last["guard/blocked"])
    assert all(np.isfinite(v) for v in last.values())
    manifest = json.loads((tmp_path / "artifact" / "manifest.json").read_text())
    assert manifest["config"]["guard"]["_target_"] == "hardware.guard.GuardConfig"


def test_the_guard_wraps_a_plc_over_modbus_and_reads_its_status():
    cls, name, period, _ = TASKS["Speed"]
    twin = resolve_line(name, cls.levers, period, None, 0, start_default=START_DEFAULT)
    assert isinstance(twin, TwinLine)
    twin.reset(seed=0)
    full = setpoint_spec(yaml.safe_load(FLOW5.read_text()), period)
    with VirtualPLC(twin, default_map(full), full) as server:
        with initialize_config_module(config_module="configs", version_base="1.3"):
            cfg = compose("evaluate", overrides=["hardware=modbus", f"hardware.port={server.port}", "guard=plant"])
        env = make_env(cfg, max_episode_steps=8)
        try:
            line = env.unwrapped.line
            assert isinstance(line, GuardedLine)
            assert isinstance(line, Supervised)  # the PLC's status and heartbeat pass through
            env.reset(seed=0)
            for a in (1.0, -1.0, 1.0, 0.5, -0.5):  # 1.2, 0.5, 1.2, 1.1, 0.75 before the guard
                env.step(np.full(env.action_space.shape, a, dtype=np.float32))
                active = line.status().active
                assert active is not None
                assert np.all((active >= 0.6 - 1e-6) & (active <= 1.1 + 1e-6)), active  # float32 registers
            assert line.status().heartbeat is not None
            info = line.info()
            assert info["guard/checks"] == 5
            assert info["guard/blocked"] == 0  # fresh data, REMOTE and PERMISSIVE on, the heartbeat moving
            assert info["guard/clipped"] >= 3
        finally:
            env.close()
