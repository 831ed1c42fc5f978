"""Gaps to the best known makespans of job-shop instances: rules, CP-SAT and learned schedulers in one harness.

    python -m experiments.jssp_gaps       # ta01-ta10 and ta11-ta20: six rules, CP-SAT 10 s and 60 s
    python -m experiments.jssp_gaps 'cpsat.time_limits_s=[10]' cpsat.workers=1
    python -m experiments.jssp_gaps '~groups' '+groups={mine: [path/ta41.txt]}' +best_known.ta41=2006
    python -m experiments.jssp_gaps '+learned.spn_greedy={module: agents.<module>, path: <run>/scheduler, samples: 1}'

Rules and CP-SAT run as platform baselines through the real Scheduling env on each instance
(`smartline/Scheduling-v0` with `instance=`), so their makespans are the env's. An instance is a
shipped one by name or a file by path; a file that is not a shipped instance's jobs needs its
best known makespan in `best_known`. A learned scheduler
is a folder loaded with `<module>.load_scheduler(path)`; its `solve(instance, samples, seed)`
returns start times of shape (jobs, operations). Every schedule reported, the env's included, is
checked (each operation its full time, job precedence, no two operations on a machine at once)
and its makespan recomputed. A CP-SAT limit that runs out before a first schedule is reported as
"no schedule (UNKNOWN)", and its column's mean gap as none. Writes a Markdown table per group
(makespan and gap per instance and policy, mean gap, instances where a policy beats the best rule,
seconds per schedule), a CSV and a bar plot of the gaps into the run's folder or `out_dir`
(`experiments.jssp_report`).
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, cast

import gymnasium as gym
import hydra
import numpy as np
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

import envs  # noqa: F401  (registers the ids)
from agents.baseline import Baseline
from agents.baselines import make_baseline
from agents.cpsat import CpSatDispatch, CpSatError
from envs.jobshop import Instance, InstanceError, ScheduleError, check_schedule, load_instance, shipped
from envs.scheduling import SchedulingEnv
from experiments.errors import (
    ConfigError,
    did_you_mean,
    distinct,
    one_line_errors,
    positive_number,
    run,
    whole_number,
)
from experiments.jssp_report import RULES, Result, write_reports

log = logging.getLogger(__name__)


class Scheduler(Protocol):
    """A learned scheduler as `load_scheduler(path)` returns it."""

    def solve(self, instance: Instance, samples: int, seed: int) -> np.ndarray:
        """Start times of every operation, shape (jobs, operations): the best of `samples` schedules."""
        ...


def env_schedule(
    instance: Instance, name: str, params: Mapping[str, Any] | None = None, seed: int = 0
) -> tuple[int, float, float, Baseline]:
    """Run platform baseline `name` through the Scheduling env on `instance`.

    Args:
        instance: the instance (shipped or from a file, with its best known makespan).
        name: the baseline (`make_baseline`'s name: a rule or "cpsat").
        params: its parameters over the shipped config.
        seed: the env's reset seed (instances are deterministic; kept for the record).

    Returns:
        The checked makespan, the wall and processor time to build the baseline and run the
        episode (s), and the baseline.

    Raises:
        ScheduleError: the env's schedule fails `check_schedule`, or its makespan is not the
            schedule's.
    """
    env = gym.make("smartline/Scheduling-v0", instance=instance)
    base = cast(SchedulingEnv, env.unwrapped)
    width = max(len(r) for r in instance.routes)
    starts = np.full((instance.n_jobs, width), -1.0)
    began, cpu_began = time.perf_counter(), time.process_time()
    baseline = make_baseline(env, name, **(params or {}))
    obs, _ = env.reset(seed=seed)
    terminated = truncated = False
    info: dict[str, Any] = {}
    while not (terminated or truncated):
        frame = base.frame
        action = int(baseline.predict(obs, deterministic=True)[0])
        if action < instance.n_jobs and frame.jobs is not None:
            starts[action, int(frame.jobs.step[action])] = frame.time
        obs, _, terminated, truncated, info = env.step(action)
        if info["invalid_action"]:
            raise ScheduleError(
                f"instance {instance.name!r}: the policy took invalid action {action} at {frame.time:g}"
            )
    seconds, cpu_seconds = time.perf_counter() - began, time.process_time() - cpu_began
    env.close()
    if not terminated:
        raise ScheduleError(f"instance {instance.name!r}: the episode was cut before every job finished")
    makespan = check_schedule(instance, starts)
    if makespan != info["makespan"]:
        raise ScheduleError(
            f"instance {instance.name!r}: the env's makespan {info['makespan']:g} is not its schedule's {makespan}"
        )
    return makespan, seconds, cpu_seconds, baseline


def load_scheduler(module: str, path: str | Path) -> Scheduler:
    """A learned scheduler from folder `path`, by `module`'s `load_scheduler`.

    Raises:
        ConfigError: the module does not exist or has no `load_scheduler`.
    """
    try:
        loader = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise ConfigError(f"learned: module {module!r} not found ({exc})") from None
    if not hasattr(loader, "load_scheduler"):
        raise ConfigError(f"learned: module {module!r} has no load_scheduler(path)")
    return loader.load_scheduler(Path(path))


def learned_schedule(scheduler: Scheduler, instance: Instance, samples: int, seed: int) -> tuple[int, float, float]:
    """A learned scheduler's checked makespan on `instance`, and its wall and processor time, s."""
    began, cpu_began = time.perf_counter(), time.process_time()
    starts = scheduler.solve(instance, samples, seed)
    seconds, cpu_seconds = time.perf_counter() - began, time.process_time() - cpu_began
    return check_schedule(instance, starts), seconds, cpu_seconds


def run_gaps(cfg: DictConfig) -> list[Result]:
    """Every policy of `cfg` on every instance of every group."""
    groups = _groups(cfg)
    rules = [str(r) for r in cfg.rules]
    for rule in rules:
        if rule not in RULES:
            raise ConfigError(
                f"rules: {rule!r} is not a dispatching rule{did_you_mean(rule, RULES)}; choose from {', '.join(RULES)}"
            )
    limits = [positive_number("cpsat.time_limits_s", t) for t in cfg.cpsat.time_limits_s]
    workers = whole_number("cpsat.workers", cfg.cpsat.workers)
    solver_seed = whole_number("cpsat.seed", cfg.cpsat.seed, least=0)
    env_seed = whole_number("env_seed", cfg.env_seed, least=0)
    learned = {str(label): _learned_entry(str(label), entry) for label, entry in (cfg.learned or {}).items()}
    if not (rules or limits or learned):
        raise ConfigError("rules, cpsat.time_limits_s, learned: all empty, so there is no policy to run; name one")
    _distinct_columns(rules, limits, learned)
    schedulers = {label: load_scheduler(e["module"], e["path"]) for label, e in learned.items()}
    first = next(iter(groups.values()))[0]
    for label, entry in learned.items():  # untimed: the first call pays the library's start-up, not an instance
        schedulers[label].solve(first, 1, entry["seed"])
    results: list[Result] = []
    for group, instances in groups.items():
        for instance in instances:
            for rule in rules:
                makespan, seconds, cpu, _ = env_schedule(instance, rule, seed=env_seed)
                results.append(Result(group, instance, rule, makespan, seconds, cpu))
            for limit in limits:
                solver = {"time_limit_s": limit, "workers": workers, "seed": solver_seed}
                results.append(_bound_checked(cpsat_result(group, instance, solver, env_seed)))
            for label, entry in learned.items():
                makespan, seconds, cpu = learned_schedule(schedulers[label], instance, entry["samples"], entry["seed"])
                results.append(Result(group, instance, label, makespan, seconds, cpu))
            log.info(
                "%s %s: %s",
                group,
                instance.name,
                ", ".join(f"{r.policy} {r.makespan}" for r in results if r.instance is instance),
            )
    return results


def cpsat_result(group: str, instance: Instance, solver: Mapping[str, Any], seed: int) -> Result:
    """CP-SAT's plan on `instance` run through the env, with what the solver proved.

    A limit that runs out before a first schedule is a result (status UNKNOWN, no makespan), not a
    fault: the run goes on to the other instances and policies and the table says so.

    Raises:
        ScheduleError: as `env_schedule`, or the env ran the plan to another makespan than the plan's.
        CpSatError: the model is invalid.
    """
    label = _cpsat_label(float(solver["time_limit_s"]))
    params = {**solver, "hold_for_plan": True}  # replay the plan exactly: the env's makespan is the solver's
    began, cpu_began = time.perf_counter(), time.process_time()
    try:
        makespan, seconds, cpu, baseline = env_schedule(instance, "cpsat", params, seed)
    except CpSatError as exc:
        if not exc.timed_out:
            raise
        log.warning("%s", exc)
        return Result(
            group, instance, label, None, time.perf_counter() - began, time.process_time() - cpu_began, "UNKNOWN"
        )
    plan = cast(CpSatDispatch, baseline).plan()
    if makespan != plan.makespan:
        raise ScheduleError(
            f"instance {instance.name!r}: the env ran CP-SAT's plan to {makespan}, not to its {plan.makespan}"
        )
    return Result(
        group, instance, label, makespan, seconds, cpu, plan.status, plan.lower_bound, plan.deterministic_time
    )


def _bound_checked(result: Result) -> Result:
    """`result`, unless the solver proved its instance's best known makespan unreachable (a mistyped `best_known`).

    Raises:
        ConfigError: the best known makespan is below the solver's proven lower bound.
    """
    instance, bound = result.instance, result.lower_bound
    if bound is not None and instance.best_known is not None and instance.best_known < bound:
        raise ConfigError(
            f"best_known.{instance.name}: {instance.best_known} is below CP-SAT's proven lower bound {bound}: "
            "no schedule reaches it; check the published value"
        )
    return result


def _groups(cfg: DictConfig) -> dict[str, list[Instance]]:
    """Each group's instances, each with the best known makespan its gaps are measured against."""
    groups = OmegaConf.to_container(cfg.groups, resolve=True)
    if not isinstance(groups, dict) or not groups:
        raise ConfigError("groups: expected a mapping of group names to instance lists, e.g. {ta01-ta10: [ta01, ta02]}")
    given = _given_bounds(cfg)
    out: dict[str, list[Instance]] = {}
    for key, names in groups.items():
        group = str(key)
        if not isinstance(names, list) or not names:
            raise ConfigError(f"groups.{group}: expected a non-empty list of instance names or files, got {names!r}")
        instances = [_instance(f"groups.{group}", str(name), given) for name in names]
        distinct(f"groups.{group}", (i.name for i in instances))  # one named twice would weigh twice in the mean
        out[group] = instances
    unused = sorted(set(given) - {i.name for instances in out.values() for i in instances})
    if unused:
        raise ConfigError(f"best_known.{unused[0]}: no instance of the groups is called so")
    return out


def _given_bounds(cfg: DictConfig) -> dict[str, int]:
    """`best_known`: the best known makespan of each instance file that is not a shipped instance, by name."""
    node = cfg.get("best_known")  # Hydra keeps it a mapping (or null)
    given = cast(dict[str, Any], OmegaConf.to_container(node, resolve=True)) if isinstance(node, DictConfig) else {}
    return {str(name): whole_number(f"best_known.{name}", value) for name, value in given.items()}


def _instance(key: str, name: str, given: Mapping[str, int]) -> Instance:
    """A shipped instance by name, or an instance file, with its best known makespan.

    A file that holds a shipped instance's jobs has that instance's; any other takes its own from
    `given` (by the file's name without its suffix).

    Raises:
        ConfigError: neither a shipped instance nor a file, a malformed file, a file without a best
            known makespan, or a shipped instance given one.
    """
    known = shipped()
    if name not in known and not Path(name).is_file():
        raise ConfigError(
            f"{key}: {name!r} is neither a shipped instance{did_you_mean(name, known)} nor an instance file; "
            f"shipped: {', '.join(known)}"
        )
    try:
        instance = load_instance(name)
    except InstanceError as exc:
        raise ConfigError(f"{key}: {exc}") from None
    if instance.best_known is not None:
        if instance.name in given:
            raise ConfigError(
                f"best_known.{instance.name}: {name} holds a shipped instance's jobs, whose best known "
                f"makespan ({instance.best_known}) the gaps use; leave it out"
            )
        return instance
    if instance.name not in given:
        raise ConfigError(
            f"{key}: {name} has no best known makespan to measure a gap against (it is not a shipped instance); "
            f"give the published one: '+best_known.{instance.name}=<makespan>'"
        )
    return dataclasses.replace(instance, best_known=given[instance.name])


def _cpsat_label(limit: float) -> str:
    return f"cpsat {limit:g}s"


def _distinct_columns(rules: list[str], limits: list[float], learned: Mapping[str, Any]) -> None:
    """Refuse two policies under one label: the reports would merge their columns.

    A learned label may not be a rule's name, configured or not: the reports count every
    rule-named column as a rule.
    """
    taken: dict[str, str] = {}
    columns = [
        *((rule, "rules") for rule in rules),
        *((_cpsat_label(limit), "cpsat.time_limits_s") for limit in limits),
        *((label, f"learned.{label}") for label in learned),
    ]
    for label, key in columns:
        if key != "rules" and label in RULES:
            raise ConfigError(
                f"{key}: {label!r} is a dispatching rule's name, and the reports count a column of that name "
                "as a rule; give it another label"
            )
        if label in taken:
            source = "twice" if taken[label] == key else f"also from {taken[label]}"
            raise ConfigError(
                f"{key}: column {label!r} comes {source}, and the reports would merge the two; give it another label"
            )
        taken[label] = key


def _learned_entry(label: str, entry: Any) -> dict[str, Any]:
    values = OmegaConf.to_container(entry, resolve=True) if isinstance(entry, DictConfig) else entry
    if not isinstance(values, dict) or "module" not in values or "path" not in values:
        raise ConfigError(
            f"learned.{label}: expected {{module: agents.<module>, path: <folder>, samples: 1, seed: 0}}, got {entry!r}"
        )
    unknown = set(values) - {"module", "path", "samples", "seed"}
    if unknown:
        raise ConfigError(f"learned.{label}: unknown keys {sorted(unknown)}; it takes module, path, samples, seed")
    samples = whole_number(f"learned.{label}.samples", values.get("samples", 1))
    seed = whole_number(f"learned.{label}.seed", values.get("seed", 0), least=0)
    return {"module": str(values["module"]), "path": str(values["path"]), "samples": samples, "seed": seed}


def jssp_gaps(cfg: DictConfig, out_dir: Path) -> list[Result]:
    """Run the harness and write its reports into `out_dir`."""
    load_before = os.getloadavg()[1]
    results = run_gaps(cfg)
    header = (
        f"Makespan (gap to best known) per instance and policy. Rules and CP-SAT through smartline/Scheduling-v0; "
        f"CP-SAT with {int(cfg.cpsat.workers)} worker(s), seed {int(cfg.cpsat.seed)}; 'opt': proven optimal, "
        f"'lb': CP-SAT's proven lower bound. Machine load (5-minute average) {load_before:.1f} before, "
        f"{os.getloadavg()[1]:.1f} after, on {os.cpu_count()} cores."
    )
    paths = write_reports(results, out_dir, header)
    log.info("%s\nwritten: %s", Path(paths["markdown"]).read_text(), ", ".join(str(p) for p in paths.values()))
    return results


@hydra.main(config_path="pkg://configs", config_name="jssp_gaps", version_base="1.3")
def main(cfg: DictConfig) -> None:
    """Entry point."""
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    with one_line_errors(run_dir):
        jssp_gaps(cfg, Path(cfg.out_dir) if cfg.out_dir else run_dir)


if __name__ == "__main__":
    run(main)
