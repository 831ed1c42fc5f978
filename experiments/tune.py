r"""Sweep a heuristic's parameters on tuning seeds, so that learned policies meet it at its best.

    python -m experiments.tune experiment=maintenance tune.baseline=fixed_interval 'tune.grid={interval_h:[50,100,200]}'
    python -m experiments.tune experiment=inventory scenario=supplier_outage tune.baseline=ss_reorder \\
        'tune.grid={reorder_point_units:[400,800],order_up_to_units:[2300,3100]}'

Every combination of the grid runs on the experiment's own env (task, line, scenario, guard) for
`tune.episodes` episodes from `tune.seed` (the evaluation seeds, never the held-out seeds of the
final table: the ranking and `best.yaml` name any it shares with them) and, on tick tasks, over
`tune.continuing_days` without reset on the first `tune.continuing_seeds` of them. The
combinations are ranked by mean return in `tune.rank_by` mode (continuing: a tick task's only);
one the heuristic refuses on this env (s at or above S, S - s below the task's smallest
order) is listed under the ranking, not run, and a value it refuses in every combination (a
threshold its sensor cannot read, a negative interval) is a config error. The run's
folder gets the ranking (`ranking.md`), the KPI table, CSV and plots of every combination, and
`best.yaml`: the winner as a `heuristics:` entry to paste into the experiment.
"""

from __future__ import annotations

import itertools
import logging
import math
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import hydra
import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, ListConfig, OmegaConf

from agents.baselines import BASELINES, make_baseline, parameter_names
from experiments.build import check, make_env
from experiments.comparison import checked_seeds, clocked, compare, runs_on
from experiments.errors import ConfigError, did_you_mean, distinct, one_line_errors, run
from experiments.report import EPISODE, Row, continuing_mode, settled_mode, shown_interval, write_reports
from experiments.tables import markdown_table

log = logging.getLogger(__name__)

RANKS = ("episode", "continuing", "settled")


def grid_points(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, in the grid's order (the last parameter varies fastest)."""
    names = list(grid)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*(grid[n] for n in names))]


def point_label(point: Mapping[str, Any]) -> str:
    """A combination as `name=value, ...` (mappings and lists in flow style), the row label of the ranking."""
    if not point:
        return "as shipped"
    return ", ".join(
        f"{k}={yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}"
        for k, v in point.items()
    )


def checked_grid(cfg: DictConfig) -> tuple[str, dict[str, list[Any]]]:
    """The baseline to tune and its grid as plain values; a `ConfigError` names what is wrong."""
    baseline = str(cfg.tune.baseline)
    if baseline not in BASELINES:
        raise ConfigError(f"tune.baseline: {baseline!r} is not a heuristic{did_you_mean(baseline, BASELINES)}")
    if cfg.tune.rank_by not in RANKS:
        raise ConfigError(f"tune.rank_by: must be one of {', '.join(RANKS)}, got {cfg.tune.rank_by!r}")
    checked_seeds(cfg.tune, "tune.")
    if cfg.tune.rank_by == "continuing" and cfg.tune.continuing_seeds == 0:
        raise ConfigError("tune.rank_by: continuing needs tune.continuing_seeds > 0")
    if cfg.tune.rank_by == "settled" and cfg.tune.settle_episodes == 0:
        raise ConfigError("tune.rank_by: settled needs tune.settle_episodes > 0")
    grid = cfg.tune.grid
    if not isinstance(grid, DictConfig) or len(grid) == 0:
        raise ConfigError(f"tune.grid: expected a mapping of parameters to lists of values, got {grid!r}")
    known = parameter_names(baseline)
    plain: dict[str, list[Any]] = {}
    for param, values in grid.items_ex(resolve=False):
        name = str(param)
        if name not in known:
            raise ConfigError(
                f"tune.grid.{name}: {baseline} has no such parameter{did_you_mean(name, known)}; "
                f"it takes {', '.join(known) or 'none'}"
            )
        if not isinstance(values, ListConfig) or len(values) == 0:
            raise ConfigError(f"tune.grid.{name}: expected a non-empty list of values, got {values!r}")
        plain[name] = distinct(f"tune.grid.{name}", OmegaConf.to_container(values, resolve=True))  # type: ignore[arg-type]
    return baseline, plain


