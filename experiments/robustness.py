"""Robustness: each trained policy under every scenario it was not trained on, against its heuristics there.

    python -m experiments.robustness 'artifacts=[outputs/train/Factory/<run>/artifact,...]'

Each artifact runs with its own run's config (task, line, control period) and is compared with the
heuristics its run was compared with (the run's tuned `heuristics`, else the task's baseline; or
those `heuristics.<Task>` names, e.g. `+heuristics.Energy={tou_energy:{speed_ratio:0.75}}`), on
the same seeds: first without disruption (`none`), then under each scenario of `scenarios` other
than the one it was trained on and its line accepts (a line without open arrivals refuses a
demand surge: the table notes it). Per artifact (its task and train run), heuristic and scenario
the table gives the paired return difference learned minus heuristic with its 95% interval, and
its change from the no-scenario figure (paired by seed, with its own interval): where the policy
degrades against the rule, and by how much. Writes the Markdown table (`out`), every episode
(`<plots>/episodes.csv`) and one plot of the differences per artifact (`<plots>/<task>.png`, or
`<plots>/<task>_<run>.png` for each of several artifacts of one task).
"""

from __future__ import annotations

import csv
import logging
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from agents.rollout import Policy
from envs.lines import scenario_events, scenario_field
from envs.registration import TASKS
from experiments.build import ConfigError, heuristic_overrides, heuristics, make_env
from experiments.comparison import checked_seeds, compare
from experiments.errors import did_you_mean, distinct, one_line_errors, run, scenario_names
from experiments.evaluate import evaluation_config, seen_seeds
from experiments.line_config import line_definition
from experiments.plots import difference_plot
from experiments.policies import artifact_run, distinct_labels, load_policy
from experiments.report import Row, decimals, mean_interval
from experiments.run_folders import check_output
from experiments.tables import markdown_table
from hardware.twin import LineDefinitionError, TwinLine

log = logging.getLogger(__name__)

LEARNED = "learned"
NO_SCENARIO = "none"


class NotApplicable(Exception):
    """An artifact whose env has no line to disrupt; the message says why, and the table notes it."""


@dataclass(frozen=True)
class Cell:
    """One artifact (its task and train run), heuristic and scenario: learned minus heuristic return, and its change.

    Each is (mean, 95% half-width) over the paired seeds; `change`, from `none`, is None for `none` itself.
    """

    task: str
    run: str
    heuristic: str
    scenario: str
    mode: str
    difference: tuple[float, float]
    change: tuple[float, float] | None
    learned_return: float
    heuristic_return: float
    seeds: int
    change_seeds: int = 0  # the seeds `change` is paired over: those the scenario shares with `none`


def differences(rows: Sequence[Row], heuristic: str, scenario: str, mode: str) -> dict[int, float]:
    """Learned minus `heuristic` return per seed, under `scenario` in `mode`."""
    theirs = {r.seed: r.values["return"] for r in rows if (r.policy, r.scenario, r.mode) == (heuristic, scenario, mode)}
    return {
        r.seed: r.values["return"] - theirs[r.seed]
        for r in rows
        if (r.policy, r.scenario, r.mode) == (LEARNED, scenario, mode) and r.seed in theirs
    }


