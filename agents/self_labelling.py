"""Self-labelling trainer of a job-shop dispatcher (after Corsini et al., NeurIPS 2024).

Each iteration draws random instances of the training size, builds many schedules of each with the
current policy (one greedy, the rest sampled), keeps the shortest, and trains the policy by
cross-entropy to choose that schedule's jobs again. No reward shaping, no value function. The
checkpoint kept is the one with the shortest greedy makespans on a fixed set of generated
validation instances; the shipped benchmark instances are used only for the final report.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter

from agents.jssp_net import DispatchNet, PolicyConfig
from agents.jssp_policy import RULES, Scheduler, decode, fit_labels, load_scheduler, rule_decode
from envs.jobshop import Instance, InstanceError, check_schedule, load_instance
from envs.jssp_batch import ActionSet, InstanceBatch, generate_instances


@dataclass(frozen=True)
class SelfLabellingConfig:
    """Hyperparameters of self-labelling; times are in minutes where named so.

    Attributes:
        hidden, layers, action_set, operation_layers, machine_state: the dispatcher's shape (`PolicyConfig`).
        n_jobs, n_machines, time_low, time_high: the generated training and validation instances.
        iterations: training iterations (each: new instances, sampling, updates).
        instances_per_iteration: instances drawn per iteration.
        samples: schedules built per instance (one greedy, the rest sampled); the best is the label.
        temperature: softmax temperature of sampling.
        direction_probe: the saved scheduler's split of a budget of several schedules between the
            instance and the instance read backwards (`agents.jssp_policy.Scheduler`); training is unchanged.
        learning_rate, grad_clip: Adam step size and gradient-norm limit.
        minibatch_states: decisions per gradient step.
        label_epochs: passes over each iteration's labelled decisions.
        validation_instances, validation_seed: the fixed generated validation set (never a benchmark instance).
        validate_every: iterations between validations (and checkpoint choices).
        max_minutes: wall-clock limit of training; the run stops early, says so, and keeps the best checkpoint.
        report_instances: instances (shipped names or instance files) solved by the chosen checkpoint
            after training; one without a best known makespan is reported without a gap.
        report_samples: schedules per report instance (1: greedy; more: best of greedy plus sampled).
        report_seed: seed of the report's sampling.
        label_rules: dispatching rules (`agents.jssp_policy.RULES`) whose schedules join the sampled
            ones as label candidates: a rule's schedule is the label where it beats every sample,
            which teaches an untrained policy fast and stops mattering once samples beat the rules.
    """

    hidden: int = 64
    layers: int = 2
    action_set: str = ActionSet.ACTIVE.value
    operation_layers: int = 0
    machine_state: bool = False
    n_jobs: int = 15
    n_machines: int = 15
    time_low: int = 1
    time_high: int = 99
    iterations: int = 1000
    instances_per_iteration: int = 4
    samples: int = 64
    temperature: float = 1.0
    direction_probe: float = 0.0
    learning_rate: float = 5e-4
    grad_clip: float = 1.0
    minibatch_states: int = 256
    label_epochs: int = 1
    validation_instances: int = 32
    validation_seed: int = 10_000
    validate_every: int = 25
    max_minutes: float = 85.0
    report_instances: tuple[str, ...] = ()
    report_samples: tuple[int, ...] = (1,)
    report_seed: int = 0
    label_rules: tuple[str, ...] = ()
    policy: PolicyConfig = field(init=False)

    def __post_init__(self) -> None:
        positive = (
            "n_jobs",
            "n_machines",
            "iterations",
            "instances_per_iteration",
            "samples",
            "minibatch_states",
            "label_epochs",
            "validation_instances",
            "validate_every",
        )
        for name in positive:
            if not getattr(self, name) >= 1:
                raise ValueError(f"self_labelling.{name}: must be >= 1, got {getattr(self, name)!r}")
        for name in ("temperature", "learning_rate", "grad_clip", "max_minutes"):
            if not getattr(self, name) > 0:
                raise ValueError(f"self_labelling.{name}: must be > 0, got {getattr(self, name)!r}")
        unknown = sorted(set(self.label_rules) - set(RULES))
        if unknown:
            raise ValueError(f"self_labelling.label_rules: unknown {unknown}; choose from {', '.join(RULES)}")
        if not 0.0 <= self.direction_probe <= 0.5:
            raise ValueError(f"self_labelling.direction_probe: must be within [0, 0.5], got {self.direction_probe!r}")
        for name in self.report_instances:
            try:
                load_instance(name)
            except InstanceError as exc:
                raise ValueError(f"self_labelling.report_instances: {exc}") from None
        if any(s < 1 for s in self.report_samples):
            raise ValueError(f"self_labelling.report_samples: each must be >= 1, got {self.report_samples!r}")
        try:
            object.__setattr__(
                self,
                "policy",
                PolicyConfig(self.hidden, self.layers, self.action_set, self.operation_layers, self.machine_state),
            )
        except ValueError as exc:
            raise ValueError(f"self_labelling: {exc}") from None


class SelfLabelling:
    """The self-labelling trainer, built by `experiments.train` from `configs/agent/self_labelling.yaml`."""

    reads: ClassVar[tuple[str, ...]] = ("seed",)  # train.yaml's run settings it reads (experiments.run_settings)
    budget: ClassVar[str] = "agent.iterations, agent.max_minutes"

    def __init__(self, **params: Any) -> None:
        for key in ("report_instances", "report_samples", "label_rules"):
            if key in params:
                params[key] = tuple(params[key])
        try:
            self.config = SelfLabellingConfig(**params)
        except TypeError as exc:
            raise ValueError(f"agent (self_labelling): {exc}") from None

    def fit(self, cfg: Any, out_dir: Path) -> float:
        """Train from `cfg.seed`, keep the best checkpoint in `out_dir / "scheduler"`; return minus its validation gap.

        TensorBoard scalars go to `out_dir / "tb"`; the final report of the benchmark instances
        to `out_dir / "report.json"`.
        """
        c = self.config
        seed = int(cfg.seed)
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        sampler = torch.Generator().manual_seed(seed)
        net = DispatchNet(c.policy)
        optimizer = torch.optim.Adam(net.parameters(), lr=c.learning_rate)
        validation = generate_instances(
            c.validation_instances, c.n_jobs, c.n_machines, c.validation_seed, c.time_low, c.time_high
        )
        bound = validation.lower_bound()
        out_dir = Path(out_dir)
        scheduler_dir = out_dir / "scheduler"
        writer = SummaryWriter(str(out_dir / "tb"))
        history: list[dict[str, float]] = []
        best_gap, started, cpu_started = float("inf"), time.monotonic(), time.process_time()
        try:
            for it in range(1, c.iterations + 1):
                stats = self._iteration(net, optimizer, rng, sampler)
                for key, value in stats.items():
                    writer.add_scalar(key, value, it)
                if it % c.validate_every == 0 or it == c.iterations:
                    gap = validation_gap(net, validation, bound)
                    writer.add_scalar("validation/gap_to_lower_bound", gap, it)
                    minutes = (time.monotonic() - started) / 60
                    cpu_minutes = (time.process_time() - cpu_started) / 60
                    history.append(
                        {
                            "iteration": it,
                            "minutes": minutes,
                            "cpu_minutes": cpu_minutes,
                            "validation_gap": gap,
                            **stats,
                        }
                    )
                    if gap < best_gap:
                        best_gap = gap
                        Scheduler(net, c.temperature, c.direction_probe).save(scheduler_dir)
                    print(
                        f"iteration {it}/{c.iterations} ({minutes:.1f} min, {cpu_minutes:.1f} CPU min): "
                        f"loss {stats['train/loss']:.3f}, "
                        f"best sampled {stats['train/best_gap_to_lower_bound']:.3f}, "
                        f"label {stats['train/label_gap_to_lower_bound']:.3f} "
                        f"({stats['train/rule_labels']:.0%} by rules), "
                        f"validation gap to lower bound {gap:.4f} (best {best_gap:.4f})",
                        flush=True,
                    )
                    if minutes > c.max_minutes:
                        print(f"stopped at iteration {it}: {minutes:.1f} min > max_minutes {c.max_minutes}", flush=True)
                        break
        finally:
            writer.close()
        (out_dir / "history.json").write_text(json.dumps(history, indent=1) + "\n")
        if history:
            plot_history(history, out_dir / "training_curve.png")
        if c.report_instances:
            rows = report(load_scheduler(scheduler_dir), c.report_instances, c.report_samples, c.report_seed)
            rules = rule_report(c.report_instances)
            summary = {"config": _plain(c), "rows": rows, "rules": rules}
            (out_dir / "report.json").write_text(json.dumps(summary, indent=1) + "\n")
            plot_report(rows, rules, out_dir / "gaps.png")
            for row in rows:
                to_best = "no best known makespan" if row["gap"] is None else f"gap {100 * row['gap']:.2f}%"
                print(
                    f"{row['instance']}: samples {row['samples']} makespan {row['makespan']:.0f} "
                    f"{to_best} ({row['seconds']:.2f} s, {row['cpu_seconds']:.2f} CPU s)",
                    flush=True,
                )
        return -best_gap

    def _iteration(
        self, net: DispatchNet, optimizer: torch.optim.Optimizer, rng: np.random.Generator, sampler: torch.Generator
    ) -> dict[str, float]:
        """Sample schedules of fresh instances, keep each one's best, and fit the policy to it."""
        c = self.config
        batch = generate_instances(c.instances_per_iteration, c.n_jobs, c.n_machines, rng, c.time_low, c.time_high)
        net.eval()
        rollouts = decode(net, batch, c.samples, sampler, c.temperature)
        makespans = rollouts.makespan.reshape(len(batch), c.samples)
        best = makespans.argmin(axis=1)
        labels = rollouts.actions.reshape(len(batch), c.samples, -1)[np.arange(len(batch)), best]
        label_makespan = makespans.min(axis=1)
        rule_wins = np.zeros(len(batch), dtype=bool)
        for rule in c.label_rules:
            ruled = rule_decode(batch, rule)
            better = ruled.makespan < label_makespan
            labels[better], label_makespan[better] = ruled.actions[better], ruled.makespan[better]
            rule_wins |= better
        losses = fit_labels(net, optimizer, batch, labels, c.label_epochs, c.minibatch_states, c.grad_clip, sampler)
        lb = batch.lower_bound()[:, None]
        return {
            "train/loss": float(np.mean(losses)) if losses else 0.0,
            "train/best_gap_to_lower_bound": float((makespans.min(axis=1, keepdims=True) / lb - 1).mean()),
            "train/label_gap_to_lower_bound": float((label_makespan / lb[:, 0] - 1).mean()),
            "train/rule_labels": float(rule_wins.mean()),
            "train/mean_gap_to_lower_bound": float((makespans / lb - 1).mean()),
            "train/greedy_gap_to_lower_bound": float((makespans[:, :1] / lb - 1).mean()),
        }


