"""A job-shop dispatcher that sees the jobs as a set: one network for every instance size.

`DispatchNet` scores each unfinished job's next operation from its features (`envs.jssp_batch`)
and from messages over the job set: the pooled embedding of all open jobs and of the jobs whose
next operation needs the same machine. With `operation_layers`, it first encodes the instance's
operations once (messages along each job's route and among the operations of each machine), and
each candidate also reads its operation's embedding and the mean over the job's remaining ones.
With `machine_state`, each job also reads the current state of the machines its remaining
operations need (how long each is booked, its work left, its queue), averaged over its route.
Its weights are shared across jobs and operations, so it applies to any number of jobs and
machines. `Scheduler` decodes schedules with it (greedy, or best of sampled) and is what
`load_scheduler` returns.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from envs.jobshop import Instance, check_schedule
from envs.jssp_batch import (
    N_FEATURES,
    N_MACHINE_FEATURES,
    N_OPERATION_FEATURES,
    ActionSet,
    InstanceBatch,
    ScheduleBuilder,
)

_FORMAT = 3  # version of the saved scheduler folder (3: with machine_state; 2 and 1, without, still load)
_READS = {1, 2, _FORMAT}
_CONFIG_FILE, _WEIGHTS_FILE = "config.json", "model.pt"


@dataclass(frozen=True)
class PolicyConfig:
    """Shape of a dispatcher: embedding width, rounds, and the action set it chooses from.

    `layers` rounds of messages over the jobs; `operation_layers` rounds over the instance's
    operations first (0: no operation encoder); `machine_state`: each job also reads the current
    state of the machines on its remaining route (`ScheduleBuilder.observe_machines`).
    """

    hidden: int = 64
    layers: int = 2
    action_set: str = ActionSet.ACTIVE.value
    operation_layers: int = 0
    machine_state: bool = False

    def __post_init__(self) -> None:
        if self.hidden < 1 or self.layers < 0 or self.operation_layers < 0:
            raise ValueError(
                "PolicyConfig: hidden must be >= 1, layers and operation_layers >= 0, "
                f"got {self.hidden}, {self.layers}, {self.operation_layers}"
            )
        if self.action_set not in {a.value for a in ActionSet}:
            names = ", ".join(a.value for a in ActionSet)
            raise ValueError(f"PolicyConfig.action_set: {self.action_set!r} is unknown; choose one of {names}")


class _MessagePassing(nn.Module):
    """One round: each job reads the mean and max over open jobs and the mean over its machine's queue."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.own = nn.Linear(hidden, hidden)
        self.pooled = nn.Linear(2 * hidden, hidden, bias=False)
        self.machine = nn.Linear(hidden, hidden, bias=False)
        self.out = nn.Linear(hidden, hidden)

    def forward(self, h: torch.Tensor, open_: torch.Tensor, same_machine: torch.Tensor) -> torch.Tensor:
        weights = open_.unsqueeze(-1).to(h.dtype)
        mean = (h * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        largest = h.masked_fill(~open_.unsqueeze(-1), -1e4).amax(1)
        queue = same_machine @ h
        z = torch.relu(self.own(h) + self.pooled(torch.cat([mean, largest], -1)).unsqueeze(1) + self.machine(queue))
        return h + self.out(z)


class _RouteMessagePassing(nn.Module):
    """One round over operations: each reads its job's previous and next operation and its machine's mean."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.own = nn.Linear(hidden, hidden)
        self.before = nn.Linear(hidden, hidden, bias=False)
        self.after = nn.Linear(hidden, hidden, bias=False)
        self.machine = nn.Linear(hidden, hidden, bias=False)
        self.out = nn.Linear(hidden, hidden)

    def forward(self, h: torch.Tensor, on_machine: torch.Tensor) -> torch.Tensor:
        """`h`: (instances, jobs, operations, hidden); `on_machine`: 0/1 (instances, machines, jobs * operations)."""
        n, j, o, d = h.shape
        before = nn.functional.pad(h[:, :, :-1], (0, 0, 1, 0))
        after = nn.functional.pad(h[:, :, 1:], (0, 0, 0, 1))
        means = (on_machine @ h.reshape(n, j * o, d)) / on_machine.sum(2, keepdim=True).clamp(min=1.0)
        machine_mean = on_machine.transpose(1, 2) @ means
        z = self.own(h) + self.before(before) + self.after(after) + self.machine(machine_mean.reshape(n, j, o, d))
        return h + self.out(torch.relu(z))


class DispatchNet(nn.Module):
    """Per-job logits from shared weights over the set of unfinished jobs."""

    def __init__(self, config: PolicyConfig) -> None:
        super().__init__()
        self.config = config
        d = config.hidden
        self.embed = nn.Sequential(nn.Linear(N_FEATURES, d), nn.ReLU(), nn.Linear(d, d))
        self.rounds = nn.ModuleList(_MessagePassing(d) for _ in range(config.layers))
        self.head = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, 1))
        if config.operation_layers:
            self.operation_embed = nn.Sequential(nn.Linear(N_OPERATION_FEATURES, d), nn.ReLU(), nn.Linear(d, d))
            self.operation_rounds = nn.ModuleList(_RouteMessagePassing(d) for _ in range(config.operation_layers))
            self.operation_context = nn.Linear(2 * d, d)
        if config.machine_state:
            self.machine_embed = nn.Sequential(nn.Linear(N_MACHINE_FEATURES, d), nn.ReLU(), nn.Linear(d, d))
            self.route_context = nn.Linear(d, d, bias=False)

    @property
    def needs_context(self) -> bool:
        """Whether `forward` takes a context (`job_context`): with an operation encoder or machine state."""
        return bool(self.config.operation_layers) or self.config.machine_state

    def job_context(
        self,
        operations: torch.Tensor | None,
        instance: torch.Tensor,
        next_op: torch.Tensor,
        machines: torch.Tensor | None = None,
        route_left: torch.Tensor | None = None,
    ) -> torch.Tensor | None:
        """What each job adds to its embedding beyond its features: (rollouts, jobs, hidden), or None.

        Args:
            operations: `encode_operations` of the batch, or None (no operation encoder).
            instance: int64 (rollouts,), the instance each rollout schedules.
            next_op: int64 (rollouts, jobs), each job's next operation (operations when finished).
            machines: float32 (rollouts, machines, N_MACHINE_FEATURES), from
                `ScheduleBuilder.observe_machines`; needed with `machine_state`.
            route_left: float32 (rollouts, jobs, machines), the same method's remaining routes.
        """
        context = operation_context(operations, instance, next_op)
        if not self.config.machine_state:
            return context
        if machines is None or route_left is None:
            raise ValueError(
                "job_context: machine_state needs machines and route_left (ScheduleBuilder.observe_machines)"
            )
        route = self.route_context(route_left @ self.machine_embed(machines))
        return route if context is None else context + route

    def encode_operations(self, batch: InstanceBatch) -> torch.Tensor | None:
        """What each operation adds to its job's embedding when it is next: (instances, jobs, operations, hidden).

        Computed once per instance; None without an operation encoder.
        """
        if not self.config.operation_layers:
            return None
        n, j, o = batch.routes.shape
        h = self.operation_embed(torch.from_numpy(batch.operation_features()))
        on_machine = nn.functional.one_hot(torch.from_numpy(batch.routes.reshape(n, j * o)), batch.n_machines)
        on_machine = on_machine.transpose(1, 2).to(h.dtype)
        for layer in self.operation_rounds:
            h = layer(h, on_machine)
        remaining = torch.flip(torch.cumsum(torch.flip(h, [2]), 2), [2]) / torch.arange(o, 0, -1).view(1, 1, o, 1)
        return self.operation_context(torch.cat([h, remaining], -1))

    def forward(
        self,
        features: torch.Tensor,
        mask: torch.Tensor,
        machine: torch.Tensor,
        context: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits (rollouts, jobs) over the valid jobs (-inf elsewhere).

        Args:
            features: float32 (rollouts, jobs, N_FEATURES), from `ScheduleBuilder.observe`.
            mask: bool (rollouts, jobs), the valid actions.
            machine: int64 (rollouts, jobs), the machine of each job's next operation, -1 if finished.
            context: (rollouts, jobs, hidden), from `job_context`; needed exactly when
                `needs_context`, else None.
        """
        if (context is None) == self.needs_context:
            raise ValueError(
                "context: needed exactly with operation_layers > 0 or machine_state "
                f"({self.config.operation_layers}, {self.config.machine_state})"
            )
        open_ = machine >= 0
        same = (machine.unsqueeze(2) == machine.unsqueeze(1)) & open_.unsqueeze(1) & open_.unsqueeze(2)
        same_f = same.to(features.dtype)
        same_f = same_f / same_f.sum(2, keepdim=True).clamp(min=1.0)
        h = self.embed(features)
        if context is not None:
            h = h + context * open_.unsqueeze(-1)
        for layer in self.rounds:
            h = layer(h, open_, same_f)
        return self.head(h).squeeze(-1).masked_fill(~mask, float("-inf"))


def operation_context(
    operations: torch.Tensor | None, instance: torch.Tensor, next_op: torch.Tensor
) -> torch.Tensor | None:
    """Each job's next-operation row of `operations` (`DispatchNet.encode_operations`), for `DispatchNet.forward`.

    Args:
        operations: (instances, jobs, operations, hidden), or None (no operation encoder: returns None).
        instance: int64 (rollouts,), the instance each rollout schedules.
        next_op: int64 (rollouts, jobs), each job's next operation (operations when finished).
    """
    if operations is None:
        return None
    last = operations.shape[2] - 1
    jobs = torch.arange(operations.shape[1])
    return operations[instance.unsqueeze(1), jobs.unsqueeze(0), next_op.clamp(max=last)]


@dataclass
class Rollouts:
    """Complete schedules of a batch.

    Attributes:
        makespan: (rollouts,) makespans.
        starts: (rollouts, jobs, operations) start times.
        actions: (rollouts, steps) the job chosen at each step.
    """

    makespan: np.ndarray
    starts: np.ndarray
    actions: np.ndarray


@torch.inference_mode()
def decode(
    net: DispatchNet,
    batch: InstanceBatch,
    samples: int,
    generator: torch.Generator,
    temperature: float = 1.0,
    greedy_first: bool = True,
) -> Rollouts:
    """Build `samples` schedules of every instance of `batch` with `net`.

    The first rollout of each instance is greedy when `greedy_first` (the rest sample from the
    policy's softmax at `temperature`), so best-of-samples is never worse than greedy.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    builder = ScheduleBuilder(batch, samples, net.config.action_set)
    greedy = torch.zeros(builder.n_rollouts, dtype=torch.bool)
    if greedy_first:
        greedy[::samples] = True
    everyone_greedy = bool(greedy.all())
    operations = net.encode_operations(batch)
    instance = torch.arange(builder.n_rollouts) // samples
    actions = np.empty((builder.n_rollouts, builder.n_steps), dtype=np.int64)
    for t in range(builder.n_steps):
        features, mask, machine = builder.observe()
        state = [torch.from_numpy(a) for a in builder.observe_machines()] if net.config.machine_state else []
        context = net.job_context(operations, instance, torch.from_numpy(builder.next_op), *state)
        logits = net(torch.from_numpy(features), torch.from_numpy(mask), torch.from_numpy(machine), context)
        choice = logits.argmax(1)
        if not everyone_greedy:
            sampled = torch.multinomial(torch.softmax(logits / temperature, 1), 1, generator=generator).squeeze(1)
            choice = torch.where(greedy, choice, sampled)
        actions[:, t] = choice.numpy()
        builder.step(actions[:, t])
    return Rollouts(builder.makespan.copy(), builder.starts, actions)


# Dispatching rules over the builder's features: (feature column, sign), the lowest signed value first.
RULES = {"spt": (0, 1.0), "mwkr": (7, -1.0), "mopnr": (8, -1.0)}


def rule_decode(batch: InstanceBatch, rule: str) -> Rollouts:
    """One schedule per instance from a dispatching rule, event-driven (non-delay) as in the Scheduling env.

    Ties go to the lowest job id. Non-delay choices are active ones too, so the schedule is a valid
    label for a policy on either action set.
    """
    if rule not in RULES:
        raise ValueError(f"rule {rule!r} is unknown; choose one of {', '.join(RULES)}")
    column, sign = RULES[rule]
    builder = ScheduleBuilder(batch, 1, ActionSet.NON_DELAY)
    actions = np.empty((builder.n_rollouts, builder.n_steps), dtype=np.int64)
    for t in range(builder.n_steps):
        features, mask, _ = builder.observe()
        key = np.where(mask, sign * features[..., column], np.inf)
        actions[:, t] = np.argmax(key <= key.min(axis=1, keepdims=True), axis=1)
        builder.step(actions[:, t])
    return Rollouts(builder.makespan.copy(), builder.starts, actions)


@dataclass
class Decisions:
    """The states of rebuilding schedules and the job chosen in each, one row per (step, instance), step first.

    Attributes:
        features: float32 (states, jobs, N_FEATURES), what `DispatchNet` saw.
        masks: bool (states, jobs), the valid actions.
        machines: int64 (states, jobs), the machine of each job's next operation, -1 if finished.
        next_ops: int64 (states, jobs), each job's next operation (operations when finished).
        instance: int64 (states,), the instance of the batch each state belongs to.
        actions: int64 (states,), the job chosen.
        machine_features: float32 (states, machines, N_MACHINE_FEATURES) and route_left float32
            (states, jobs, machines), from `ScheduleBuilder.observe_machines`; None unless asked for.
    """

    features: np.ndarray
    masks: np.ndarray
    machines: np.ndarray
    next_ops: np.ndarray
    instance: np.ndarray
    actions: np.ndarray
    machine_features: np.ndarray | None = None
    route_left: np.ndarray | None = None


def replay(batch: InstanceBatch, actions: np.ndarray, action_set: str, machine_state: bool = False) -> Decisions:
    """Rebuild one schedule per instance from its chosen jobs (instances, steps): what to train `DispatchNet` on.

    With `machine_state`, the decisions also hold `ScheduleBuilder.observe_machines` of every state.
    """
    builder = ScheduleBuilder(batch, 1, action_set)
    if actions.shape != (len(batch), builder.n_steps):
        raise ValueError(f"actions: need shape {(len(batch), builder.n_steps)}, got {actions.shape}")
    states = []
    for t in range(builder.n_steps):
        machines_now = builder.observe_machines() if machine_state else ()
        states.append((*builder.observe(), builder.next_op.copy(), *machines_now))
        if not states[-1][1][np.arange(len(batch)), actions[:, t]].all():
            raise ValueError(f"actions: step {t} chooses a job outside the action set")
        builder.step(actions[:, t])
    features, masks, machines, next_ops, *machine_state_arrays = (
        np.concatenate(parts) for parts in zip(*states, strict=True)
    )
    instance = np.tile(np.arange(len(batch)), builder.n_steps)
    return Decisions(features, masks, machines, next_ops, instance, actions.T.reshape(-1), *machine_state_arrays)


def fit_labels(
    net: DispatchNet,
    optimizer: torch.optim.Optimizer,
    batch: InstanceBatch,
    labels: np.ndarray,
    epochs: int,
    minibatch_states: int,
    grad_clip: float,
    generator: torch.Generator,
) -> list[float]:
    """Train `net` by cross-entropy to choose again the jobs of one labelled schedule per instance.

    `labels` (instances, steps) are the chosen jobs of each instance's label schedule. Decisions with
    a single valid job are left out (they teach nothing); the rest are visited `epochs` times in
    shuffled minibatches of `minibatch_states`, the operation encoding recomputed with gradients
    for each. Returns each minibatch's loss; `net` is left in eval mode.
    """
    decisions = replay(batch, labels, net.config.action_set, net.config.machine_state)
    x, m, k = (torch.from_numpy(a) for a in (decisions.features, decisions.masks, decisions.machines))
    op, instance, y = (torch.from_numpy(a) for a in (decisions.next_ops, decisions.instance, decisions.actions))
    state = [torch.from_numpy(a) for a in (decisions.machine_features, decisions.route_left) if a is not None]
    keep = torch.nonzero(m.sum(1) > 1).squeeze(1)
    order = torch.cat([keep[torch.randperm(len(keep), generator=generator)] for _ in range(epochs)])
    net.train()
    losses = []
    for i in range(0, len(order), minibatch_states):
        idx = order[i : i + minibatch_states]
        context = net.job_context(net.encode_operations(batch), instance[idx], op[idx], *(a[idx] for a in state))
        loss = nn.functional.cross_entropy(net(x[idx], m[idx], k[idx], context), y[idx])
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
        optimizer.step()
        losses.append(loss.item())
    net.eval()
    return losses


class Scheduler:
    """A trained dispatcher that solves job-shop instances of any size."""

    def __init__(self, net: DispatchNet, temperature: float = 1.0) -> None:
        self.net = net.eval()
        self.temperature = temperature

    def solve(self, instance: Instance, samples: int = 1, seed: int = 0) -> np.ndarray:
        """Start times (jobs, operations), in instance order, of the best schedule found.

        `samples=1` decodes greedily (deterministic); more adds `samples - 1` sampled schedules
        (seeded by `seed`) and keeps the shortest. The schedule is checked before it is returned.
        """
        if samples < 1:
            raise ValueError(f"samples must be >= 1, got {samples}")
        batch = InstanceBatch.of([instance])
        rollouts = decode(self.net, batch, samples, torch.Generator().manual_seed(seed), self.temperature)
        best = int(np.argmin(rollouts.makespan))
        starts = rollouts.starts[best]
        check_schedule(instance, starts)
        return starts

    def save(self, path: str | Path) -> Path:
        """Write the network's config and weights to the folder `path` (created); return it."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        config = {
            "format": _FORMAT,
            "features": N_FEATURES,
            "operation_features": N_OPERATION_FEATURES,
            "machine_features": N_MACHINE_FEATURES,
            "temperature": self.temperature,
            **asdict(self.net.config),
        }
        (folder / _CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
        torch.save(self.net.state_dict(), folder / _WEIGHTS_FILE)
        return folder


def load_scheduler(path: str | Path) -> Scheduler:
    """Load a scheduler saved by `Scheduler.save` (a folder with config.json and model.pt)."""
    folder = Path(path)
    config_file = folder / _CONFIG_FILE
    if not config_file.is_file() or not (folder / _WEIGHTS_FILE).is_file():
        raise FileNotFoundError(f"scheduler {folder}: expected {_CONFIG_FILE} and {_WEIGHTS_FILE} in it")
    config = json.loads(config_file.read_text())
    if config.get("format") not in _READS or config.get("features") != N_FEATURES:
        raise ValueError(
            f"scheduler {folder}: format {config.get('format')} with {config.get('features')} features; "
            f"this smartline reads formats {sorted(_READS)} with {N_FEATURES}"
        )
    shape = PolicyConfig(
        config["hidden"],
        config["layers"],
        config["action_set"],
        config.get("operation_layers", 0),
        config.get("machine_state", False),
    )
    if shape.operation_layers and config.get("operation_features") != N_OPERATION_FEATURES:
        raise ValueError(
            f"scheduler {folder}: {config.get('operation_features')} operation features; "
            f"this smartline reads {N_OPERATION_FEATURES}"
        )
    if shape.machine_state and config.get("machine_features") != N_MACHINE_FEATURES:
        raise ValueError(
            f"scheduler {folder}: {config.get('machine_features')} machine features; "
            f"this smartline reads {N_MACHINE_FEATURES}"
        )
    net = DispatchNet(shape)
    net.load_state_dict(torch.load(folder / _WEIGHTS_FILE, weights_only=True))
    return Scheduler(net, float(config["temperature"]))
