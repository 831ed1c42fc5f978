"""Points of learned and heuristic policies on throughput, energy cost and CO2, and their paired comparisons.

Read from the KPI tables of finished runs (`experiments.pareto` plots and reports them): a point
per policy and mode, its objectives per seed; a comparison per learned and heuristic point, the
paired gains on their shared seeds with their 95% intervals and the verdicts on dominance.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from agents.baselines import BASELINES
from envs.registration import TASKS
from experiments.evaluate import evaluation_config, heuristic_params
from experiments.policies import artifact_label, artifact_run, distinct_labels
from experiments.report import mean_interval, shown_interval

OBJECTIVES = (
    ("good_parts", "good parts", 1.0),
    ("energy_cost", "energy cost", -1.0),
    ("co2_kg", "CO2, kg", -1.0),
)
_HEURISTIC_SUFFIX = " (heuristic)"


class ParetoError(Exception):
    """A run folder or argument that cannot be read; the message names it."""


@dataclass(frozen=True)
class Point:
    """One policy of one run of `task` in one mode: its objectives on each seed.

    `values` maps a seed to (good parts, energy cost, kg CO2) of that seed's episode or run.
    """

    label: str
    learned: bool
    task: str
    mode: str
    run: str
    values: Mapping[int, tuple[float, float, float]]

    def interval(self, k: int) -> tuple[float, float]:
        """Mean and 95% half-width of objective `k` (an index of `OBJECTIVES`) over the seeds (NaN for one seed)."""
        return shown_interval([v[k] for v in self.values.values()])


@dataclass(frozen=True)
class Comparison:
    """A learned point against a heuristic point on their shared seeds.

    `gains` holds, per objective, the mean paired gain of the learned point and its 95% half-width,
    signed so that a positive gain is better (more parts, less energy cost, less CO2).
    """

    learned: Point
    heuristic: Point
    gains: tuple[tuple[float, float], ...]
    seeds: int

    def verdicts(self) -> tuple[str, ...]:
        """Per objective: `better` or `worse` where the interval excludes 0, `n/a` for no number, else `tie`."""
        return tuple(
            "n/a" if not math.isfinite(m) else "better" if m - h > 0 else "worse" if m + h < 0 else "tie"
            for m, h in self.gains
        )

    @property
    def dominates(self) -> bool:
        """Whether the learned point is better on every objective, each with its 95% interval above 0."""
        return self.seeds > 1 and all(v == "better" for v in self.verdicts())

    @property
    def never_worse(self) -> bool:
        """Pareto's weaker sense at 95%: better on at least one objective and worse on none (ties allowed)."""
        verdicts = self.verdicts()
        return self.seeds > 1 and "better" in verdicts and set(verdicts) <= {"better", "tie"}


def episodes_file(run: Path) -> Path:
    """The per-episode CSV of a train run (`final/episodes.csv`) or an evaluate run (`episodes.csv`)."""
    for candidate in (run / "final" / "episodes.csv", run / "episodes.csv"):
        if candidate.is_file():
            return candidate
    raise ParetoError(f"{run}: no final/episodes.csv or episodes.csv (not a finished train or evaluate run)")


def run_config(run: Path) -> DictConfig:
    """The composed config a run saved (`.hydra/config.yaml`)."""
    path = run / ".hydra" / "config.yaml"
    if not path.is_file():
        raise ParetoError(f"{run}: no .hydra/config.yaml to read the run's weights and heuristics from")
    config = OmegaConf.load(path)
    if not isinstance(config, DictConfig):
        raise ParetoError(f"{path}: expected a mapping")
    return config


def run_overrides(run: Path) -> list[str]:
    """The command line's overrides a run saved (`.hydra/overrides.yaml`); none if it saved none."""
    path = run / ".hydra" / "overrides.yaml"
    return [str(o) for o in OmegaConf.load(path)] if path.is_file() else []


_TRAINING_GROUPS = frozenset({"agent", "warm_start"})


