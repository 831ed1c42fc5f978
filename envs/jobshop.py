"""Standard job-shop instances (OR-Library and Taillard text formats) as twin lines.

An instance becomes a reliable, deterministic job shop on the twin: one station per machine, one
job per instance job, all released at time 0, so an episode's makespan is exactly the makespan of
the schedule the agent chose, comparable with the published optimum.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from hardware import Line
from hardware.twin import TwinLine
from hardware.twin.jobshop_kernel import JobShopLine

INSTANCES_DIR = Path(__file__).resolve().parent / "instances"


class InstanceError(ValueError):
    """An instance name is unknown or an instance file is malformed."""


class ScheduleError(ValueError):
    """A schedule is not a valid schedule of its instance; the message names the instance and the operation."""


@dataclass(frozen=True)
class Instance:
    """A job-shop instance: each job's machine sequence and processing times."""

    name: str
    n_machines: int
    routes: tuple[tuple[int, ...], ...]  # machine index per operation, per job
    times: tuple[tuple[int, ...], ...]  # processing time per operation, per job
    optimum: int | None = None  # proven optimal makespan, where known
    best_known: int | None = None  # best known makespan (the optimum where proven), the reference of a gap

    def gap(self, makespan: float) -> float:
        """Relative gap of `makespan` to the best known makespan: (makespan - best) / best."""
        if self.best_known is None:
            raise InstanceError(f"instance {self.name!r}: no best known makespan to measure a gap against")
        return (makespan - self.best_known) / self.best_known

    @property
    def n_jobs(self) -> int:
        """Number of jobs."""
        return len(self.routes)


@cache
def _bounds() -> dict[str, dict[str, int | None]]:
    bounds: dict[str, dict[str, int | None]] = json.loads((INSTANCES_DIR / "optima.json").read_text())
    return bounds


def optima() -> dict[str, int]:
    """Published proven optimal makespans of the shipped instances, by name (open instances left out)."""
    return {name: int(entry["optimum"]) for name, entry in _bounds().items() if entry["optimum"] is not None}


def best_known() -> dict[str, int]:
    """Best known makespan of every shipped instance: the optimum, or the best known upper bound where open."""
    return {name: int(entry["optimum"] or entry["upper_bound"]) for name, entry in _bounds().items()}  # type: ignore[arg-type]


def shipped() -> tuple[str, ...]:
    """Names of the instances that ship with smartline."""
    return tuple(sorted(_bounds()))


def load_instance(name_or_path: str | Path) -> Instance:
    """Load a shipped instance by name (`"ft06"`) or any instance file by path."""
    path = Path(name_or_path)
    if str(name_or_path) in _bounds():
        path = INSTANCES_DIR / f"{name_or_path}.txt"
    elif not path.is_file():
        raise InstanceError(
            f"instance {str(name_or_path)!r}: neither a shipped instance ({', '.join(shipped())}) nor a file"
        )
    instance = parse_instance(path.read_text(), name=path.stem, optimum=optima().get(path.stem))
    return dataclasses.replace(instance, best_known=best_known().get(path.stem, instance.optimum))


def parse_instance(text: str, name: str, optimum: int | None = None) -> Instance:
    """Parse an instance in OR-Library layout (`machine time` pairs) or Taillard's (times, then machines)."""
    rows = _numeric_rows(text)
    if "Times" in text and "Machines" in text:
        return _taillard_sections(text, name, optimum)
    if not rows or len(rows[0]) < 2:
        raise InstanceError(f"instance {name!r}: the first numeric line must be 'jobs machines'")
    (n, m), body = rows[0][:2], rows[1:]
    if len(body) == n and all(len(r) == 2 * m for r in body):
        routes = tuple(tuple(r[0::2]) for r in body)
        times = tuple(tuple(r[1::2]) for r in body)
        return _checked(name, m, routes, times, optimum, first_machine=0)
    if len(body) == 2 * n and all(len(r) == m for r in body):
        return _checked(name, m, tuple(map(tuple, body[n:])), tuple(map(tuple, body[:n])), optimum, first_machine=1)
    raise InstanceError(
        f"instance {name!r}: expected {n} lines of {2 * m} numbers (OR-Library) "
        f"or {2 * n} lines of {m} numbers (Taillard) after the header"
    )


