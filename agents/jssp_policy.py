"""Schedules from the dispatcher network (`agents.jssp_net`): decoding, rules, replay, training step, saved folders.

`decode` builds greedy or sampled schedules of a batch of instances with a `DispatchNet`;
`rule_decode` the dispatching rules' schedules; `replay` rebuilds the states of labelled schedules
and `fit_labels` trains the network to choose their jobs again (the self-labelling step).
`Scheduler` solves one instance (greedy, or best of sampled, optionally searching the instance read
backwards too) and is what `load_scheduler` returns.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from agents.jssp_net import DispatchNet, PolicyConfig
from envs.jobshop import Instance, check_schedule, mirror_schedule, reversed_instance
from envs.jssp_batch import (
    N_FEATURES,
    N_MACHINE_FEATURES,
    N_OPERATION_FEATURES,
    ActionSet,
    InstanceBatch,
    ScheduleBuilder,
)

_FORMAT = 4  # version of the saved scheduler folder (4: direction_probe; 3: machine_state; 1-3 still load)
_READS = {1, 2, 3, _FORMAT}
_CONFIG_FILE, _WEIGHTS_FILE = "config.json", "model.pt"


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
    """A trained dispatcher that solves job-shop instances of any size.

    With `direction_probe` > 0 a budget of several schedules searches two directions: the instance
    as given and `reversed_instance` (every route read backwards, the same optimum; its schedules
    are mirrored back). Each direction first gets `direction_probe` of the budget (at least one
    schedule, its greedy one first); the rest goes to the direction whose probe schedules were
    shorter on average. One policy dispatches the two directions differently, and on many
    instances one is much easier for it (RESULTS.md, Scheduling). 0 searches forward only;
    0.5 splits the budget in halves.
    """

    def __init__(self, net: DispatchNet, temperature: float = 1.0, direction_probe: float = 0.0) -> None:
        if not 0.0 <= direction_probe <= 0.5:
            raise ValueError(f"direction_probe must be within [0, 0.5], got {direction_probe}")
        self.net = net.eval()
        self.temperature = temperature
        self.direction_probe = direction_probe

    def solve(self, instance: Instance, samples: int = 1, seed: int = 0) -> np.ndarray:
        """Start times (jobs, operations), in instance order, of the best of `samples` schedules.

        `samples=1` decodes greedily forward (deterministic). More adds sampled schedules (seeded by
        `seed`), split between the directions by `direction_probe`, and keeps the shortest. The
        schedule is checked before it is returned.
        """
        if samples < 1:
            raise ValueError(f"samples must be >= 1, got {samples}")
        generator = torch.Generator().manual_seed(seed)
        probe = min(samples // 2, max(1, round(self.direction_probe * samples))) if self.direction_probe else 0
        searched: list[tuple[Instance, Rollouts]] = []
        reverse = None
        if probe:
            reverse = reversed_instance(instance)
            searched = [(shop, self._decode(shop, probe, generator, True)) for shop in (instance, reverse)]
        if samples > 2 * probe:
            shop = min(searched, key=lambda found: found[1].makespan.mean())[0] if probe else instance
            searched.append((shop, self._decode(shop, samples - 2 * probe, generator, not probe)))
        shop, rollouts = min(searched, key=lambda found: found[1].makespan.min())
        starts = rollouts.starts[int(np.argmin(rollouts.makespan))]
        if shop is reverse:
            starts = mirror_schedule(instance, starts)
        check_schedule(instance, starts)
        return starts

    def _decode(self, shop: Instance, samples: int, generator: torch.Generator, greedy_first: bool) -> Rollouts:
        return decode(self.net, InstanceBatch.of([shop]), samples, generator, self.temperature, greedy_first)

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
            "direction_probe": self.direction_probe,
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
    return Scheduler(net, float(config["temperature"]), float(config.get("direction_probe", 0.0)))
