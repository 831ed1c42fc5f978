"""Build the registered envs: `gymnasium.make("smartline/<Task>-v0", **kwargs)` lands here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym

from envs.base import LineEnv, Task
from envs.energy import EnergyTask
from envs.factory import FactoryTask
from envs.inventory import InventoryTask
from envs.jobshop import instance_line
from envs.lines import resolve_line
from envs.maintenance import MaintenanceTask
from envs.scheduling import SchedulingEnv, SchedulingTask
from envs.speed import SpeedTask
from hardware import Line

LineArg = str | Path | Mapping[str, Any] | Line
ScenarioArg = str | Sequence[Mapping[str, Any]] | None

# task: (class, default line, default control period s, registered episode steps)
TASKS: dict[str, tuple[type[Task], str, float | None, int]] = {
    "Scheduling": (SchedulingTask, "flow5_orders", None, 100_000),
    "Speed": (SpeedTask, "flow5", 60.0, 480),
    "Energy": (EnergyTask, "flow5", 120.0, 720),
    "Maintenance": (MaintenanceTask, "flow5", 300.0, 2016),
    "Inventory": (InventoryTask, "flow5", 120.0, 2160),
    "Factory": (FactoryTask, "flow5", 60.0, 1440),
}


def register_all() -> None:
    """Register every task under the `smartline/` namespace (cheap: string entry points)."""
    for name, (_, _, _, steps) in TASKS.items():
        env_id = f"smartline/{name}-v0"
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=f"envs.registration:make_{name.lower()}", max_episode_steps=steps)


def make_setpoint_env(
    name: str,
    line: LineArg | None,
    scenario: ScenarioArg,
    control_period_s: float | None,
    seed: int | None,
    **task_kwargs: Any,
) -> LineEnv:
    """Build a tick task's env on a line given by name, path or object."""
    task_cls, default_line, default_period, _ = TASKS[name]
    period = default_period if control_period_s is None else control_period_s
    if period is not None and not period > 0:
        raise ValueError(f"control_period_s must be > 0, got {control_period_s!r}")
    the_line = resolve_line(line if line is not None else default_line, task_cls.levers, period, scenario, seed)
    return LineEnv(the_line, task_cls(the_line.spec, **task_kwargs))


def make_scheduling(
    line: LineArg | None = None,
    instance: str | Path | None = None,
    scenario: ScenarioArg = None,
    objective: str = "makespan",
    seed: int | None = None,
) -> SchedulingEnv:
    """Scheduling on a line with a fixed job set, or on a standard job-shop instance."""
    if instance is not None:
        if line is not None or scenario is not None:
            raise ValueError("instance: give either an instance or a line (with its scenario), not both")
        the_line: Line = instance_line(instance, seed=seed)
    else:
        the_line = resolve_line(
            line if line is not None else "flow5_orders", SchedulingTask.levers, None, scenario, seed
        )
    return SchedulingEnv(the_line, SchedulingTask(the_line.spec, objective=objective))


def make_speed(
    line: LineArg | None = None,
    scenario: ScenarioArg = None,
    control_period_s: float | None = None,
    weights: Mapping[str, float] | None = None,
    seed: int | None = None,
) -> LineEnv:
    """The Speed task's env."""
    return make_setpoint_env("Speed", line, scenario, control_period_s, seed, weights=weights)


def make_energy(
    line: LineArg | None = None,
    scenario: ScenarioArg = None,
    control_period_s: float | None = None,
    weights: Mapping[str, float] | None = None,
    seed: int | None = None,
) -> LineEnv:
    """The Energy task's env."""
    return make_setpoint_env("Energy", line, scenario, control_period_s, seed, weights=weights)


def make_maintenance(
    line: LineArg | None = None,
    scenario: ScenarioArg = None,
    control_period_s: float | None = None,
    weights: Mapping[str, float] | None = None,
    seed: int | None = None,
) -> LineEnv:
    """The Maintenance task's env."""
    return make_setpoint_env("Maintenance", line, scenario, control_period_s, seed, weights=weights)


def make_inventory(
    line: LineArg | None = None,
    scenario: ScenarioArg = None,
    control_period_s: float | None = None,
    weights: Mapping[str, float] | None = None,
    order_levels: int = 9,
    seed: int | None = None,
) -> LineEnv:
    """The Inventory task's env."""
    return make_setpoint_env(
        "Inventory", line, scenario, control_period_s, seed, weights=weights, order_levels=order_levels
    )


def make_factory(
    line: LineArg | None = None,
    scenario: ScenarioArg = None,
    control_period_s: float | None = None,
    weights: Mapping[str, float] | None = None,
    seed: int | None = None,
) -> LineEnv:
    """The Factory task's env."""
    return make_setpoint_env("Factory", line, scenario, control_period_s, seed, weights=weights)
