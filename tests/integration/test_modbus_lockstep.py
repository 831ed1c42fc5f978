"""The same env, policy and seed over Modbus (lockstep virtual PLC) and on the twin directly agree.

For every setpoint task: the same actions, observations equal within float32 (the registers' type for
sensors and setpoints) and rewards equal within the same precision, step by step. A policy acting on
numbers read over the fieldbus behaves as it does on the twin.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from agents.baselines import make_baseline
from configs import config_file
from envs.lines import resolve_line
from envs.registration import START_DEFAULT, TASKS
from hardware.counters import window_kpis
from hardware.modbus import default_map
from hardware.modbus.connect import modbus_line
from hardware.modbus.maps import setpoint_spec
from hardware.modbus.plc import VirtualPLC
from hardware.twin import TwinLine

SEED = 11
MIDNIGHT = 1_764_547_200.0  # 2025-12-01T00:00Z: the PLC's clock origin, a UTC midnight like the twin's time 0
BASELINES = {"Speed": "nominal_speed", "Energy": "tou_energy", "Maintenance": "condition_based",
             "Inventory": "ss_reorder", "Factory": "factory_rules"}  # fmt: skip
STEPS = 60


def definition() -> dict[str, Any]:
    import yaml

    return yaml.safe_load(config_file("line", "flow5").read_text())


def twin_for(task: str) -> TwinLine:
    """The twin the env would build for `task`, reset with the env's seed: the PLC attaches to it."""
    cls, line, period, _ = TASKS[task]
    twin = resolve_line(line, cls.levers, period, None, SEED, start_default=START_DEFAULT)
    assert isinstance(twin, TwinLine)
    twin.reset(seed=SEED)
    return twin


def plc_for(task: str) -> VirtualPLC:
    full = setpoint_spec(definition(), TASKS[task][2])
    return VirtualPLC(twin_for(task), default_map(full), full, mode="lockstep", clock_origin_s=MIDNIGHT)


def rollout(env: gym.Env[Any, Any], policy: Any, actions: Iterator[Any] | None) -> list[tuple[Any, ...]]:
    obs, _ = env.reset(seed=SEED)
    out = []
    for _ in range(STEPS):
        action = next(actions) if actions is not None else policy.predict(obs, deterministic=True)[0]
        obs2, reward, _, _, info = env.step(action)
        out.append((np.asarray(action, dtype=float).copy(), obs2, reward, info))
        obs = obs2
    return out


def random_actions(space: gym.Space[Any]) -> Iterator[Any]:
    space.seed(SEED)
    while True:
        yield space.sample()


@pytest.mark.parametrize("task", list(BASELINES))
@pytest.mark.parametrize("policy_kind", ["heuristic", "random"])
def test_a_task_over_modbus_in_lockstep_matches_the_twin(task, policy_kind):
    cls, _, period, _ = TASKS[task]
    env_id = f"smartline/{task}-v0"
    direct = gym.make(env_id, seed=SEED).unwrapped
    with plc_for(task) as plc:
        line = modbus_line(definition(), cls.levers, period, port=plc.port, timeout_s=2.0)
        remote = gym.make(env_id, line=line).unwrapped
        try:
            runs = []
            for env in (direct, remote):
                policy = make_baseline(env, BASELINES[task])
                actions = random_actions(env.action_space) if policy_kind == "random" else None
                runs.append(rollout(env, policy, actions))
        finally:
            remote.close()
            direct.close()
    for step, (a, b) in enumerate(zip(*runs, strict=True)):
        (act_a, obs_a, rew_a, info_a), (act_b, obs_b, rew_b, info_b) = a, b
        # a rule's action may be graded in a reading (factory_rules' maintain): within the readings' rounding
        np.testing.assert_allclose(act_b, act_a, atol=1e-5, err_msg=f"{task} step {step}: actions differ")
        np.testing.assert_allclose(obs_b, obs_a, atol=2e-6, err_msg=f"{task} step {step}: observations differ")
        assert math.isclose(rew_b, rew_a, rel_tol=1e-5, abs_tol=1e-4), f"{task} step {step}: {rew_b} != {rew_a}"
        assert info_b["kpis"].good_parts == info_a["kpis"].good_parts
        assert info_b["kpis"].failures == info_a["kpis"].failures
        assert info_b["time"] - MIDNIGHT == pytest.approx(info_a["time"], abs=1e-3)  # ms timestamps


def test_a_window_of_a_run_over_modbus_counts_what_the_twin_counts():
    """Frames read over the fieldbus carry the PLC's counters: KPIs over a window agree with the twin's."""
    cls, _, period, _ = TASKS["Factory"]
    direct = gym.make("smartline/Factory-v0", seed=SEED).unwrapped
    with plc_for("Factory") as plc:
        line = modbus_line(definition(), cls.levers, period, port=plc.port, timeout_s=2.0)
        remote = gym.make("smartline/Factory-v0", line=line).unwrapped
        try:
            windows = []
            for env in (direct, remote):
                policy = make_baseline(env, BASELINES["Factory"])
                obs, _ = env.reset(seed=SEED)
                frames = []
                for _ in range(STEPS):
                    obs = env.step(policy.predict(obs, deterministic=True)[0])[0]
                    frames.append(env.frame)
                windows.append(window_kpis(frames[STEPS // 3], frames[-1], len(env.line.spec.stations)))
        finally:
            remote.close()
            direct.close()
    twin, fieldbus = windows
    assert twin.good_parts > 0
    assert fieldbus.good_parts == twin.good_parts
    assert fieldbus.energy_cost == pytest.approx(twin.energy_cost, rel=1e-4)
    assert fieldbus.throughput_per_h == pytest.approx(twin.throughput_per_h, rel=1e-4)