def _numeric_rows(text: str) -> list[list[int]]:
    """The lines of `text` that hold only whole numbers, as lists of ints (other lines are labels)."""
    return [
        [int(x) for x in line.split()] for line in text.splitlines() if re.fullmatch(r"[\d\s]+", line) and line.strip()
    ]


def _taillard_sections(text: str, name: str, optimum: int | None) -> Instance:
    head, _, rest = text.partition("Times")
    times_text, _, machines_text = rest.partition("Machines")
    header = _numeric_rows(head)
    if not header or len(header[0]) < 2:
        raise InstanceError(f"instance {name!r}: missing the 'jobs machines ...' header line")
    n, m = header[0][:2]
    times = tuple(map(tuple, _numeric_rows(times_text)))
    routes = tuple(map(tuple, _numeric_rows(machines_text)))
    if len(times) != n or len(routes) != n:
        raise InstanceError(f"instance {name!r}: expected {n} lines of times and of machines")
    return _checked(name, m, routes, times, optimum, first_machine=1)


def _checked(
    name: str,
    m: int,
    routes: tuple[tuple[int, ...], ...],
    times: tuple[tuple[int, ...], ...],
    optimum: int | None,
    first_machine: int,
) -> Instance:
    routes = tuple(tuple(k - first_machine for k in r) for r in routes)
    for j, (route, ts) in enumerate(zip(routes, times, strict=True)):
        if len(route) != len(ts) or any(not 0 <= k < m for k in route):
            raise InstanceError(f"instance {name!r}: job {j} names a machine outside 0..{m - 1}")
        if any(t <= 0 for t in ts):
            raise InstanceError(f"instance {name!r}: job {j} has a processing time <= 0")
    return Instance(name, m, routes, times, optimum)


def instance_definition(instance: Instance, due_date_factor: float = 1.5) -> dict[str, Any]:
    """The twin line definition of an instance: deterministic, reliable, all jobs at time 0.

    Each job is due at `due_date_factor` times its total processing time (for tardiness
    objectives; the makespan does not depend on it).
    """
    machine = {
        "processing_time_distribution": "deterministic",
        "failure_rate_base_per_h": 0.0,
        "failure_rate_wear_per_h": 0.0,
        "scrap_probability": 0.0,
        "sensors": {"dropout_probability": 0.0, "noise_std_ratio": 0.0, "drift_std_per_sqrt_h": 0.0},
    }
    stations = [f"m{k}" for k in range(instance.n_machines)]
    return {
        "name": instance.name,
        "layout": "jobshop",
        "machines": {"jssp": machine},
        "stations": [{"name": s, "machine": "jssp"} for s in stations],
        "variants": [
            {"name": f"j{j}", "route": [stations[k] for k in route], "processing_time_s": [float(t) for t in ts]}
            for j, (route, ts) in enumerate(zip(instance.routes, instance.times, strict=True))
        ],
        "demand": {
            "jobs": [
                {"variant": f"j{j}", "release_s": 0.0, "due_s": due_date_factor * float(sum(ts))}
                for j, ts in enumerate(instance.times)
            ]
        },
        "control": {"levers": ["dispatch"]},
    }


def instance_line(
    name_or_path: str | Path, seed: int | None = None, due_date_factor: float = 1.5, kernel: bool = True
) -> Line:
    """A line that runs a job-shop instance with dispatch decisions for the agent.

    With `kernel` (the default) it is the array job shop `JobShopLine`, which runs the twin's
    schedule event by event without SimPy (its frames are the twin's, less the instruments);
    otherwise the full `TwinLine`.
    """
    if not due_date_factor > 0:
        raise ValueError(f"due_date_factor must be > 0, got {due_date_factor!r}")
    definition = instance_definition(load_instance(name_or_path), due_date_factor)
    twin = TwinLine.from_config(seed=seed, **definition)
    return JobShopLine(twin.params, twin.spec) if kernel else twin