def training_changes(run: Path, config: DictConfig) -> str:
    """`; agent.gamma=0.98` for the overrides of how a train run learned (`.hydra/overrides.yaml`), else ''.

    Points that differ in how they were trained, not only in their weights, say so in their label:
    overrides of `agent` and `warm_start`, whole groups (`agent=sac`) or keys, and of `heuristics`
    when `config` (the run's) warm-starts, since a warm start clones the tuned rule it is given.
    """
    overrides = run_overrides(run)
    groups = _TRAINING_GROUPS | ({"heuristics"} if OmegaConf.select(config, "warm_start.heuristic") else set())
    changed = [o for o in overrides if o.lstrip("+~").split("=", 1)[0].split(".", 1)[0] in groups]
    return f"; {', '.join(changed)}" if changed else ""


def learned_labels(run: Path, config: DictConfig) -> dict[str, str]:
    """Point labels of the learned policies of a run, by their name in its episodes table.

    A train run has one, from its weights and overrides. An evaluate run labels each artifact it
    scored from that artifact's own training config and run folder, so that artifacts of different
    weights in one evaluation keep their own; a relative artifact path is read from where the
    evaluation ran (its `hydra.runtime.cwd`).

    Raises:
        ParetoError: for a listed artifact whose manifest is missing or lacks its config.
    """
    if config.get("policies") is None:
        weights = _mapping(OmegaConf.select(config, "task.kwargs.weights"))
        return {"": f"learned ({describe(weights, 'default weights')}{training_changes(run, config)})"}
    named, labels = [], []
    for spec in config.policies:
        if str(spec) in BASELINES:
            continue
        folder = _launch_dir(run) / str(spec)
        manifest = folder / "manifest.json"
        try:
            content = json.loads(manifest.read_text())
            trained = OmegaConf.create(content["config"])
            algorithm = str(content["algorithm"])
        except (OSError, ValueError, KeyError) as exc:
            raise ParetoError(
                f"{run}: policies lists {spec}, whose {manifest} cannot be read for its training ({exc!r})"
            ) from None
        weights = _mapping(OmegaConf.select(trained, "task.kwargs.weights"))
        changes = training_changes(artifact_run(folder), trained)
        labels.append(f"learned ({describe(weights, 'default weights')}{changes})")
        named.append(artifact_label(Path(str(spec)), algorithm))
    specs = [s for s in config.policies if str(s) not in BASELINES]
    return dict(zip(distinct_labels(named, specs), labels, strict=True))  # the names evaluate gave them


def _from_launch_dir(run: Path, config: DictConfig) -> DictConfig:
    """An evaluate run's config with its artifact paths as seen from where it ran."""
    resolved = config.copy()
    resolved.policies = [p if str(p) in BASELINES else str(_launch_dir(run) / str(p)) for p in config.policies]
    return resolved


def _launch_dir(run: Path) -> Path:
    """The folder a run was launched from (`hydra.runtime.cwd` of `.hydra/hydra.yaml`); '.' if not saved."""
    path = run / ".hydra" / "hydra.yaml"
    cwd = OmegaConf.select(OmegaConf.load(path), "hydra.runtime.cwd") if path.is_file() else None
    return Path(str(cwd)) if cwd else Path()


def describe(values: Mapping[str, object] | None, empty: str) -> str:
    """`a=1, b=2` for a mapping of settings (nested ones flattened with dots), `empty` if there are none."""
    if not values:
        return empty
    flat: list[str] = []
    for key, value in values.items():
        if isinstance(value, Mapping):
            flat.extend(f"{key}.{k}={_value(v)}" for k, v in value.items())
        else:
            flat.append(f"{key}={_value(value)}")
    return ", ".join(flat)


def _value(value: object) -> str:
    """A setting as the config writes it: `0.8`, `null`."""
    if value is None:
        return "null"
    return f"{value:g}" if isinstance(value, float) else str(value)