def ranking(
    rows: Sequence[Row], labels: Sequence[str], rank_by: str, days: float, settle_episodes: int = 0
) -> list[tuple[str, ...]]:
    """Ranking rows (rank, combination, episode, continuing and, if scored, settled return), best first by `rank_by`."""
    by_mode = {"episode": EPISODE, "continuing": continuing_mode(days)}
    if settle_episodes > 0:
        by_mode["settled"] = settled_mode(settle_episodes)

    def score(label: str, mode: str) -> tuple[float, float] | None:
        returns = [r.values["return"] for r in rows if r.policy == label and r.mode == mode]
        return shown_interval(returns) if returns else None

    scored = [(label, {k: score(label, mode) for k, mode in by_mode.items()}) for label in labels]

    def key(item: tuple[str, dict[str, tuple[float, float] | None]]) -> float:
        x = item[1][rank_by]  # no return, or one that is not a number: last
        return -x[0] if x is not None and math.isfinite(x[0]) else math.inf

    def cell(x: tuple[float, float] | None) -> str:
        if x is None:
            return "-"
        return f"{x[0]:,.1f}" if math.isnan(x[1]) else f"{x[0]:,.1f} ± {x[1]:,.1f}"

    ranked = sorted(scored, key=key)
    return [(str(i + 1), label, *(cell(x) for x in cells.values())) for i, (label, cells) in enumerate(ranked)]


def held_out_overlap(cfg: DictConfig, seeds: Sequence[int]) -> str | None:
    """A warning when tuning seeds are also held-out seeds of the final table (`final.seed`, `final.episodes`).

    A heuristic tuned on the seeds it is then compared on is favoured there; a grid run on the
    held-out seeds on purpose (every combination as a point of a Pareto plot) carries the warning too.
    """
    final = cfg.get("final")
    if final is None:
        return None
    held = set(range(int(final.seed), int(final.seed) + int(final.episodes)))
    shared = sorted(held.intersection(seeds))
    if not shared:
        return None
    which = f"seed {shared[0]}" if len(shared) == 1 else f"{len(shared)} seeds, {shared[0]}-{shared[-1]},"
    return (
        f"{which} held out for the final table too (final.seed {final.seed}, final.episodes {final.episodes}): "
        "a best picked on them is not tuned apart from that comparison"
    )


def refusals(cfg: DictConfig, baseline: str, points: Sequence[Mapping[str, Any]]) -> list[str | None]:
    """Why the heuristic refuses each combination on the experiment's env (None: it runs it).

    A grid is every combination of its values, and some may be no policy: s at or above S, or S - s
    below the task's smallest order. They are reported and left out. A value refused in every
    combination it is part of (a negative interval, a typo) is a `ConfigError` naming it, before
    any run; so is a combination whose parameters do not fit the heuristic at all.
    """
    env = make_env(cfg)
    try:
        reasons: list[str | None] = []
        for point in points:
            try:
                make_baseline(env, baseline, **point)
                reasons.append(None)
            except TypeError as exc:
                raise ConfigError(f"tune.grid ({point_label(point)}): {exc}") from exc
            except ValueError as exc:
                reasons.append(str(exc))
    finally:
        env.close()
    for name in points[0]:
        by_value: dict[str, list[str | None]] = {}
        for point, reason in zip(points, reasons, strict=True):
            by_value.setdefault(point_label({name: point[name]}), []).append(reason)
        for value, refused in by_value.items():
            if all(r is not None for r in refused):
                raise ConfigError(f"tune.grid ({value}): {baseline} refuses every combination with it: {refused[0]}")
    return reasons


