"""Every registered env: both env checkers, determinism, termination, finite observations."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from scipy import stats
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import envs  # noqa: F401  (registers the ids)
from envs.jobshop import optima
from envs.registration import TASKS
from hardware import JobStatus
from hardware.twin import TwinLine
from tests.lines import FLOW5

ENV_IDS = [f"smartline/{name}-v0" for name in TASKS]
ALPHA = 1e-3  # false-alarm probability of each statistical assertion


def act(env: gym.Env, rng: np.random.Generator):
    """A random action; a random valid one where the env has masks."""
    base = env.unwrapped
    if hasattr(base, "action_masks"):
        return int(rng.choice(np.flatnonzero(base.action_masks())))
    return env.action_space.sample()


def rollout(env_id: str, seed: int, steps: int, **kwargs) -> list[tuple]:
    env = gym.make(env_id, **kwargs)
    env.action_space.seed(seed)
    rng = np.random.default_rng(seed)
    obs, info = env.reset(seed=seed)
    out = [(obs.tobytes(), 0.0, info["time"])]
    for _ in range(steps):
        obs, reward, terminated, truncated, info = env.step(act(env, rng))
        out.append((obs.tobytes(), float(reward), info["time"]))
        if terminated or truncated:
            break
    env.close()
    return out


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_gymnasium_env_checker(env_id):
    env = gym.make(env_id, disable_env_checker=True)
    gym_check_env(env.unwrapped, skip_render_check=True)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_sb3_env_checker(env_id):
    env = gym.make(env_id, disable_env_checker=True)
    sb3_check_env(env.unwrapped, warn=False)


def test_scheduling_instance_passes_both_checkers():
    env = gym.make("smartline/Scheduling-v0", instance="ta01", disable_env_checker=True)
    gym_check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(env.unwrapped, warn=False)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_same_seed_same_trajectory(env_id):
    a = rollout(env_id, seed=3, steps=60)
    b = rollout(env_id, seed=3, steps=60)
    assert a == b
    assert rollout(env_id, seed=4, steps=60) != a


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_observations_stay_finite_and_in_bounds(env_id):
    env = gym.make(env_id, max_episode_steps=300)
    rng = np.random.default_rng(0)
    env.action_space.seed(0)
    obs, info = env.reset(seed=0)
    clock = [info["time"]]
    done = False
    while not done:
        assert env.observation_space.contains(obs), env_id
        obs, reward, terminated, truncated, info = env.step(act(env, rng))
        assert np.isfinite(reward)
        clock.append(info["time"])
        done = terminated or truncated
    assert np.all(np.diff(clock) >= 0.0), "the line clock never runs backwards"
    assert clock[-1] > clock[0]


@pytest.mark.parametrize("env_id", [i for i in ENV_IDS if "Scheduling" not in i])
def test_tick_tasks_truncate_at_their_time_limit(env_id):
    env = gym.make(env_id, max_episode_steps=25)
    _, info = env.reset(seed=1)
    start = info["time"]
    period = env.unwrapped.line.spec.control_period_s
    for step in range(25):
        _, _, terminated, truncated, info = env.step(env.action_space.sample())
        assert not terminated
        assert truncated == (step == 24)
        assert info["time"] - start == pytest.approx((step + 1) * period)


@pytest.mark.parametrize("period", [7.3, 333.3])
def test_every_step_lasts_one_control_period_whatever_the_period(period):
    # the line ticks at its episode start plus whole periods, which rounding can put a few ulps
    # after the last frame's time plus the period: that tick ends the step, never a step of ulps
    env = gym.make("smartline/Maintenance-v0", control_period_s=period, max_episode_steps=None)
    _, info = env.reset(seed=1)
    clock = [info["time"]]
    for _ in range(60):
        _, _, _, _, info = env.step(np.zeros(env.action_space.shape, dtype=np.int8))
        clock.append(info["time"])
    assert np.diff(clock) == pytest.approx(period)


@pytest.mark.parametrize("kwargs", [{}, {"instance": "ft06"}, {"instance": "la01", "objective": "weighted_tardiness"}])
def test_random_masked_policy_finishes_every_job(kwargs):
    env = gym.make("smartline/Scheduling-v0", **kwargs)
    rng = np.random.default_rng(5)
    env.reset(seed=5)
    spec = env.unwrapped.line.spec
    ops = sum(len(j.route) for j in spec.jobs)
    steps, terminated = 0, False
    while not terminated and steps < 20 * ops:
        _, _, terminated, truncated, info = env.step(act(env, rng))
        steps += 1
    assert terminated
    assert not truncated
    assert steps >= ops  # one dispatch per operation, plus waits
    k = info["kpis"]
    assert info["makespan"] == k.last_completion_s
    assert k.good_parts + k.scrap_parts == k.jobs_done == len(spec.jobs)
    finished = {int(JobStatus.DONE), int(JobStatus.SCRAPPED)}
    assert set(env.unwrapped.frame.jobs.status.tolist()) <= finished
    if "instance" in kwargs:  # a deterministic instance: no valid schedule beats the proven optimum
        machine_load = {}
        for job in spec.jobs:
            for station, t in zip(job.route, job.times_s, strict=True):
                machine_load[station] = machine_load.get(station, 0.0) + t
        bound = max(max(machine_load.values()), max(sum(j.times_s) for j in spec.jobs))
        assert info["makespan"] >= optima()[kwargs["instance"]] >= bound


def test_dropouts_reach_the_agent_as_value_and_flag():
    line = TwinLine.from_yaml(
        FLOW5,
        seed=0,
        control={"levers": ["maintenance"], "control_period_s": 60.0},
        machines={m: {"sensors": {"dropout_probability": 0.5}} for m in ("cnc", "press", "robot")},
    )
    env = gym.make("smartline/Maintenance-v0", line=line)
    obs, _ = env.reset(seed=0)
    encoder = env.unwrapped.task.encoder
    flags_seen = []
    for _ in range(40):
        obs, *_ = env.step(np.zeros(5, dtype=np.int8))
        assert np.isfinite(obs).all()
        flags = obs[len(encoder.names) :]
        flags_seen.extend(flags)
        frame = env.unwrapped.frame
        physical = [i for i, s in enumerate(line.spec.sensors) if s.dropouts]
        assert list(flags) == [0.0 if np.isnan(frame.values[i]) else 1.0 for i in physical]
    missing = len(flags_seen) - int(np.sum(flags_seen))
    assert stats.binomtest(missing, len(flags_seen), 0.5).pvalue > ALPHA, (missing, len(flags_seen))