def load_points(runs: Sequence[Path]) -> list[Point]:
    """Every policy of every run as a point per mode; repeats are kept once.

    A repeat is the same policy with the same results, or a heuristic with the same results under
    another label (a run's tuned rule and the same setting of a held-out grid).

    Raises:
        ParetoError: for a folder that is not a finished run, a table without the needed columns, or
            runs of another task, line, episode length or control period than the first run's (their
            points are not comparable).
    """
    points: list[Point] = []
    seen: set[tuple[str, str, tuple[tuple[int, tuple[float, float, float]], ...]]] = set()
    first: tuple[tuple[str, str], dict[str, object], Path] | None = None
    for run in runs:
        config = run_config(run)
        # an evaluate run: its heuristics' tuned parameters are the first artifact's, then its own
        trained = (
            evaluation_config(_from_launch_dir(run, config), run_overrides(run))
            if config.get("policies") is not None
            else config
        )
        task_line = (str(OmegaConf.select(trained, "task.name")), str(OmegaConf.select(trained, "line.name")))
        episode = episode_setting(trained)
        if first is None:
            first = (task_line, episode, run)
        elif task_line != first[0]:
            raise ParetoError(
                f"{run}: task {task_line[0]} on line {task_line[1]}, but {first[2]} is task {first[0][0]} on line "
                f"{first[0][1]}: points of different tasks or lines are not comparable"
            )
        else:
            for key, value in episode.items():
                if value != first[1][key]:
                    raise ParetoError(
                        f"{run}: {key} {_value(value)}, but {first[2]} has {key} {_value(first[1][key])}: points of "
                        "episodes of different lengths or control periods are not comparable (evaluate "
                        "max_episode_steps=N scores an artifact at another length)"
                    )
        learned_as = learned_labels(run, config)
        tuned: Mapping[str, object] = (
            heuristic_params(trained, config) if trained is not config else _mapping(config.get("heuristics"))
        )
        by_policy = _objectives(episodes_file(run))
        swept = OmegaConf.select(config, "tune.baseline")  # a tune run: every row is a combination of its grid
        run_points: list[tuple[str, Point]] = []
        for (policy, mode), values in by_policy.items():
            name = policy.removesuffix(_HEURISTIC_SUFFIX)
            learned = swept is None and name not in BASELINES
            if swept is not None:
                label = f"{swept} ({policy})"
            elif learned:
                label = learned_as.get(policy) or learned_as.get("") or f"learned ({policy})"
            else:
                params = tuned.get(name)
                label = f"{name} ({describe(params if isinstance(params, Mapping) else None, 'as shipped')})"
            identity = (label if learned else "heuristic", mode, tuple(sorted(values.items())))
            if identity not in seen:
                seen.add(identity)
                run_points.append((policy, Point(label, learned, task_line[0], mode, str(run), values)))
        points += _policies_apart(run_points)
    return _named_apart(points)


def episode_setting(config: DictConfig) -> dict[str, object]:
    """A run's episode length and control period: its config's, else its task's registered ones."""
    _, _, period, steps = TASKS.get(str(OmegaConf.select(config, "task.name")), (None, None, None, None))
    setting: dict[str, object] = {"task.max_episode_steps": steps, "task.kwargs.control_period_s": period}
    for key in setting:
        value = OmegaConf.select(config, key)
        if value is not None:
            setting[key] = value
    return setting


