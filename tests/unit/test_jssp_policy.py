"""The dispatcher network: symmetric in jobs and machines, any instance size, saved and loaded whole."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from agents.jssp_net import DispatchNet, PolicyConfig
from agents.jssp_policy import Scheduler, decode, load_scheduler, replay, rule_decode
from envs.jobshop import check_schedule, load_instance, reversed_instance
from envs.jssp_batch import InstanceBatch, ScheduleBuilder, generate_instances


def logits_after(net: DispatchNet, batch: InstanceBatch, steps: tuple[int, ...] = ()) -> torch.Tensor:
    """Logits of the state reached by scheduling the next operation of `steps` (jobs), one per step."""
    builder = ScheduleBuilder(batch, 1, net.config.action_set)
    for job in steps:
        builder.step(np.array([job]))
    features, mask, machine = builder.observe()
    state = [torch.from_numpy(a) for a in builder.observe_machines()] if net.config.machine_state else []
    with torch.no_grad():
        context = net.job_context(
            net.encode_operations(batch), torch.zeros(1, dtype=torch.int64), torch.from_numpy(builder.next_op), *state
        )
        return net(torch.from_numpy(features), torch.from_numpy(mask), torch.from_numpy(machine), context)[0]


@pytest.fixture(params=[False, True], ids=["operations", "operations and machine state"])
def net(request: pytest.FixtureRequest) -> DispatchNet:
    torch.manual_seed(0)
    shape = PolicyConfig(hidden=16, layers=1, action_set="all", operation_layers=2, machine_state=request.param)
    return DispatchNet(shape).eval()


def test_relabelling_jobs_permutes_the_logits(net):
    batch = generate_instances(1, 6, 5, seed=1)
    perm = np.array([3, 0, 5, 1, 4, 2])
    relabelled = InstanceBatch(batch.routes[:, perm], batch.times[:, perm], batch.n_machines)
    inverse = np.argsort(perm)
    steps = (0, 2, 2, 5)
    torch.testing.assert_close(
        logits_after(net, relabelled, tuple(int(inverse[j]) for j in steps)), logits_after(net, batch, steps)[perm]
    )


def test_relabelling_machines_leaves_the_logits_alone(net):
    batch = generate_instances(1, 6, 5, seed=2)
    relabelled = InstanceBatch(np.array([4, 2, 0, 1, 3])[batch.routes], batch.times, batch.n_machines)
    torch.testing.assert_close(logits_after(net, relabelled, (1, 1, 3)), logits_after(net, batch, (1, 1, 3)))


def test_the_operation_encoder_sees_a_job_s_future_route(net):
    # two instances that differ only in the machines of job 0's last two operations (swapped): a
    # job-level net sees the same first state, the operation encoder does not
    batch = generate_instances(1, 4, 4, seed=3)
    routes = batch.routes.copy()
    routes[0, 0, [2, 3]] = routes[0, 0, [3, 2]]
    swapped = InstanceBatch(routes, batch.times, batch.n_machines)
    assert not torch.allclose(logits_after(net, swapped), logits_after(net, batch))
    plain = DispatchNet(PolicyConfig(hidden=16, layers=1, action_set="all")).eval()
    np.testing.assert_array_equal(
        ScheduleBuilder(swapped, 1, "all").observe()[0], ScheduleBuilder(batch, 1, "all").observe()[0]
    )
    torch.testing.assert_close(logits_after(plain, swapped), logits_after(plain, batch))


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


def test_the_context_is_required_exactly_with_an_operation_encoder_or_machine_state(net):
    batch = generate_instances(1, 3, 3, seed=5)
    features, mask, machine = (torch.from_numpy(a) for a in ScheduleBuilder(batch, 1, "all").observe())
    with pytest.raises(ValueError, match="context: needed exactly with operation_layers > 0 or machine_state"):
        net(features, mask, machine)
    if net.config.machine_state:
        with pytest.raises(ValueError, match="machine_state needs machines and route_left"):
            net.job_context(None, torch.zeros(1, dtype=torch.int64), torch.zeros(1, 3, dtype=torch.int64))
    plain = DispatchNet(PolicyConfig(hidden=8, layers=1))
    with pytest.raises(ValueError, match="context"):
        plain(features, mask, machine, torch.zeros(1, 3, 8))
    with pytest.raises(ValueError, match="operation_layers >= 0"):
        PolicyConfig(operation_layers=-1)


def reference_encoding(net: DispatchNet, batch: InstanceBatch) -> torch.Tensor:
    """`encode_operations` written out operation by operation, for one instance."""
    h = net.operation_embed(torch.from_numpy(batch.operation_features()[0]))
    jobs, ops = batch.routes.shape[1:]
    routes = batch.routes[0]
    for layer in net.operation_rounds:
        new = torch.empty_like(h)
        for j in range(jobs):
            for k in range(ops):
                before = h[j, k - 1] if k > 0 else torch.zeros_like(h[j, k])
                after = h[j, k + 1] if k < ops - 1 else torch.zeros_like(h[j, k])
                machine = h[torch.from_numpy(routes == routes[j, k])].mean(0)
                z = layer.own(h[j, k]) + layer.before(before) + layer.after(after) + layer.machine(machine)
                new[j, k] = h[j, k] + layer.out(torch.relu(z))
        h = new
    remaining = torch.stack([torch.stack([h[j, k:].mean(0) for k in range(ops)]) for j in range(jobs)])
    return net.operation_context(torch.cat([h, remaining], -1))


def test_the_operation_encoding_matches_its_definition(net):
    batch = generate_instances(1, 4, 3, seed=6)
    with torch.no_grad():
        torch.testing.assert_close(net.encode_operations(batch)[0], reference_encoding(net, batch))


def test_every_sample_reads_its_own_instance(net):
    # at a temperature near 0 sampling is greedy, so every sample of an instance in a batch must
    # build that instance's greedy schedule alone
    batch = generate_instances(3, 5, 4, seed=7)
    together = decode(net, batch, 4, torch.Generator().manual_seed(0), temperature=1e-6, greedy_first=False)
    for i in range(len(batch)):
        alone = decode(
            net, InstanceBatch(batch.routes[i : i + 1], batch.times[i : i + 1], batch.n_machines), 1, torch.Generator()
        )
        np.testing.assert_array_equal(together.actions[4 * i : 4 * i + 4], np.repeat(alone.actions, 4, axis=0))


def test_replayed_decisions_name_their_instance_and_step():
    batch = generate_instances(3, 4, 4, seed=8)
    labels = rule_decode(batch, "mwkr").actions
    decisions = replay(batch, labels, "active", machine_state=True)
    assert len(decisions.actions) == 3 * 16
    assert replay(batch, labels, "active").machine_features is None
    for i in range(len(batch)):
        alone = replay(
            InstanceBatch(batch.routes[i : i + 1], batch.times[i : i + 1], batch.n_machines),
            labels[i : i + 1],
            "active",
            machine_state=True,
        )
        rows = decisions.instance == i
        for name in ("features", "masks", "machines", "next_ops", "actions", "machine_features", "route_left"):
            np.testing.assert_array_equal(getattr(decisions, name)[rows], getattr(alone, name), err_msg=name)
    np.testing.assert_array_equal(decisions.actions.reshape(16, 3).T, labels)


def test_a_folder_of_format_1_loads_as_a_job_level_net(tmp_path):
    torch.manual_seed(1)
    plain = Scheduler(DispatchNet(PolicyConfig(hidden=8, layers=1)))
    folder = plain.save(tmp_path / "old")
    config = json.loads((folder / "config.json").read_text())
    for key in ("operation_layers", "operation_features", "machine_state", "machine_features", "direction_probe"):
        del config[key]
    (folder / "config.json").write_text(json.dumps({**config, "format": 1}))
    loaded = load_scheduler(folder)
    assert loaded.net.config.operation_layers == 0
    ft06 = load_instance("ft06")
    np.testing.assert_array_equal(loaded.solve(ft06), plain.solve(ft06))
    (folder / "config.json").write_text(json.dumps({**config, "format": 2, "operation_layers": 0}))
    assert not load_scheduler(folder).net.config.machine_state
    assert load_scheduler(folder).direction_probe == 0.0
    (folder / "config.json").write_text(json.dumps({**config, "format": 5}))
    with pytest.raises(ValueError, match=r"format 5 .* reads formats \[1, 2, 3, 4\]"):
        load_scheduler(folder)


def test_a_folder_with_other_machine_features_is_refused(tmp_path):
    folder = Scheduler(DispatchNet(PolicyConfig(hidden=8, layers=1, machine_state=True))).save(tmp_path / "s")
    assert load_scheduler(folder).net.config.machine_state
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "machine_features": 4}))
    with pytest.raises(ValueError, match="4 machine features"):
        load_scheduler(folder)


def test_the_reversed_instance_gets_its_probe_and_the_rest_goes_to_the_shorter_direction(net, tmp_path):
    ta01 = load_instance("ta01")
    backward = reversed_instance(ta01)
    both_ways = Scheduler(net, direction_probe=0.125)
    np.testing.assert_array_equal(both_ways.solve(ta01), Scheduler(net).solve(ta01))  # greedy: one forward schedule
    greedy = [check_schedule(shop, Scheduler(net).solve(shop)) for shop in (ta01, backward)]
    assert check_schedule(ta01, both_ways.solve(ta01, samples=2)) == min(greedy)
    for seed in range(2):
        generator = torch.Generator().manual_seed(seed)
        probes = [decode(net, InstanceBatch.of([shop]), 2, generator) for shop in (ta01, backward)]
        shorter = (ta01, backward)[int(probes[1].makespan.mean() < probes[0].makespan.mean())]
        rest = decode(net, InstanceBatch.of([shorter]), 12, generator, greedy_first=False)
        expected = min(int(r.makespan.min()) for r in (*probes, rest))
        assert check_schedule(ta01, both_ways.solve(ta01, samples=16, seed=seed)) == expected
    halves = Scheduler(net, direction_probe=0.5).solve(ta01, samples=4, seed=1)
    generator = torch.Generator().manual_seed(1)
    expected = min(int(decode(net, InstanceBatch.of([shop]), 2, generator).makespan.min()) for shop in (ta01, backward))
    assert check_schedule(ta01, halves) == expected
    odd = Scheduler(net, direction_probe=0.5).solve(ta01, samples=3, seed=2)  # one each way, the third to the shorter
    generator = torch.Generator().manual_seed(2)
    probes = [decode(net, InstanceBatch.of([shop]), 1, generator) for shop in (ta01, backward)]
    shorter = (ta01, backward)[int(probes[1].makespan[0] < probes[0].makespan[0])]
    third = decode(net, InstanceBatch.of([shorter]), 1, generator, greedy_first=False)
    assert check_schedule(ta01, odd) == min(int(r.makespan.min()) for r in (*probes, third))
    loaded = load_scheduler(both_ways.save(tmp_path / "both"))
    assert loaded.direction_probe == 0.125
    np.testing.assert_array_equal(loaded.solve(ta01, samples=16, seed=1), both_ways.solve(ta01, samples=16, seed=1))
    with pytest.raises(ValueError, match=r"direction_probe must be within \[0, 0.5\], got 0.6"):
        Scheduler(net, direction_probe=0.6)


def test_without_a_probe_the_whole_budget_searches_forward_greedy_first(net):
    ft06 = load_instance("ft06")
    forward = Scheduler(net).solve(ft06, samples=8, seed=3)
    rollouts = decode(net, InstanceBatch.of([ft06]), 8, torch.Generator().manual_seed(3))
    np.testing.assert_array_equal(forward, rollouts.starts[int(np.argmin(rollouts.makespan))])
    assert check_schedule(ft06, forward) <= check_schedule(ft06, Scheduler(net).solve(ft06))