def cells(task: str, run: str, rows: Sequence[Row], heuristic_labels: Sequence[str]) -> list[Cell]:
    """The table's cells for the rows of one artifact (of `task`, train run `run`): every heuristic, scenario and mode.

    Raises:
        ValueError: when a scenario's rows share no seed with the learned policy's.
    """
    out = []
    for mode in dict.fromkeys(r.mode for r in rows):
        for heuristic in heuristic_labels:
            base = differences(rows, heuristic, NO_SCENARIO, mode)
            for scenario in dict.fromkeys(r.scenario for r in rows):
                diff = differences(rows, heuristic, scenario, mode)
                if not diff:
                    raise ValueError(f"{task} {run}, {scenario}, {mode}: no seed has both learned and {heuristic}")
                change, shared = None, []
                if scenario != NO_SCENARIO:
                    shared = sorted(set(diff) & set(base))
                    change = mean_interval([diff[s] - base[s] for s in shared]) if shared else None
                mean_of = {  # over the paired seeds only, as the difference is
                    p: sum(
                        r.values["return"]
                        for r in rows
                        if (r.policy, r.scenario, r.mode) == (p, scenario, mode) and r.seed in diff
                    )
                    / len(diff)
                    for p in (LEARNED, heuristic)
                }
                out.append(
                    Cell(
                        task,
                        run,
                        heuristic,
                        scenario,
                        mode,
                        mean_interval(list(diff.values())),
                        change,
                        mean_of[LEARNED],
                        mean_of[heuristic],
                        len(diff),
                        len(shared),
                    )
                )
    return out


def _interval(value: tuple[float, float] | None, seeds: int) -> str:
    """`mean ± half`, whole numbers unless the interval (or, one seed or none, the mean) is below 1: then two digits.

    A paired difference of 0.3 ± 0.2 printed as `+0 ± 0` beside the outcome `learned better`.
    """
    if value is None:
        return "-"
    mean, half = value
    d = decimals(half, mean, least=0)
    return f"{mean:+,.{d}f}" if seeds < 2 else f"{mean:+,.{d}f} ± {half:,.{d}f}"


def _outcome(mean: float, half: float, seeds: int) -> str:
    if not math.isfinite(mean):  # a NaN compares false both ways: it read as no difference
        return f"no verdict, the return is not a number on some of the {seeds} seeds"
    if seeds < 2:
        return "one seed"
    return "learned better" if mean - half > 0 else "heuristic better" if mean + half < 0 else "no difference"


def table(all_cells: Sequence[Cell]) -> str:
    """The Markdown table of every cell, one row per artifact, heuristic, mode and scenario."""
    header = [
        "task",
        "run",
        "heuristic",
        "mode",
        "scenario",
        "seeds",
        "learned return",
        "heuristic return",
        "learned - heuristic (95%)",
        "change from none (95%)",
        "outcome",
    ]
    body = [
        [
            c.task,
            c.run,
            c.heuristic,
            c.mode,
            c.scenario,
            c.seeds,
            f"{c.learned_return:,.0f}",
            f"{c.heuristic_return:,.0f}",
            _interval(c.difference, c.seeds),
            _interval(c.change, c.change_seeds),
            _outcome(*c.difference, c.seeds),
        ]
        for c in all_cells
    ]
    return markdown_table(header, body, numeric=[False] * 5 + [True] * 5 + [False])


def trained_scenario(run_cfg: DictConfig) -> str:
    """The scenario an artifact's run trained under (`none` for none)."""
    return str(OmegaConf.select(run_cfg, "scenario.name", default=NO_SCENARIO))


def refused_scenarios(run_cfg: DictConfig, scenarios: Sequence[str]) -> dict[str, str]:
    """The scenarios a run's line refuses (a demand surge on a line without open arrivals), each with its reason."""
    refused = {}
    for scenario in scenarios:
        try:
            TwinLine.from_definition(line_definition(run_cfg.line), scenarios=scenario_events(scenario))
        except LineDefinitionError as exc:
            field = scenario_field(exc)
            if field is not None:  # another error is the line's own, and the run under `none` reports it
                refused[scenario] = f"scenarios{field}"
    return refused


@dataclass(frozen=True)
class Plan:
    """What one artifact runs: its run's config, its heuristics (from `key`), its scenarios and notes."""

    artifact: str
    task: str
    run_cfg: DictConfig
    heuristics: dict[str, dict[str, Any]]
    key: str
    scenarios: list[str]
    notes: list[str]
    seen: str | None

    def policies(self, env: gym.Env[Any, Any]) -> list[tuple[str, Policy]]:
        """The artifact (labelled `learned`) and its heuristics on `env`."""
        _, learned = load_policy(self.artifact, env)
        return [(LEARNED, learned), *(load_policy(n, env, p, self.key) for n, p in self.heuristics.items())]


