"""The array job shop runs exactly the twin's schedule: same frames, observations, masks, rewards, KPIs."""

from __future__ import annotations

import numpy as np
import pytest

from envs.jobshop import Instance, instance_definition, instance_line, load_instance
from envs.scheduling import SchedulingEnv, SchedulingTask
from hardware import Command, Dispatch, Kpis
from hardware.twin import TwinLine
from hardware.twin.jobshop_kernel import JobShopLine, unsupported
from hardware.twin.sensors import INSTRUMENTS
from tests.lines import FLOW5


def random_instance(rng: np.random.Generator, jobs: int, machines: int, top: int) -> Instance:
    """Each job visits every machine once in random order, with whole times in 1..top (ties are likely)."""
    routes = tuple(tuple(int(k) for k in rng.permutation(machines)) for _ in range(jobs))
    times = tuple(tuple(int(t) for t in rng.integers(1, top + 1, machines)) for _ in range(jobs))
    return Instance(f"random{jobs}x{machines}", machines, routes, times)


def pair(instance: Instance | dict) -> tuple[SchedulingEnv, SchedulingEnv]:
    """Scheduling envs on the full twin and on the array job shop of the same instance or definition."""
    definition = instance if isinstance(instance, dict) else instance_definition(instance)
    twin = TwinLine.from_config(seed=0, **definition)
    kernel = JobShopLine(twin.params, twin.spec)
    return SchedulingEnv(twin, SchedulingTask(twin.spec)), SchedulingEnv(kernel, SchedulingTask(kernel.spec))


def mixed_shop(rng: np.random.Generator) -> dict:
    """A deterministic shop of two machine types (own power, wear and speed exponents) and variants of unequal load."""
    definition = instance_definition(random_instance(rng, int(rng.integers(3, 6)), 4, top=9))
    base = definition["machines"]["jssp"]
    heavy = {
        **base,
        "power_kw": {"idle": 4.5, "busy": 21.0, "blocked": 3.0, "standby": 1.1, "warmup": 7.0},
        "wear_per_busy_h": 0.03,
        "wear_speed_exponent": 3.0,
        "busy_power_speed_exponent": 2.5,
    }
    definition["machines"] = {"jssp": base, "heavy": heavy}
    for k, station in enumerate(definition["stations"]):
        station["machine"] = "heavy" if k % 2 else "jssp"
    for k, variant in enumerate(definition["variants"]):
        variant["load"] = (1.4, 0.6, 1.0)[k % 3]
    return definition


def assert_same_frame(a, b, spec) -> None:
    assert (a.time, a.pending) == (b.time, b.pending)
    np.testing.assert_array_equal(a.jobs.step, b.jobs.step)
    np.testing.assert_array_equal(a.jobs.status, b.jobs.status)
    measured = [i for i, s in enumerate(spec.sensors) if not s.name.endswith(INSTRUMENTS)]
    np.testing.assert_array_equal(a.values[measured], b.values[measured])
    for name in Kpis.names():
        assert getattr(b.kpis, name) == pytest.approx(getattr(a.kpis, name), rel=1e-12, abs=1e-12, nan_ok=True), name


def run_both(instance: Instance | dict, seed: int, invalid_share: float, wait_share: float) -> int:
    """Drive both envs with one random action sequence; return the number of steps compared."""
    twin_env, kernel_env = pair(instance)
    rng = np.random.default_rng(seed)
    obs_t, _ = twin_env.reset(seed=seed)
    obs_k, _ = kernel_env.reset(seed=seed)
    n, steps, terminated = twin_env.task.n_jobs, 0, False
    while not terminated:
        np.testing.assert_array_equal(obs_t, obs_k)
        mask = twin_env.action_masks()
        np.testing.assert_array_equal(mask, kernel_env.action_masks())
        assert_same_frame(twin_env.frame, kernel_env.frame, twin_env.line.spec)
        u = rng.random()
        if u < invalid_share:
            action = int(rng.integers(n + 1))  # valid or not: an invalid one falls back to FIFO on both
        elif u < invalid_share + wait_share and mask[n]:
            action = n
        else:
            action = int(rng.choice(np.flatnonzero(mask)))
        obs_t, r_t, terminated, _, info_t = twin_env.step(action)
        obs_k, r_k, terminated_k, _, info_k = kernel_env.step(action)
        assert (r_t, terminated, info_t["station"], info_t["invalid_action"]) == (
            r_k,
            terminated_k,
            info_k["station"],
            info_k["invalid_action"],
        )
        steps += 1
    np.testing.assert_array_equal(obs_t, obs_k)
    assert_same_frame(twin_env.frame, kernel_env.frame, twin_env.line.spec)
    assert info_t["makespan"] == info_k["makespan"]
    return steps