def validation_gap(net: DispatchNet, batch: InstanceBatch, bound: np.ndarray) -> float:
    """Mean relative gap of the greedy makespans of `batch` to its lower bounds."""
    net.eval()
    rollouts = decode(net, batch, 1, torch.Generator())
    return float((rollouts.makespan / bound - 1).mean())


def report(scheduler: Scheduler, names: Sequence[str], samples: Sequence[int], seed: int = 0) -> list[dict[str, Any]]:
    """Solve each named instance with each sample budget; every schedule is checked.

    Returns one row per (instance, samples): makespan, gap to the best known makespan (None where
    the instance has none), and the wall-clock and CPU seconds the solve took (CPU time is the fair
    measure on a shared machine).
    """
    rows = []
    for name in names:
        instance = load_instance(name)
        for s in samples:
            wall, cpu = time.perf_counter(), time.process_time()
            starts = scheduler.solve(instance, samples=s, seed=seed)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            makespan = check_schedule(instance, starts)
            gap = _gap(instance, makespan)
            rows.append(
                {"instance": name, "samples": s, "makespan": makespan, "gap": gap, "seconds": wall, "cpu_seconds": cpu}
            )
    return rows


def rule_report(names: Sequence[str]) -> list[dict[str, Any]]:
    """Makespan and gap (None without a best known makespan) of every dispatching rule (`RULES`) on each instance.

    The rules dispatch event-driven (non-delay), as in the platform's Scheduling env.
    """
    rows = []
    for name in names:
        instance = load_instance(name)
        batch = InstanceBatch.of([instance])
        for rule in RULES:
            starts = rule_decode(batch, rule).starts[0]
            makespan = check_schedule(instance, starts)
            rows.append({"instance": name, "rule": rule, "makespan": makespan, "gap": _gap(instance, makespan)})
    return rows


