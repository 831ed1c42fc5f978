"""Gaps to the best known makespans of job-shop instances: rules, CP-SAT and learned schedulers in one harness.

    python -m experiments.jssp_gaps       # ta01-ta10 and ta11-ta20: six rules, CP-SAT 10 s and 60 s
    python -m experiments.jssp_gaps 'cpsat.time_limits_s=[10]' cpsat.workers=1
    python -m experiments.jssp_gaps '+learned.spn_greedy={module: agents.<module>, path: <run>/scheduler, samples: 1}'

Rules and CP-SAT run as platform baselines through the real Scheduling env on each instance
(`smartline/Scheduling-v0` with `instance=`), so their makespans are the env's. A learned scheduler
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
from envs.jobshop import Instance, ScheduleError, best_known, check_schedule, load_instance
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
        instance: a shipped instance (the env loads it by name).
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
    env = gym.make("smartline/Scheduling-v0", instance=instance.name)
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
    first = load_instance(next(iter(groups.values()))[0])
    for label, entry in learned.items():  # untimed: the first call pays the library's start-up, not an instance
        schedulers[label].solve(first, 1, entry["seed"])
    results: list[Result] = []
    for group, names in groups.items():
        for name in names:
            instance = load_instance(name)
            for rule in rules:
                makespan, seconds, cpu, _ = env_schedule(instance, rule, seed=env_seed)
                results.append(Result(group, instance, rule, makespan, seconds, cpu))
            for limit in limits:
                solver = {"time_limit_s": limit, "workers": workers, "seed": solver_seed}
                results.append(cpsat_result(group, instance, solver, env_seed))
            for label, entry in learned.items():
                makespan, seconds, cpu = learned_schedule(schedulers[label], instance, entry["samples"], entry["seed"])
                results.append(Result(group, instance, label, makespan, seconds, cpu))
            log.info(
                "%s %s: %s",
                group,
                name,
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


def _groups(cfg: DictConfig) -> dict[str, list[str]]:
    groups = OmegaConf.to_container(cfg.groups, resolve=True)
    if not isinstance(groups, dict) or not groups:
        raise ConfigError("groups: expected a mapping of group names to instance lists, e.g. {ta01-ta10: [ta01, ta02]}")
    known = sorted(best_known())
    out: dict[str, list[str]] = {}
    for key, names in groups.items():
        group = str(key)
        if not isinstance(names, list) or not names:
            raise ConfigError(f"groups.{group}: expected a non-empty list of instance names, got {names!r}")
        for name in map(str, names):
            if name not in known:  # a gap needs a best known makespan: only shipped instances have one
                raise ConfigError(
                    f"groups.{group}: {name!r} is not a shipped instance{did_you_mean(name, known)}; "
                    f"choose from {', '.join(known)}"
                )
        out[group] = distinct(f"groups.{group}", map(str, names))  # one named twice would weigh twice in the mean
    return out


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