def check_schedule(instance: Instance, starts: Any) -> int:
    """Check that `starts` is a schedule of `instance` and return its makespan.

    Args:
        instance: the job shop.
        starts: start time of each operation, shape (jobs, operations); integers (a float must be
            whole), entries past a job's last operation are ignored.

    Raises:
        ScheduleError: wrong shape, a start that is negative or not a whole number, an operation
            that starts before its job's previous operation ends, or two operations on one machine
            at once. The message names the instance and the operation (job j, operation k).
    """
    name = instance.name
    width = max(len(r) for r in instance.routes)
    s = np.asarray(starts, dtype=float)
    if s.shape != (instance.n_jobs, width):
        raise ScheduleError(
            f"instance {name!r}: expected start times of shape ({instance.n_jobs}, {width}), got {s.shape}"
        )
    ops: list[list[tuple[float, float, int, int]]] = [[] for _ in range(instance.n_machines)]
    for j, (route, times) in enumerate(zip(instance.routes, instance.times, strict=True)):
        ready = 0.0
        for k, (machine, t) in enumerate(zip(route, times, strict=True)):
            start = s[j, k]
            if not np.isfinite(start) or start < 0 or start != np.round(start):
                raise ScheduleError(
                    f"instance {name!r}: job {j} operation {k} starts at {start}, not a whole time >= 0"
                )
            if start < ready:
                raise ScheduleError(
                    f"instance {name!r}: job {j} operation {k} starts at {start:g}, "
                    f"before its operation {k - 1} ends at {ready:g}"
                )
            ready = start + t
            ops[machine].append((start, ready, j, k))
    for machine, intervals in enumerate(ops):
        intervals.sort()
        for (s0, e0, j0, k0), (s1, _, j1, k1) in itertools.pairwise(intervals):
            if s1 < e0:
                raise ScheduleError(
                    f"instance {name!r}: job {j1} operation {k1} starts on machine {machine} at {s1:g}, "
                    f"while job {j0} operation {k0} runs there [{s0:g}, {e0:g})"
                )
    return int(max(s[j, k] + t for j, times in enumerate(instance.times) for k, t in enumerate(times)))


def reversed_instance(instance: Instance) -> Instance:
    """The instance with every job's route read backwards: the same optimum, a different problem to dispatch.

    A schedule of it, mirrored in time by `mirror_schedule`, is a schedule of `instance` with the
    same makespan, so a dispatcher can search both directions of one instance.
    """
    return dataclasses.replace(
        instance,
        name=f"{instance.name} (reversed)",
        routes=tuple(route[::-1] for route in instance.routes),
        times=tuple(times[::-1] for times in instance.times),
    )


def mirror_schedule(instance: Instance, reversed_starts: Any) -> np.ndarray:
    """Start times (jobs, operations) of `instance` from a schedule of `reversed_instance(instance)`.

    The reversed schedule is mirrored in time (each operation ends where its mirror image started,
    counted back from the makespan), which keeps every job's order and every machine's sequence,
    then shifted left: each operation starts as soon as its job and its machine let it. The
    makespan is the reversed schedule's or shorter. Entries past a job's last operation are 0.
    """
    makespan = check_schedule(reversed_instance(instance), reversed_starts)
    s = np.asarray(reversed_starts, dtype=float)
    mirrored = [
        (makespan - s[j, len(times) - 1 - k] - t, j, k)
        for j, times in enumerate(instance.times)
        for k, t in enumerate(times)
    ]
    starts = np.zeros(s.shape, dtype=np.int64)
    job_ready = [0] * instance.n_jobs
    machine_ready = [0] * instance.n_machines
    for _, j, k in sorted(mirrored):
        machine, t = instance.routes[j][k], instance.times[j][k]
        starts[j, k] = max(job_ready[j], machine_ready[machine])
        job_ready[j] = machine_ready[machine] = int(starts[j, k]) + t
    return starts
