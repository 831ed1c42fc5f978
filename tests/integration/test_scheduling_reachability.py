"""Every optimal schedule is reachable through valid Scheduling actions, and nothing better than optimal is.

The optimum of each small instance comes from brute force over machine orders, independently of
the env: enumerate the job order on every machine, build the semi-active schedule (each operation
starts when its job's and its machine's previous operations have ended), discard cyclic orders.
The env side is an exhaustive search over the masked actions (branch and bound on a lower bound of
the makespan), on the array job shop, which `test_jobshop_kernel.py` shows runs the twin's schedule.
"""

from __future__ import annotations

import copy
import itertools
import math

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401  (registers the smartline/ ids)
from envs.jobshop import Instance, instance_definition
from envs.scheduling import SchedulingEnv, SchedulingTask
from hardware import JobStatus
from hardware.twin import TwinLine
from hardware.twin.jobshop_kernel import JobShopLine

# Every optimal schedule (makespan 17) keeps m0 idle at time 0 while job 0 waits there: job 2 reaches
# m0 at time 2 and must go first (m0 from 2 to 10, then m2 from 10 to 16). Station m0 is asked first.
IDLE_AT_START = Instance("idle_at_start", 3, ((0,), (2,), (1, 0, 2)), ((7,), (4,), (2, 8, 6)))


def semi_active_makespan(instance: Instance, orders: tuple[tuple[int, ...], ...]) -> float | None:
    """Makespan of the semi-active schedule with these job orders per machine; None if they are cyclic."""
    next_op = [0] * instance.n_jobs
    job_free = [0.0] * instance.n_jobs
    machine_pos = [0] * instance.n_machines
    machine_free = [0.0] * instance.n_machines
    left = sum(len(r) for r in instance.routes)
    while left:
        progressed = False
        for k, order in enumerate(orders):
            if machine_pos[k] == len(order):
                continue
            j = order[machine_pos[k]]
            if next_op[j] < len(instance.routes[j]) and instance.routes[j][next_op[j]] == k:
                end = max(job_free[j], machine_free[k]) + instance.times[j][next_op[j]]
                job_free[j] = machine_free[k] = end
                next_op[j] += 1
                machine_pos[k] += 1
                left -= 1
                progressed = True
        if not progressed:
            return None
    return max(job_free)


def brute_force_optimum(instance: Instance) -> float:
    """Shortest makespan over every combination of job orders on the machines."""
    visitors = [[j for j, r in enumerate(instance.routes) if k in r] for k in range(instance.n_machines)]
    best = math.inf
    for orders in itertools.product(*(itertools.permutations(v) for v in visitors)):
        makespan = semi_active_makespan(instance, orders)
        if makespan is not None:
            best = min(best, makespan)
    return best


def kernel_env(instance: Instance) -> SchedulingEnv:
    twin = TwinLine.from_config(seed=0, **instance_definition(instance))
    line = JobShopLine(twin.params, twin.spec)
    return SchedulingEnv(line, SchedulingTask(line.spec))


def lower_bound(env: SchedulingEnv, instance: Instance) -> float:
    """A makespan no completion of this state can beat: now plus the longest unstarted work of a job or machine."""
    frame = env.frame
    job_left, machine_left = [], [0.0] * instance.n_machines
    for j, (route, times) in enumerate(zip(instance.routes, instance.times, strict=True)):
        step, status = int(frame.jobs.step[j]), int(frame.jobs.status[j])
        first = step + 1 if status == JobStatus.ACTIVE else step  # an active operation may have started
        job_left.append(float(sum(times[first:])))
        for k, t in zip(route[first:], times[first:], strict=True):
            machine_left[k] += t
    return frame.time + max(job_left + machine_left)


def best_reachable(instance: Instance, bound: float) -> float:
    """Shortest makespan over every sequence of valid actions, searching all states that might reach `bound`."""
    env = kernel_env(instance)
    env.reset(seed=0)
    best = math.inf

    def search(node: SchedulingEnv) -> None:
        nonlocal best
        for action in np.flatnonzero(node.action_masks()):
            child = copy.deepcopy(node)
            _, _, terminated, _, info = child.step(int(action))
            assert not info["invalid_action"]
            if terminated:
                best = min(best, info["makespan"])
            elif lower_bound(child, instance) <= bound:
                search(child)

    search(env)
    return best


def random_instance(seed: int) -> Instance:
    """2-4 jobs on 2-3 machines; each job visits 1 to all machines in random order, whole times 1..9."""
    rng = np.random.default_rng(seed)
    jobs, machines = int(rng.integers(2, 5)), int(rng.integers(2, 4))
    routes = tuple(
        tuple(int(k) for k in rng.permutation(machines)[: rng.integers(1, machines + 1)]) for _ in range(jobs)
    )
    times = tuple(tuple(int(t) for t in rng.integers(1, 10, len(r))) for r in routes)
    return Instance(f"random{seed}", machines, routes, times)


def test_an_optimum_that_needs_the_first_station_asked_to_wait_is_reached():
    assert brute_force_optimum(IDLE_AT_START) == 17
    assert semi_active_makespan(IDLE_AT_START, ((0, 2), (2,), (1, 2))) == 21  # m0 starts job 0 at once
    env = kernel_env(IDLE_AT_START)
    env.reset(seed=0)
    assert env.task.decision(env.frame).station == 0
    assert env.action_masks()[env.task.n_jobs]  # m0 may wait: m1 still has its decision open
    assert best_reachable(IDLE_AT_START, bound=17) == 17


@pytest.mark.parametrize("seed", range(60))
def test_exhaustive_search_over_valid_actions_reaches_exactly_the_optimum(seed):
    instance = random_instance(seed)
    optimum = brute_force_optimum(instance)
    assert best_reachable(instance, bound=optimum) == optimum


def test_waiting_is_valid_while_raw_material_is_on_order(tmp_path):
    """A store run dry with a delivery on its way: the line moves on without the station, so it may wait."""
    line = tmp_path / "dry_store.yaml"
    line.write_text(
        "defaults: [flow5_orders, _self_]\nname: dry_store\n"
        "supply: {initial_stock_units: 30.0, reorder_point_units: 20.0, order_quantity_units: 1500.0,"
        " lead_time_mean_s: 3000.0}\n"
    )
    env = gym.make("smartline/Scheduling-v0", line=str(line)).unwrapped
    task = env.task
    env.reset(seed=0)
    stock, on_order = task._stock_idx
    dry = []
    done = False
    while not done:
        frame = env.frame
        if frame.values[stock] < 1 and frame.values[on_order] > 0:
            dry.append(bool(env.action_masks()[task.n_jobs]))
            *_, done, truncated, info = env.step(task.n_jobs)  # wait for the delivery
            assert not info["invalid_action"]
        else:
            *_, done, truncated, info = env.step(task.line_rule(frame))
        done = done or truncated
    assert len(dry) > 0  # decisions were asked with an empty store ...
    assert all(dry)  # ... and each could wait
    assert info["kpis"].jobs_done == task.n_jobs  # and the order book was still made
