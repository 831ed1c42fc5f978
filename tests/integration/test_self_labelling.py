"""Self-labelling for real: a tiny run through the trainer class, its checkpoint, and what it learns."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from agents.jssp_net import DispatchNet, PolicyConfig
from agents.jssp_policy import Scheduler, decode, fit_labels, load_scheduler, rule_decode
from agents.self_labelling import SelfLabelling, plot_report, report, rule_report
from envs.jobshop import check_schedule, load_instance
from envs.jssp_batch import generate_instances
from experiments.build import is_trainer
from experiments.train import train
from tests.lines import REPO

TINY = {
    "hidden": 16,
    "layers": 1,
    "n_jobs": 6,
    "n_machines": 6,
    "iterations": 4,
    "instances_per_iteration": 2,
    "samples": 8,
    "validation_instances": 4,
    "validate_every": 2,
    "label_rules": ["mwkr"],
    "report_instances": ["ft06"],
    "report_samples": [1, 4],
}


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One intra-op thread, as the preset trains: on a shared 2-core machine more threads only wait on each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def compose_preset(overrides: list[str]) -> DictConfig:
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        return compose("train", overrides=["experiment=scheduling", *overrides])


def test_the_preset_composes_to_this_trainer():
    cfg = compose_preset([])
    assert is_trainer(cfg)
    params = OmegaConf.to_container(cfg.agent)
    assert isinstance(params, dict)
    params.pop("_target_")
    trainer = SelfLabelling(**params)
    assert trainer.config.n_jobs == trainer.config.n_machines == 15
    assert trainer.config.policy.machine_state
    assert trainer.config.policy.operation_layers == 2
    assert "ta01" in trainer.config.report_instances
    assert 512 in trainer.config.report_samples
    assert trainer.config.direction_probe == 0.0625


def test_a_tiny_preset_run_writes_a_scheduler_that_solves_ta01(tmp_path):
    overrides = [f"agent.{k}={json.dumps(v).replace(' ', '')}" for k, v in TINY.items()]
    objective = train(compose_preset(overrides), tmp_path)
    history = json.loads((tmp_path / "history.json").read_text())
    assert [h["iteration"] for h in history] == [2, 4]
    assert objective == -min(h["validation_gap"] for h in history)
    assert (tmp_path / "training_curve.png").stat().st_size > 0
    tags = EventAccumulator(str(next((tmp_path / "tb").iterdir()))).Reload().Tags()["scalars"]
    assert {"train/loss", "train/best_gap_to_lower_bound", "validation/gap_to_lower_bound"} <= set(tags)
    rows = json.loads((tmp_path / "report.json").read_text())["rows"]
    assert [(r["instance"], r["samples"]) for r in rows] == [("ft06", 1), ("ft06", 4)]
    assert rows[1]["makespan"] <= rows[0]["makespan"]
    assert all(r["makespan"] >= 55 for r in rows)  # ft06's optimum

    scheduler = load_scheduler(tmp_path / "scheduler")
    assert scheduler.direction_probe == 0.0625  # the preset's setting reaches the saved scheduler
    ta01 = load_instance("ta01")
    greedy = scheduler.solve(ta01)
    assert greedy.shape == (15, 15)
    np.testing.assert_array_equal(scheduler.solve(ta01, samples=1, seed=5), greedy)  # greedy is deterministic
    greedy_makespan = check_schedule(ta01, greedy)
    sampled_makespan = check_schedule(ta01, scheduler.solve(ta01, samples=8, seed=1))
    assert ta01.best_known <= sampled_makespan <= greedy_makespan


def test_a_saved_scheduler_refuses_another_format(tmp_path):
    SelfLabelling(**{**TINY, "iterations": 2, "report_instances": []}).fit(OmegaConf.create({"seed": 1}), tmp_path)
    config = tmp_path / "scheduler" / "config.json"
    config.write_text(config.read_text().replace('"features": ', '"features": 1'))
    with pytest.raises(ValueError, match="features"):
        load_scheduler(tmp_path / "scheduler")


@pytest.mark.parametrize(("operation_layers", "machine_state"), [(0, False), (1, False), (1, True)])
def test_cross_entropy_on_fixed_labels_falls_and_greedy_follows_them(operation_layers, machine_state):
    torch.manual_seed(0)
    batch = generate_instances(4, 6, 6, seed=3)
    labels = rule_decode(batch, "mwkr")
    net = DispatchNet(PolicyConfig(hidden=32, layers=1, operation_layers=operation_layers, machine_state=machine_state))
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    losses = [fit_labels(net, optimizer, batch, labels.actions, 1, 10_000, 10.0, generator)[0] for _ in range(150)]
    assert losses[-1] < 0.5 * losses[0]
    greedy = decode(net, batch, 1, torch.Generator())
    agreement = (greedy.actions == labels.actions).mean()
    assert agreement > 0.8
    assert np.abs(greedy.makespan / labels.makespan - 1).mean() < 0.05


def test_bad_hyperparameters_are_named():
    with pytest.raises(ValueError, match=r"self_labelling\.samples: must be >= 1"):
        SelfLabelling(samples=0)
    with pytest.raises(ValueError, match=r"self_labelling\.direction_probe: must be within \[0, 0.5\]"):
        SelfLabelling(direction_probe=0.75)
    with pytest.raises(ValueError, match="label_rules: unknown"):
        SelfLabelling(label_rules=["fastest"])
    with pytest.raises(ValueError, match="unexpected keyword"):
        SelfLabelling(sample=3)
    with pytest.raises(ValueError, match="action_set: 'greedy' is unknown"):
        SelfLabelling(action_set="greedy")


def test_report_instances_are_checked_before_training(tmp_path):
    with pytest.raises(ValueError, match=r"self_labelling\.report_instances: instance 'ta99': neither a shipped"):
        SelfLabelling(report_instances=["ft06", "ta99"])
    bad = tmp_path / "bad.txt"
    bad.write_text("2 3\n0 3 1 2 2 2\n0 2 2 1\n")
    with pytest.raises(ValueError, match=r"self_labelling\.report_instances: instance file .*bad.txt', line 3"):
        SelfLabelling(report_instances=[str(bad)])


def test_an_instance_without_a_best_known_makespan_is_reported_without_a_gap(tmp_path):
    mine = tmp_path / "ft06.txt"  # a user's 2x3 shop under a shipped name: no published bound
    mine.write_text("2 3\n0 3 1 2 2 2\n0 2 2 1 1 4\n")
    torch.manual_seed(0)
    scheduler = Scheduler(DispatchNet(PolicyConfig(16, 1)))
    rows = report(scheduler, ["ft06", str(mine)], [1, 2])
    assert [(r["instance"], r["samples"]) for r in rows] == [("ft06", 1), ("ft06", 2), (str(mine), 1), (str(mine), 2)]
    assert [r["gap"] is None for r in rows] == [False, False, True, True]
    assert rows[0]["gap"] == pytest.approx(rows[0]["makespan"] / 55 - 1)
    assert all(10 <= r["makespan"] <= 14 for r in rows[2:])  # the optimum is 10; one job alone needs 7
    rules = rule_report(["ft06", str(mine)])
    by = {(r["instance"], r["rule"]): r for r in rules}
    assert by[("ft06", "mwkr")]["makespan"] == 61
    assert by[(str(mine), "spt")] == {"instance": str(mine), "rule": "spt", "makespan": 11, "gap": None}
    plot_report(rows, rules, tmp_path / "gaps.png")
    assert (tmp_path / "gaps.png").stat().st_size > 0