def _objectives(path: Path) -> dict[tuple[str, str], dict[int, tuple[float, float, float]]]:
    """Each (policy, mode)'s objectives per seed from an episodes CSV: parts, energy cost, CO2 in kg.

    A scenario other than `none` is part of the mode (`episode, price_spike`): a point is compared
    only with points of its own scenario. CO2 is the `co2_kg` column where the CSV has it; an older
    CSV's per-part CO2 times the parts is refused for an episode without good parts (it reads 0).
    """
    by_policy: dict[tuple[str, str], dict[int, tuple[float, float, float]]] = {}
    with path.open(newline="") as f:
        for line, row in enumerate(csv.DictReader(f), start=2):
            try:
                parts = float(row["good_parts"])
                if row.get("co2_kg") not in (None, ""):
                    co2 = float(row["co2_kg"])
                elif parts > 0:
                    co2 = float(row["co2_kg_per_part"]) * parts
                else:
                    raise ValueError("no good parts and no co2_kg column: the episode's CO2 is unknown")
                scenario = row.get("scenario") or "none"
                mode = row["mode"] if scenario == "none" else f"{row['mode']}, {scenario}"
                by_policy.setdefault((row["policy"], mode), {})[int(row["seed"])] = (
                    parts,
                    float(row["energy_cost"]),
                    co2,
                )
            except (KeyError, ValueError) as exc:
                raise ParetoError(
                    f"{path}:{line}: needs policy, mode, seed, good_parts, energy_cost and co2_kg or "
                    f"co2_kg_per_part ({exc})"
                ) from None
    return by_policy


def _policies_apart(run_points: list[tuple[str, Point]]) -> list[Point]:
    """A run's learned points of different policies that share a label and mode get their policy's name added."""
    policies: dict[tuple[str, str], set[str]] = {}
    for policy, p in run_points:
        if p.learned:
            policies.setdefault((p.label, p.mode), set()).add(policy)
    return [
        replace(p, label=f"{p.label.removesuffix(')')}, {policy})")
        if p.learned and len(policies[(p.label, p.mode)]) > 1
        else p
        for policy, p in run_points
    ]


def _named_apart(points: list[Point]) -> list[Point]:
    """Points of different runs that share a label get their run folder's name added to it.

    Learned points of two runs with the same weights, or a heuristic with the same parameters in two
    runs on other seeds, could not be told apart in the report.
    """
    runs: dict[str, set[str]] = {}
    for p in points:
        runs.setdefault(p.label, set()).add(p.run)
    return [
        replace(p, label=f"{p.label.removesuffix(')')}, run {Path(p.run).name})") if len(runs[p.label]) > 1 else p
        for p in points
    ]


def _mapping(node: object) -> dict[str, object]:
    """A config node as a plain dict (None or empty: {})."""
    if isinstance(node, DictConfig):
        return {str(k): v for k, v in OmegaConf.to_container(node, resolve=True).items()}  # type: ignore[union-attr]
    return {}


def gains(a: Point, b: Point) -> tuple[tuple[tuple[float, float], ...], int]:
    """Per objective, the mean paired gain of `a` over `b` (positive: `a` better) and its 95% half-width.

    Raises:
        ParetoError: when the points share no seed.
    """
    shared = sorted(set(a.values) & set(b.values))
    if not shared:
        raise ParetoError(f"{a.label} and {b.label} ({a.mode}) share no seed")
    out = []
    for k, (_, _, sign) in enumerate(OBJECTIVES):
        diffs = [sign * (a.values[s][k] - b.values[s][k]) for s in shared]
        mean, half = mean_interval(diffs)
        out.append((mean, half if len(shared) > 1 else math.nan))
    return tuple(out), len(shared)


def compare_points(points: Sequence[Point]) -> list[Comparison]:
    """Every learned point against every heuristic point of the same mode that shares its seeds."""
    out = []
    for a in points:
        for b in points:
            if a.learned and not b.learned and a.mode == b.mode and set(a.values) & set(b.values):
                g, n = gains(a, b)
                out.append(Comparison(a, b, g, n))
    return out


def front(points: Sequence[Point]) -> list[Point]:
    """The points no other point of the list dominates on the means, by throughput."""
    means = [np.array([sign * p.interval(k)[0] for k, (_, _, sign) in enumerate(OBJECTIVES)]) for p in points]
    kept = [
        p
        for i, p in enumerate(points)
        if not any(np.all(means[j] >= means[i]) and np.any(means[j] > means[i]) for j in range(len(points)) if j != i)
    ]
    return sorted(kept, key=lambda p: p.interval(0)[0])