def plan_artifact(cfg: DictConfig, artifact: str) -> Plan:
    """The plan of one artifact: its heuristics under `none` and every scenario it was not trained on.

    The artifact and its heuristics' parameters are loaded on an env of each scenario, so that one
    that refuses them stops the run before any artifact is evaluated. Notes name each scenario the
    artifact's line refuses (left out); `seen` warns if the seeds are seeds its run used.

    Raises:
        NotApplicable: the artifact runs a fixed job-shop instance.
        ConfigError: not an artifact, or a policy refuses its env or a parameter.
    """
    if not (Path(artifact) / "manifest.json").is_file():
        raise ConfigError(f"artifacts: {artifact} has no manifest.json; it is not a policy artifact folder")
    run_cfg = evaluation_config(OmegaConf.create({"policies": [artifact]}))
    task = str(run_cfg.task.name)
    if OmegaConf.select(run_cfg, "task.kwargs.instance") is not None:
        raise NotApplicable(f"{task} ({artifact}) runs a fixed job-shop instance: the twin's scenarios do not apply")
    given = cfg.get("heuristics") or {}
    key = f"heuristics.{task}" if task in given else "heuristics"  # where the heuristics' parameters come from
    tuned = heuristic_overrides(given[task], key) if task in given else heuristics(run_cfg)
    trained = trained_scenario(run_cfg)
    scenarios = [NO_SCENARIO, *(s for s in cfg.scenarios if s not in (trained, NO_SCENARIO))]
    refused = refused_scenarios(run_cfg, scenarios)
    notes = [f"{task} ({artifact}) under {s}: its line refuses the scenario: {why}" for s, why in refused.items()]
    seen = seen_seeds(run_cfg, checked_seeds(cfg))
    plan = Plan(artifact, task, run_cfg, tuned, key, [s for s in scenarios if s not in refused], notes, seen)
    for scenario in plan.scenarios:
        env = make_env(run_cfg, scenario=scenario)
        try:
            plan.policies(env)
        finally:
            env.close()
    return plan


def evaluate_plan(cfg: DictConfig, plan: Plan) -> list[Row]:
    """Rows of one artifact (labelled `learned`) and its heuristics under each scenario of its plan."""
    if plan.seen:
        log.warning("seed: %s: %s", plan.artifact, plan.seen)
    rows: list[Row] = []
    seeds = checked_seeds(cfg)
    for scenario in plan.scenarios:
        found, _ = compare(
            plan.run_cfg, plan.policies, scenario, scenario, seeds, cfg.continuing_days, cfg.continuing_seeds
        )
        rows.extend(found)
        log.info("%s: %s done (%d rows)", plan.task, scenario, len(found))
    return rows


