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
from envs.jobshop import Instance, instance_line
from envs.lines import resolve_line
from envs.maintenance import MaintenanceTask
from envs.scheduling import SchedulingEnv, SchedulingTask
from envs.speed import SpeedTask
from envs.weights import finite_number
from hardware import Line
from hardware.twin import TwinLine
from hardware.twin.params import StartMode

LineArg = str | Path | Mapping[str, Any] | Line
ScenarioArg = str | Sequence[Mapping[str, Any]] | None

# The one home of each task's default line, control period and episode length; the Hydra `task`
# group takes them from the registration. task: (class, default line, control period s, episode steps)
TASKS: dict[str, tuple[type[Task], str, float | None, int]] = {
    "Scheduling": (SchedulingTask, "flow5_orders", None, 100_000),  # until the job set is done
    "Speed": (SpeedTask, "flow5", 60.0, 480),  # one 8-hour shift
    "Energy": (EnergyTask, "flow5", 120.0, 720),  # one day
    "Maintenance": (MaintenanceTask, "flow5", 300.0, 2016),  # one week
    "Inventory": (InventoryTask, "flow5", 120.0, 2160),  # three days
    "Factory": (FactoryTask, "flow5", 60.0, 1440),  # one day
}
# Tick tasks start as a line runs unless the line definition or the env's `start` says otherwise:
# warm for open orders, cold for a fixed job set (`StartMode.AUTO`).
START_DEFAULT = {"mode": StartMode.AUTO.value}


def register_all() -> None:
    """Register every task under the `smartline/` namespace (cheap: string entry points)."""
    for name, (_, _, _, steps) in TASKS.items():
        env_id = f"smartline/{name}-v0"
        if env_id in gym.registry:
            continue
        if name == "Scheduling":
            gym.register(id=env_id, entry_point="envs.registration:make_scheduling", max_episode_steps=steps)
        else:
            gym.register(
                id=env_id,
                entry_point="envs.registration:make_setpoint_env",
                max_episode_steps=steps,
                kwargs={"task": name},
            )


def make_setpoint_env(
    task: str,
    line: LineArg | None = None,
    scenario: ScenarioArg = None,
    control_period_s: float | None = None,
    seed: int | None = None,
    start: str | None = None,
    warmup_h: Sequence[float] | None = None,
    **task_kwargs: Any,
) -> LineEnv:
    """A tick task's env (Speed, Energy, Maintenance, Inventory, Factory) on a line.

    Args:
        task: the task's name, a key of `TASKS`.
        line: shipped line name, file path, definition mapping or `Line` (default: the task's line).
        scenario: shipped scenario name or list of events (default: the line's own); event times
            count from the episode's start.
        control_period_s: seconds between decisions (default: the task's).
        seed: seed of a twin built here.
        start: "warm" (the episode begins after a warm-up under the line's own rules), "cold"
            (time 0, empty buffers, new machines: for tests and theory checks) or "auto" (warm for
            a line of open orders, cold for a fixed job set). Default: the line definition's own
            `start`, else "auto". A `Line` object starts as it is.
        warmup_h: the range of warm-up hours, (min, max) (default: the line definition's, see
            `StartParams`).
        **task_kwargs: the task's own arguments, such as `weights`.
    """
    task_cls, default_line, default_period, _ = TASKS[task]
    period = default_period if control_period_s is None else control_period_s
    if period is not None and not (finite_number(period) and period > 0):
        raise ValueError(f"control_period_s must be > 0 and finite, got {control_period_s!r}")
    if isinstance(line, Line) and control_period_s is not None and line.spec.control_period_s != control_period_s:
        raise ValueError(
            f"control_period_s: a Line object ticks at its own period ({line.spec.control_period_s} s), "
            f"not {control_period_s!r}; build the line with it"
        )
    the_line = resolve_line(
        line if line is not None else default_line,
        task_cls.levers,
        period,
        scenario,
        seed,
        start=_start(start, warmup_h),
        start_default=START_DEFAULT,
    )
    if warmup_h is not None and isinstance(the_line, TwinLine) and not the_line.warm:
        fixed = bool(the_line.params.demand.jobs)
        why, instead = (", a fixed job set", "") if fixed else ("", " or give start='warm'")
        raise ValueError(
            f"warmup_h: episodes on line {the_line.spec.name!r} start cold (start={the_line.params.start.mode.value}"
            f"{why}): there is no warm-up to set; leave warmup_h out{instead}"
        )
    return LineEnv(the_line, task_cls(the_line.spec, **task_kwargs))


def _start(start: str | None, warmup_h: Sequence[float] | None) -> dict[str, Any] | None:
    """The `start` fields given to the env (None when neither is)."""
    fields: dict[str, Any] = {}
    if start is not None:
        modes = [m.value for m in StartMode]
        if start not in modes:
            raise ValueError(f"start must be one of {', '.join(modes)}, got {start!r}")
        fields["mode"] = start
    if warmup_h is not None:
        if isinstance(warmup_h, str) or not isinstance(warmup_h, Sequence):
            raise ValueError(f"warmup_h: give (min, max) hours, 0 <= min <= max, got {warmup_h!r}")
        hours = tuple(warmup_h)
        if len(hours) != 2 or not all(finite_number(h) for h in hours) or not 0 <= hours[0] <= hours[1]:
            raise ValueError(f"warmup_h: give (min, max) hours, 0 <= min <= max, got {warmup_h!r}")
        fields["warmup_min_h"], fields["warmup_max_h"] = (float(h) for h in hours)
    return fields or None


def make_scheduling(
    line: LineArg | None = None,
    instance: str | Path | Instance | None = None,
    scenario: ScenarioArg = None,
    objective: str = "makespan",
    due_date_factor: float | None = None,
    seed: int | None = None,
) -> SchedulingEnv:
    """Scheduling on a line with a fixed job set, or on a standard job-shop instance.

    `due_date_factor` sets an instance job's due date to that multiple of its total work (default
    1.5); a line's jobs carry their own due dates.
    """
    if instance is not None:
        if line is not None or scenario is not None:
            raise ValueError("instance: give either an instance or a line (with its scenario), not both")
        factor = 1.5 if due_date_factor is None else due_date_factor
        the_line: Line = instance_line(instance, seed=seed, due_date_factor=factor)
    else:
        if due_date_factor is not None:
            raise ValueError(
                "due_date_factor: sets due dates on a job-shop instance (instance=...); a line's jobs carry their own"
            )
        the_line = resolve_line(
            line if line is not None else "flow5_orders", SchedulingTask.levers, None, scenario, seed
        )
    return SchedulingEnv(the_line, SchedulingTask(the_line.spec, objective=objective))