def plot_report(rows: Sequence[dict[str, Any]], rules: Sequence[dict[str, Any]], path: Path) -> None:
    """Bar chart of the gap to the best known makespan per instance.

    One bar per sample budget of the learned policy, and one for the best rule on that instance;
    instances without a best known makespan are left out.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    rows = [r for r in rows if r["gap"] is not None]
    names = list(dict.fromkeys(r["instance"] for r in rows))
    series = {
        f"learned, best of {s}" if s > 1 else "learned, greedy": s for s in dict.fromkeys(r["samples"] for r in rows)
    }
    gap = {(r["instance"], r["samples"]): 100 * r["gap"] for r in rows}
    best_rule = {n: 100 * min(r["gap"] for r in rules if r["instance"] == n) for n in names}
    width = 0.8 / (len(series) + 1)
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.5 * len(names)), 3.8))
    ax.bar(x, [best_rule[n] for n in names], width, label="best of SPT, MWKR, MOPNR", color="grey")
    for k, (label, s) in enumerate(series.items(), start=1):
        ax.bar(x + k * width, [gap[(n, s)] for n in names], width, label=label)
    ax.set_xticks(x + 0.4 - width / 2, names, rotation=90)
    ax.set_ylabel("gap to best known makespan, %")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_history(history: Sequence[dict[str, float]], path: Path) -> None:
    """Plot the validation greedy gap and the training label gap (to the lower bound) against minutes."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    minutes = [h["minutes"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(minutes, [h["validation_gap"] for h in history], label="validation, greedy")
    ax.plot(
        minutes, [h["train/label_gap_to_lower_bound"] for h in history], label="training label (best sampled or rule)"
    )
    ax.plot(minutes, [h["train/greedy_gap_to_lower_bound"] for h in history], label="training, greedy", alpha=0.5)
    ax.set_xlabel("training time, min")
    ax.set_ylabel("makespan gap to the lower bound")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _gap(instance: Instance, makespan: int) -> float | None:
    return None if instance.best_known is None else instance.gap(makespan)


def _plain(config: SelfLabellingConfig) -> dict[str, Any]:
    values = asdict(config)
    values.pop("policy")
    return values