@pytest.mark.parametrize("name", ["ft06", "la01", "ta01"])
@pytest.mark.parametrize("seed", [0, 1])
def test_shipped_instances_run_the_same_trajectory_on_both(name, seed):
    steps = run_both(load_instance(name), seed, invalid_share=0.2, wait_share=0.2)
    assert steps >= sum(len(r) for r in load_instance(name).routes)  # one step per operation at least


@pytest.mark.parametrize("seed", range(40))
def test_small_instances_with_tied_times_run_the_same_trajectory_on_both(seed):
    """Whole times from 1..3 make operations end together, so event order decides queue order (FIFO)."""
    rng = np.random.default_rng(1000 + seed)
    instance = random_instance(rng, int(rng.integers(2, 6)), int(rng.integers(2, 5)), top=3)
    run_both(instance, seed, invalid_share=0.4, wait_share=0.3)


@pytest.mark.parametrize("seed", range(6))
def test_mixed_machine_types_and_loads_run_the_same_trajectory_on_both(seed):
    """What `unsupported` admits beyond the instances: several machine types, power profiles, wear, loads."""
    run_both(mixed_shop(np.random.default_rng(seed)), seed, invalid_share=0.3, wait_share=0.3)


def test_the_instance_line_is_the_kernel_unless_asked_for_the_twin():
    assert isinstance(instance_line("ft06"), JobShopLine)
    assert isinstance(instance_line("ft06", kernel=False), TwinLine)


def test_lines_the_kernel_cannot_run_exactly_are_refused_with_the_reason():
    definition = instance_definition(load_instance("ft06"))
    machine = definition["machines"]["jssp"]
    stochastic = TwinLine.from_config(**{**definition, "machines": {"jssp": {**machine, "scrap_probability": 0.01}}})
    assert "machine 'jssp' must be exact" in unsupported(stochastic.params)
    flow = TwinLine.from_yaml(FLOW5)
    with pytest.raises(ValueError, match="cannot run on JobShopLine: it is not a job shop"):
        JobShopLine(flow.params, flow.spec)


def test_bad_use_is_refused_like_the_twin():
    line = instance_line("ft06")
    with pytest.raises(RuntimeError, match="call reset"):
        line.advance(1.0)
    frame = line.reset()
    d = frame.pending[0]
    absent = next(j for j in range(6) if j not in d.jobs)
    with pytest.raises(ValueError, match=f"job {absent} does not wait at station"):
        line.write(Command(dispatch=(Dispatch(d.station, absent),)))
    other = frame.pending[1]
    with pytest.raises(ValueError, match="is dispatched twice"):  # all or nothing: the first is not applied
        line.write(Command(dispatch=(Dispatch(other.station, other.jobs[0]), Dispatch(other.station, other.jobs[0]))))
    assert line.read().pending == frame.pending
    line.write(Command(dispatch=(Dispatch(d.station, d.jobs[0]),)))
    with pytest.raises(ValueError, match="is not free for a dispatch"):
        line.write(Command(dispatch=(Dispatch(d.station, d.jobs[-1]),)))
    with pytest.raises(ValueError, match="dt must be a positive"):
        line.advance(0.0)
    after = line.read()
    assert (after.time, after.seq) == (frame.time, frame.seq + 1)
    assert d.station not in [p.station for p in after.pending]
