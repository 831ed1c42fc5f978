"""Standard job-shop instances (OR-Library and Taillard text formats) as twin lines.

An instance becomes a reliable, deterministic job shop on the twin: one station per machine, one
job per instance job, all released at time 0, so an episode's makespan is exactly the makespan of
the schedule the agent chose, comparable with the published optimum.
"""

from __future__ import annotations

import codecs
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
    """Load a shipped instance by name (`"ft06"`) or any instance file by path.

    A file gets a shipped instance's published optimum and best known makespan only when it holds
    that instance's jobs (the same routes and processing times), whatever the file is called.
    """
    name = str(name_or_path)
    if name in _bounds():
        return _with_bounds(_read(INSTANCES_DIR / f"{name}.txt", name), name)
    path = Path(name_or_path)
    if not path.is_file():
        raise InstanceError(f"instance {name!r}: neither a shipped instance ({', '.join(shipped())}) nor a file")
    instance = _read(path, path.stem)
    same = _shipped_jobs().get((instance.routes, instance.times))
    return instance if same is None else _with_bounds(instance, same)


def _read(path: Path, name: str) -> Instance:
    return parse_instance(decoded(path.read_bytes()), name, source=path)


def decoded(data: bytes) -> str:
    """The text of an instance file: UTF-8 or UTF-16 after a byte-order mark, else UTF-8, else Latin-1.

    Only the numbers matter, and they read the same in each; a file saved by a Windows editor
    (UTF-8 with a mark, UTF-16) or with a Latin-1 comment loads as well as a plain one.
    """
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _with_bounds(instance: Instance, shipped_name: str) -> Instance:
    return dataclasses.replace(instance, optimum=optima().get(shipped_name), best_known=best_known()[shipped_name])


@cache
def _shipped_jobs() -> dict[tuple[tuple[tuple[int, ...], ...], tuple[tuple[int, ...], ...]], str]:
    """The name of each shipped instance, keyed by its (routes, times)."""
    jobs = {}
    for name in shipped():
        instance = _read(INSTANCES_DIR / f"{name}.txt", name)
        jobs[instance.routes, instance.times] = name
    return jobs


MAX_TOTAL_TIME = 2**53  # an instance's processing times add up to at most this: every float64 whole number is exact
_NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")  # a word that reads as a number
_WHOLE = re.compile(r"[0-9]+")
_Row = tuple[int, tuple[int, ...]]  # a job's line: its line number and its numbers


@dataclass(frozen=True)
class _Line:
    """A non-blank line of an instance text, its `#` comment removed."""

    number: int  # in the text, from 1
    text: str
    values: tuple[int, ...] | None  # its numbers; None for a label (a line with a word that is not a number)


def parse_instance(text: str, name: str, source: str | Path | None = None) -> Instance:
    """Parse an instance in OR-Library layout (`machine time` pairs) or Taillard's (times, then machines).

    The first line of numbers is the header `jobs machines` (more numbers may follow, as Taillard's
    seeds and bounds do). OR-Library: then one line per job of `machine time` pairs, machines
    numbered from 0. Taillard: a line `Times`, one line of processing times per job, a line
    `Machines`, one line of machines per job, numbered from 1 (the two marker lines may be left
    out). Text after `#` is a comment. Labels (`instance ft06`, `+++`, a description) may come
    before the header and after the jobs, not among them.

    Args:
        text: the instance text.
        name: the instance's name.
        source: the file it was read from, named in the error messages.

    Raises:
        InstanceError: the text is malformed; the message names the file (or the instance) and
            the first bad line, with what was expected there and what was found.
    """
    where = f"instance file {str(source)!r}" if source is not None else f"instance {name!r}"
    lines = _lines(text.removeprefix("\ufeff"), where)
    first = next((i for i, line in enumerate(lines) if line.values is not None), None)
    if first is None:
        raise InstanceError(f"{where}: no line of numbers; the first must be the header 'jobs machines'")
    header = lines[first].values or ()
    if len(header) < 2 or min(header[:2]) < 1:
        raise InstanceError(
            f"{where}, line {lines[first].number}: expected the header 'jobs machines' (two whole numbers >= 1), "
            f"found {lines[first].text!r}"
        )
    n, m = header[:2]
    body = lines[first + 1 :]
    lead = body[0] if body else None
    if lead is not None and lead.text == "Times":
        times = _rows(body, 1, n, m, "processing times", where)
        if n + 1 >= len(body):
            raise InstanceError(f"{where}: expected a line 'Machines' after the {n} lines of times, found the end")
        if body[n + 1].text != "Machines":
            raise InstanceError(
                f"{where}, line {body[n + 1].number}: expected 'Machines' after the {n} lines of times, "
                f"found {body[n + 1].text!r}"
            )
        routes = _rows(body, n + 2, n, m, "machines", where)
        end, first_machine = 2 * n + 2, 1
    elif lead is not None and lead.values is not None and len(lead.values) == m and not _pairs(body[1:2], m):
        times, routes = _rows(body, 0, n, m, "processing times", where), _rows(body, n, n, m, "machines", where)
        end, first_machine = 2 * n, 1
    else:
        jobs = _rows(body, 0, n, 2 * m, f"{m} machine-time pairs", where)
        routes, times = [(at, v[0::2]) for at, v in jobs], [(at, v[1::2]) for at, v in jobs]
        end, first_machine = n, 0
    extra = next((line for line in body[end:] if line.values is not None), None)
    if extra is not None:
        again = extra.values is not None and extra.values[:2] == (n, m)  # a second instance's header
        hint = "; a file holds one instance: split a file of several (as Taillard's are) into one each" if again else ""
        raise InstanceError(
            f"{where}, line {extra.number}: expected no more numbers after the last job's line "
            f"{body[end - 1].number}, found {extra.text!r}{hint}"
        )
    return _checked(name, m, routes, times, first_machine, where)