def tune(cfg: DictConfig, out_dir: Path, command: str = "") -> dict[str, Any]:
    """Run the sweep into `out_dir`; return the best combination's parameters."""
    check(cfg)
    baseline, grid = checked_grid(cfg)
    every = grid_points(grid)
    reasons = refusals(cfg, baseline, every)
    points = [p for p, reason in zip(every, reasons, strict=True) if reason is None]
    refused = [(point_label(p), reason) for p, reason in zip(every, reasons, strict=True) if reason is not None]
    labels = [point_label(p) for p in points]
    seeds = checked_seeds(cfg.tune, "tune.")
    if cfg.tune.rank_by == "continuing" and not clocked(cfg):
        raise ConfigError(
            f"tune.rank_by: continuing: task {cfg.task.name} runs a fixed job set, not a clock, so it has no "
            "continuing run to rank by; rank by episode"
        )

    def policies(env: Any) -> list[tuple[str, Any]]:
        return [(label, make_baseline(env, baseline, **point)) for label, point in zip(labels, points, strict=True)]

    rows, note = compare(
        cfg,
        policies,
        None,
        str(cfg.scenario.name),
        seeds,
        cfg.tune.continuing_days,
        cfg.tune.continuing_seeds,
        cfg.tune.settle_episodes,
    )
    settle = int(cfg.tune.settle_episodes)
    ranked = ranking(rows, labels, cfg.tune.rank_by, cfg.tune.continuing_days, settle)
    best = points[labels.index(ranked[0][1])]
    modes = [continuing_mode(cfg.tune.continuing_days), *([settled_mode(settle)] if settle else [])]
    table = markdown_table(
        ["rank", f"{baseline} parameters", f"return, episode (mean ± 95%, {len(seeds)} seeds)"]
        + [f"return, {mode}" for mode in modes],
        ranked,
        numeric=[True, False, True, *(True for _ in modes)],
    )
    overlap = held_out_overlap(cfg, seeds)
    seeds_text = f"seeds {seeds[0]}-{seeds[-1]}" + "".join(f"; {n}" for n in (note, overlap) if n)
    where = f"{cfg.task.name}, {runs_on(cfg)}, scenario {cfg.scenario.name}"
    title = f"{baseline} on {where}: ranked by {cfg.tune.rank_by} return ({seeds_text})"
    if refused:
        table += f"\n\nRefused by {baseline}, not run:\n" + "".join(f"\n- {label}: {why}" for label, why in refused)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "ranking.md").write_text(f"# {title}\n\n{f'`{command}`' if command else ''}\n\n{table}\n")
    write_reports(rows, out_dir, title)
    snippet = {"heuristics": {baseline: best}}
    (out_dir / "best.yaml").write_text(
        (f"# {command}\n" if command else "") + f"# {seeds_text}\n" + yaml.safe_dump(snippet, sort_keys=False)
    )
    if overlap:
        log.warning("tune.seed: %s", overlap)
    log.info("%s\n\n%s\n\nbest: %s\nwritten: %s", title, table, ranked[0][1], out_dir)
    return best


@hydra.main(config_path="pkg://configs", config_name="tune", version_base="1.3")
def main(cfg: DictConfig) -> None:
    """Entry point."""
    hydra_cfg = HydraConfig.get()
    out_dir = Path(hydra_cfg.runtime.output_dir)
    # in a sweep, this job's own overrides: the sweep's command line would rerun every job
    args = list(hydra_cfg.overrides.task) if hydra_cfg.mode == RunMode.MULTIRUN else sys.argv[1:]
    command = "python -m experiments.tune " + " ".join(shlex.quote(a) for a in args)
    with one_line_errors(out_dir):
        tune(cfg, out_dir, command)


if __name__ == "__main__":
    run(main)