def robustness(cfg: DictConfig, run_dir: Path | None = None) -> dict[str, Path]:
    """Run the grid of `cfg.artifacts` x scenarios; write the table, the episodes and the plots.

    They go where `cfg.out` (the table) and `cfg.plots` (the rest) say, each into a new or empty
    folder, by default into `run_dir` (the run's own folder), so that no run overwrites another's.
    """
    if not cfg.artifacts:
        raise ConfigError(
            "artifacts: name at least one artifact folder, e.g. 'artifacts=[outputs/train/Factory/<run>/artifact]'"
        )
    distinct("artifacts", (str(a) for a in cfg.artifacts))
    scenario_names("scenarios", cfg.scenarios)
    checked_seeds(cfg)
    given = cfg.get("heuristics") or {}
    unknown = [str(t) for t in given if str(t) not in TASKS]
    if unknown:
        raise ConfigError(f"heuristics.{unknown[0]}: not a task{did_you_mean(unknown[0], TASKS)}; keys are task names")
    for task in given:  # checked before any artifact runs: an empty entry left its task's plot with no panel
        if not heuristic_overrides(given[task], f"heuristics.{task}"):
            raise ConfigError(
                f"heuristics.{task}: name at least one heuristic, or leave {task} out for its run's own heuristics"
            )
    plots, out = _where(cfg, "plots", run_dir), _where(cfg, "out", run_dir, "table.md")
    for key, folder in (("plots", plots), ("out", out.parent)):
        if cfg.get(key) is not None:
            check_output(key, folder, run_dir)
    notes: list[str] = []
    runs = distinct_labels([artifact_run(Path(str(a))).name for a in cfg.artifacts], cfg.artifacts)
    plans: list[tuple[Plan, str]] = []
    for artifact, run_name in zip(cfg.artifacts, runs, strict=True):  # every artifact checked before any runs
        try:
            plan = plan_artifact(cfg, str(artifact))
        except NotApplicable as exc:
            notes.append(str(exc))
            continue
        plans.append((plan, run_name))
        notes.extend(plan.notes)
    plots.mkdir(parents=True, exist_ok=True)
    all_cells: list[Cell] = []
    warnings: list[str] = []
    paths: dict[str, Path] = {"episodes": plots / "episodes.csv"}
    figures: list[tuple[str, str, dict[str, dict[str, tuple[float, float]]]]] = []  # task, run, panels
    with paths["episodes"].open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["task", "artifact", "policy", "scenario", "mode", "seed", "return"])
        for plan, run in plans:
            task, rows, labels = plan.task, evaluate_plan(cfg, plan), list(plan.heuristics)
            writer.writerows(
                [task, plan.artifact, r.policy, r.scenario, r.mode, r.seed, repr(r.values["return"])] for r in rows
            )
            warnings.extend([f"{task} {run} ({plan.artifact}): {plan.seen}"] if plan.seen else [])
            found = cells(task, run, rows, labels)
            all_cells.extend(found)
            panels = {
                f"{task} {run}: learned - {h}, {m}": {
                    c.scenario: (c.difference[0], c.difference[1] if c.seeds > 1 else math.nan)
                    for c in found
                    if (c.heuristic, c.mode) == (h, m)
                }
                for h in labels
                for m in dict.fromkeys(c.mode for c in found)
            }
            figures.append((task, run, panels))
    per_task = Counter(task for task, _, _ in figures)
    for task, run, panels in figures:  # one plot per artifact, named by its task alone where the task has one
        alone = per_task[task] == 1
        name = task.lower() if alone else f"{task.lower()}_{re.sub(r'[^A-Za-z0-9.-]+', '_', run).strip('_')}"
        key = f"plot {task}" if alone else f"plot {task} {run}"
        paths[key] = difference_plot(panels, "return difference (paired)", plots / f"{name}.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    skipped = "".join(f"\nNot evaluated: {note}.\n" for note in notes)
    skipped += "".join(f"\nSeeds: {warning}.\n" for warning in warnings)
    heading = f"Robustness: {cfg.episodes} seeds from {cfg.seed} per scenario, paired by seed."
    out.write_text(f"{heading}\n\n{table(all_cells)}\n{skipped}")
    paths["table"] = out
    return paths


def _where(cfg: DictConfig, key: str, run_dir: Path | None, name: str = "") -> Path:
    """The path `cfg.<key>` names, else `name` in the run's folder."""
    value = cfg.get(key)
    if value is not None:
        return Path(value)
    if run_dir is None:
        raise ConfigError(f"{key}: name where it goes (the entry point's default is the run's folder)")
    return run_dir / name if name else run_dir


@hydra.main(config_path="pkg://configs", config_name="robustness", version_base="1.3")
def main(cfg: DictConfig) -> None:
    """Entry point."""
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    with one_line_errors(run_dir):
        paths = robustness(cfg, run_dir)
        log.info("%s\nwritten: %s", paths["table"].read_text(), ", ".join(str(p) for p in paths.values()))


if __name__ == "__main__":
    run(main)