def _pairs(lines: list[_Line], m: int) -> bool:
    """Whether the first of `lines` holds `m` machine-time pairs (an OR-Library job's line)."""
    return bool(lines) and lines[0].values is not None and len(lines[0].values) == 2 * m


def _lines(text: str, where: str) -> list[_Line]:
    """The non-blank lines of `text` without their comments; a line of numbers must hold whole numbers >= 0."""
    lines = []
    for number, raw in enumerate(text.splitlines(), start=1):
        content = raw.partition("#")[0].strip()
        if not content:
            continue
        words = content.split()
        values = None
        if all(_NUMBER.fullmatch(w) for w in words):
            bad = next((w for w in words if not _WHOLE.fullmatch(w)), None)
            if bad is not None:
                raise InstanceError(f"{where}, line {number}: expected whole numbers >= 0, found {bad!r}")
            values = tuple(int(w) for w in words)
        lines.append(_Line(number, content, values))
    return lines


def _rows(lines: list[_Line], start: int, n: int, width: int, what: str, where: str) -> list[_Row]:
    """`n` lines of `width` numbers each from `lines[start:]`, one per job."""
    rows = []
    for j, line in enumerate(lines[start : start + n]):
        if line.values is None or len(line.values) != width:
            found = repr(line.text) if line.values is None else str(len(line.values))
            raise InstanceError(
                f"{where}, line {line.number}: expected {width} numbers (job {j}'s {what}), found {found}"
            )
        rows.append((line.number, line.values))
    if len(rows) < n:
        end = f"line {lines[-1].number}" if lines else "the header"
        raise InstanceError(
            f"{where}: expected {n} lines of {what}, one per job, found {len(rows)} before the end ({end})"
        )
    return rows


def _checked(name: str, m: int, routes: list[_Row], times: list[_Row], first_machine: int, where: str) -> Instance:
    """The instance of parsed job lines: machines within range (numbered from `first_machine`), times > 0."""
    last = first_machine + m - 1
    layout = "OR-Library" if first_machine == 0 else "Taillard"
    for j, (at, route) in enumerate(routes):
        bad = next((k for k in route if not first_machine <= k <= last), None)
        if bad is not None:
            raise InstanceError(
                f"{where}, line {at}: job {j} names machine {bad}, outside {first_machine}..{last} "
                f"(the {layout} layout numbers machines from {first_machine})"
            )
    for j, (at, ts) in enumerate(times):
        if 0 in ts:
            raise InstanceError(f"{where}, line {at}: job {j} operation {ts.index(0)} takes time 0, expected > 0")
    total = sum(sum(ts) for _, ts in times)
    if total > MAX_TOTAL_TIME:
        raise InstanceError(
            f"{where}: the processing times add up to {total}, above {MAX_TOTAL_TIME} (2^53): the twin's clock "
            "and the CP-SAT model would no longer tell apart two times one unit apart"
        )
    return Instance(
        name, m, tuple(tuple(k - first_machine for k in r) for _, r in routes), tuple(ts for _, ts in times)
    )


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
    instance: str | Path | Instance, seed: int | None = None, due_date_factor: float = 1.5, kernel: bool = True
) -> Line:
    """A line that runs a job-shop instance (shipped name, file or loaded) with dispatch decisions for the agent.

    With `kernel` (the default) it is the array job shop `JobShopLine`, which runs the twin's
    schedule event by event without SimPy (its frames are the twin's, less the instruments);
    otherwise the full `TwinLine`.
    """
    if not due_date_factor > 0:
        raise ValueError(f"due_date_factor must be > 0, got {due_date_factor!r}")
    loaded = instance if isinstance(instance, Instance) else load_instance(instance)
    definition = instance_definition(loaded, due_date_factor)
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
