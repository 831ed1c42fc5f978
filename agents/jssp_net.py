"""The job-shop dispatcher network: it sees the jobs as a set, so one network serves every instance size.

`DispatchNet` scores each unfinished job's next operation from its features (`envs.jssp_batch`)
and from messages over the job set: the pooled embedding of all open jobs and of the jobs whose
next operation needs the same machine. With `operation_layers`, it first encodes the instance's
operations once (messages along each job's route and among the operations of each machine), and
each candidate also reads its operation's embedding and the mean over the job's remaining ones.
With `machine_state`, each job also reads the current state of the machines its remaining
operations need (how long each is booked, its work left, its queue), averaged over its route.
Its weights are shared across jobs and operations, so it applies to any number of jobs and
machines. `agents.jssp_policy` decodes schedules with it and trains it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from envs.jssp_batch import N_FEATURES, N_MACHINE_FEATURES, N_OPERATION_FEATURES, ActionSet, InstanceBatch


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
