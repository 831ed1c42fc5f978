"""Evaluate exported artifacts and heuristics side by side over seeds and scenarios.

    python -m experiments.evaluate 'policies=[outputs/train/Speed/<run>/artifact,nominal_speed]'
    python -m experiments.evaluate task=scheduling line=flow5_orders 'policies=[fifo,spt,mwkr]' episodes=20
    python -m experiments.evaluate 'policies=[<artifact>,nominal_speed]' 'scenarios=[none,price_spike]'

Each policy runs `episodes` episodes per scenario and, on tick tasks, `continuing_days` of
continuing operation without reset on the first `continuing_seeds` seeds; with `settle_episodes=N`
(tick tasks) each seed also runs N + 1 episodes' length from the same start and is scored on the
last, the comparison from the state each policy keeps rather than the one the warm-up left.
Prints the KPI table (mean and 95% interval per policy, scenario and mode) and the paired return
difference of each learned policy against each heuristic (with heuristics only: the first
against the others), and writes the table as Markdown, the raw episodes and the summary as CSV,
and PNG plots into the run's folder.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf, open_dict

from agents.baselines import BASELINES
from agents.rollout import Policy
from experiments.build import ConfigError, heuristic_overrides, is_learner
from experiments.comparison import checked_seeds, compare, runs_on
from experiments.errors import distinct, one_line_errors, run, scenario_names, whole_number
from experiments.policies import distinct_labels, load_policy
from experiments.report import Row, kpi_table, verdict, write_reports
from experiments.run_folders import check_output

log = logging.getLogger(__name__)

CARRIED = ("line", "task")  # config roots a command-line override changes in an artifact's own config too


def evaluation_config(cfg: DictConfig, overrides: Sequence[str] = ()) -> DictConfig:
    """The config to build envs from: the first artifact's own, else the composed one.

    The `hardware` and `guard` groups are always the composed ones: an artifact trained on the twin
    runs as it is over `hardware=modbus`, under the guard the command line names. So are the keys
    of `line` and `task` the command line `overrides` set or delete (`line=flow5_busy`,
    `+task.kwargs.weights.energy=50`): the same policy on another line or under another reward;
    the artifact's spaces must still fit. The task stays the artifacts' (`task=<theirs>` keeps its
    config as trained, so that its keys can be set; another is a `ConfigError`). `max_episode_steps`, when set,
    replaces the episode length (a policy trained on 3-day episodes, scored per day).
    """
    manifests = [Path(p) / "manifest.json" for p in cfg.policies if (Path(p) / "manifest.json").is_file()]
    run_cfg = _run_config(cfg, manifests) if manifests else copy.deepcopy(cfg)
    if manifests:
        _carry(run_cfg, cfg, overrides)
    steps = cfg.get("max_episode_steps")
    if steps is not None:
        run_cfg.task.max_episode_steps = whole_number("max_episode_steps", steps)
    return run_cfg


def trained_config(manifest: Path) -> DictConfig:
    """The training config an artifact's `manifest.json` records.

    Raises:
        ConfigError: a manifest that cannot be read or records no config.
    """
    try:
        data = json.loads(manifest.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"policies: {manifest} is not a readable policy manifest: {exc}") from exc
    config = data.get("config") if isinstance(data, dict) else None
    if not isinstance(config, dict):
        raise ConfigError(
            f"policies: {manifest} records no training config, so the task and line it runs on are unknown; "
            "export it with its run's config"
        )
    return OmegaConf.create(config)


def _run_config(cfg: DictConfig, manifests: list[Path]) -> DictConfig:
    """The first artifact's training config, with this run's `hardware` and `guard`."""
    configs = [trained_config(manifest) for manifest in manifests]
    tasks = {c.task.name for c in configs}
    if len(tasks) > 1:
        raise ConfigError(f"policies: the artifacts were trained on different tasks {sorted(tasks)}")
    run_cfg = configs[0]
    for group in ("hardware", "guard"):  # the line layer is this run's: the same policy, another line or guard
        if cfg.get(group) is not None:
            run_cfg[group] = cfg[group]
    return run_cfg


def _carry(run_cfg: DictConfig, cfg: DictConfig, overrides: Sequence[str]) -> None:
    """Set in `run_cfg` what the command line's `line` and `task` overrides set in `cfg` (or delete).

    Raises:
        ConfigError: an override that names another task than the artifacts', or removes the line or task.
    """
    trained = str(run_cfg.task.name)
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        key = override.key_or_group
        if key.split(".")[0] not in CARRIED:
            continue
        if key in CARRIED and override.is_delete():
            raise ConfigError(f"~{key}: the artifacts run with a {key}; name another ({key}=<option>) or set its keys")
        if key == "task":  # the group: it must name the artifacts' own task, whose config stays as trained
            if str(cfg.task.name) != trained:
                raise ConfigError(
                    f"task: the artifacts were trained on task {trained}, not {cfg.task.name}; name their task "
                    f"(task={trained.lower()}) or leave it out, and set its keys (task.kwargs...)"
                )
            continue
        parent, _, leaf = key.rpartition(".")
        if override.is_delete():
            node = OmegaConf.select(run_cfg, parent)
            if isinstance(node, DictConfig) and leaf in node:
                with open_dict(node):
                    del node[leaf]
            continue
        with open_dict(run_cfg):
            OmegaConf.update(run_cfg, key, copy.deepcopy(OmegaConf.select(cfg, key)), merge=False, force_add=True)


def heuristic_params(run_cfg: DictConfig, cfg: DictConfig) -> dict[str, dict[str, Any]]:
    """Parameters per heuristic name: the artifact run's tuned `heuristics`, then this run's over them."""
    params: dict[str, dict[str, Any]] = {}
    for source in (run_cfg.get("heuristics"), cfg.get("heuristics")):
        if source is not None:
            for name, values in heuristic_overrides(source).items():
                params[name] = params.get(name, {}) | values
    return params


def seen_seeds(trained: DictConfig, seeds: Sequence[int]) -> str | None:
    """A warning when `seeds` are seeds the run of an artifact (its config `trained`) used; the mirror of tune's.

    Its evaluation seeds (`evaluation.seed`, `evaluation.episodes`) decided which policy it kept
    (ARS `keep_best`) or how its training went; an SB3 run's training envs started from `seed`,
    `seed + 1`, ... (`n_envs` of them). A policy picked or trained on the seeds it is then compared
    on is favoured there.
    """
    used: list[tuple[str, range]] = []
    evaluation = trained.get("evaluation")
    if isinstance(evaluation, DictConfig) and evaluation.get("seed") is not None:
        first, count = int(evaluation.seed), int(evaluation.episodes)
        used.append((f"evaluation.seed {first}, evaluation.episodes {count}", range(first, first + count)))
    if OmegaConf.select(trained, "agent._target_") is not None and is_learner(trained):
        first, count = int(trained.seed), int(trained.get("n_envs", 1))
        used.append((f"training envs' seed {first}, n_envs {count}", range(first, first + count)))
    shared = sorted({s for _, r in used for s in r}.intersection(seeds))
    if not shared:
        return None
    which = f"seed {shared[0]}" if len(shared) == 1 else f"{len(shared)} seeds, {shared[0]}-{shared[-1]},"
    sources = "; ".join(text for text, r in used if set(r) & set(shared))
    return f"{which} used by the artifact's run too ({sources}): a policy picked or trained on them is favoured there"


def comparison_pairs(labels: list[str], heuristics: set[str]) -> list[tuple[str, str]]:
    """(policy, baseline) pairs to report: each learned policy against each heuristic.

    With heuristics only, the first named against each of the others.
    """
    learned = [p for p in labels if p not in heuristics]
    if learned:
        return [(p, h) for p in learned for h in labels if h in heuristics]
    return [(labels[0], h) for h in labels[1:]]


def apart(policies: list[tuple[str, Policy]], specs: Sequence[Any]) -> list[tuple[str, Policy]]:
    """`policies` with every label its own (`distinct_labels`)."""
    labels = distinct_labels([label for label, _ in policies], specs)
    return [(label, policy) for label, (_, policy) in zip(labels, policies, strict=True)]


def evaluate(cfg: DictConfig, run_dir: Path, overrides: Sequence[str] = ()) -> list[Row]:
    """Run every policy on every scenario for `cfg.episodes` seeds; write and return the rows.

    They go into `cfg.out_dir` (a new or empty folder) if set, else into `run_dir`, the run's own.
    `overrides` are the command line's (Hydra's `key=value` strings): those of `line` and `task`
    apply to an artifact's own config too (`evaluation_config`).
    """
    if not cfg.policies:
        raise ConfigError("policies: name at least one artifact folder or heuristic, e.g. 'policies=[fifo,spt]'")
    distinct("policies", (str(p) for p in cfg.policies))
    scenarios = scenario_names("scenarios", cfg.scenarios)
    seeds = checked_seeds(cfg)
    named = [str(p) for p in cfg.policies if str(p) in BASELINES]
    idle = [h for h in heuristic_overrides(cfg.heuristics) if h not in named] if cfg.get("heuristics") else []
    if idle:
        raise ConfigError(
            f"heuristics.{idle[0]}: {idle[0]} is not in policies, so nothing would run with it; the heuristics "
            f"in policies are {', '.join(named) or 'none'}"
        )
    out_dir = Path(cfg.out_dir) if cfg.out_dir else run_dir
    if cfg.out_dir:
        check_output("out_dir", out_dir, run_dir)
    run_cfg = evaluation_config(cfg, overrides)
    tuned = heuristic_params(run_cfg, cfg)
    rows: list[Row] = []
    notes: set[str] = set()
    for spec in cfg.policies:
        manifest = Path(str(spec)) / "manifest.json"
        seen = seen_seeds(trained_config(manifest), seeds) if manifest.is_file() else None
        if seen:
            notes.add(f"{spec}: {seen}")
            log.warning("seed: %s: %s", spec, seen)
    for scenario in scenarios:
        scenario_rows, note = compare(
            run_cfg,
            lambda env: apart(
                [load_policy(str(spec), env, tuned.get(str(spec))) for spec in cfg.policies], cfg.policies
            ),
            scenario,
            scenario,
            seeds,
            cfg.continuing_days,
            cfg.continuing_seeds,
            cfg.settle_episodes,
        )
        rows.extend(scenario_rows)
        notes.update([note] if note else [])
    labels = list(dict.fromkeys(r.policy for r in rows))
    pairs = comparison_pairs(labels, {str(p) for p in cfg.policies if str(p) in BASELINES})
    over = f" over {run_cfg.hardware.name}" if run_cfg.get("hardware", {}).get("_target_") else ""
    title = f"{run_cfg.task.name} on {runs_on(run_cfg)}{over}, {len(seeds)} seeds from {cfg.seed}"
    summary = "\n".join([*(verdict(rows, p, b) for p, b in pairs), *sorted(notes)])
    paths = write_reports(rows, out_dir, f"{title}\n\n{summary}", pairs=pairs)
    written = ", ".join(str(p) for p in paths.values())
    log.info("%s\n\n%s\n\n%s\nwritten: %s", title, kpi_table(rows), summary, written)
    return rows


@hydra.main(config_path="pkg://configs", config_name="evaluate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    """Entry point."""
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    with one_line_errors(run_dir):
        evaluate(cfg, run_dir, list(HydraConfig.get().overrides.task))


if __name__ == "__main__":
    run(main)
