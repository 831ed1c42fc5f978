"""The dispatcher network: symmetric in jobs and machines, any instance size, saved and loaded whole."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agents.jssp_policy import DispatchNet, PolicyConfig, Scheduler, decode, load_scheduler, operation_context
from envs.jobshop import load_instance
from envs.jssp_batch import InstanceBatch, ScheduleBuilder, generate_instances


def first_logits(net: DispatchNet, batch: InstanceBatch, steps: tuple[int, ...] = ()) -> torch.Tensor:
    """Logits of the state reached by scheduling the next operation of `steps` (jobs), one per step."""
    builder = ScheduleBuilder(batch, 1, net.config.action_set)
    for job in steps:
        builder.step(np.array([job]))
    features, mask, machine = builder.observe()
    context = operation_context(
        net.encode_operations(batch), torch.zeros(1, dtype=torch.int64), torch.from_numpy(builder.next_op)
    )
    with torch.no_grad():
        return net(torch.from_numpy(features), torch.from_numpy(mask), torch.from_numpy(machine), context)[0]


@pytest.fixture
def net() -> DispatchNet:
    torch.manual_seed(0)
    return DispatchNet(PolicyConfig(hidden=16, layers=1, action_set="all", operation_layers=2)).eval()


def test_relabelling_jobs_permutes_the_logits(net):
    batch = generate_instances(1, 6, 5, seed=1)
    perm = np.array([3, 0, 5, 1, 4, 2])
    relabelled = InstanceBatch(batch.routes[:, perm], batch.times[:, perm], batch.n_machines)
    inverse = np.argsort(perm)
    steps = (0, 2, 2, 5)
    torch.testing.assert_close(
        first_logits(net, relabelled, tuple(int(inverse[j]) for j in steps)), first_logits(net, batch, steps)[perm]
    )


def test_relabelling_machines_leaves_the_logits_alone(net):
    batch = generate_instances(1, 6, 5, seed=2)
    relabelled = InstanceBatch(np.array([4, 2, 0, 1, 3])[batch.routes], batch.times, batch.n_machines)
    torch.testing.assert_close(first_logits(net, relabelled, (1, 1, 3)), first_logits(net, batch, (1, 1, 3)))


def test_the_operation_encoder_sees_a_job_s_future_route(net):
    # two instances that differ only in the machine of job 0's last operation: a job-level net
    # sees the same first state, the operation encoder does not
    batch = generate_instances(1, 4, 4, seed=3)
    routes = batch.routes.copy()
    routes[0, 0, [2, 3]] = routes[0, 0, [3, 2]]
    swapped = InstanceBatch(routes, batch.times, batch.n_machines)
    assert not torch.allclose(first_logits(net, swapped), first_logits(net, batch))
    plain = DispatchNet(PolicyConfig(hidden=16, layers=1, action_set="all")).eval()
    np.testing.assert_array_equal(
        ScheduleBuilder(swapped, 1, "all").observe()[0], ScheduleBuilder(batch, 1, "all").observe()[0]
    )
    torch.testing.assert_close(first_logits(plain, swapped), first_logits(plain, batch))


def test_one_net_decodes_every_size_and_loads_back_the_same(net, tmp_path):
    for jobs, machines in ((3, 3), (8, 4), (4, 8)):
        batch = generate_instances(2, jobs, machines, seed=4)
        rollouts = decode(net, batch, 3, torch.Generator().manual_seed(0))
        assert rollouts.starts.shape == (6, jobs, machines)
        assert (rollouts.makespan >= np.repeat(batch.lower_bound(), 3)).all()
    scheduler = Scheduler(net)
    loaded = load_scheduler(scheduler.save(tmp_path / "scheduler"))
    assert loaded.net.config == net.config
    ft06 = load_instance("ft06")
    np.testing.assert_array_equal(loaded.solve(ft06, samples=4, seed=2), scheduler.solve(ft06, samples=4, seed=2))


def test_the_context_is_required_exactly_with_an_operation_encoder(net):
    batch = generate_instances(1, 3, 3, seed=5)
    features, mask, machine = (torch.from_numpy(a) for a in ScheduleBuilder(batch, 1, "all").observe())
    with pytest.raises(ValueError, match="context: needed exactly when operation_layers > 0"):
        net(features, mask, machine)
    plain = DispatchNet(PolicyConfig(hidden=8, layers=1))
    with pytest.raises(ValueError, match="context"):
        plain(features, mask, machine, torch.zeros(1, 3, 8))
    with pytest.raises(ValueError, match="operation_layers >= 0"):
        PolicyConfig(operation_layers=-1)
