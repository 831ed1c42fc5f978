"""Resolve the `line` and `scenario` arguments of the envs into a `Line`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from hardware import Lever, Line
from hardware.twin import TwinLine
from hardware.twin.loader import merge

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def shipped_lines() -> tuple[str, ...]:
    """Names of the line definitions under `configs/line/`."""
    return tuple(sorted(p.stem for p in (CONFIGS / "line").glob("*.yaml")))


def shipped_scenarios() -> tuple[str, ...]:
    """Names of the scenarios under `configs/scenario/`."""
    return tuple(sorted(p.stem for p in (CONFIGS / "scenario").glob("*.yaml")))


def scenario_events(scenario: str | Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]] | None:
    """Events of a scenario given by shipped name, as a list of event mappings, or None (the line's own)."""
    if scenario is None:
        return None
    if isinstance(scenario, str):
        if scenario not in shipped_scenarios():
            raise ValueError(f"scenario {scenario!r} is unknown; shipped scenarios: {', '.join(shipped_scenarios())}")
        return list(yaml.safe_load((CONFIGS / "scenario" / f"{scenario}.yaml").read_text())["events"])
    return [dict(e) for e in scenario]


def resolve_line(
    line: str | Path | Mapping[str, Any] | Line,
    levers: frozenset[Lever],
    control_period_s: float | None,
    scenario: str | Sequence[Mapping[str, Any]] | None,
    seed: int | None = None,
) -> Line:
    """A `Line` for a task: an object as given, or a twin from a shipped name, a file or a definition.

    A twin built here hands the agent exactly the task's `levers`, ticking every
    `control_period_s` seconds; a given `Line` object must already own those levers. A
    definition is a mapping as in a line file (what the Hydra `line` group composes).
    """
    if not isinstance(line, str | Path | Mapping):
        if scenario is not None:
            raise ValueError("scenario: only applies to a line built from a definition, not to a Line object")
        return line
    overrides: dict[str, Any] = {"control": {"levers": sorted(lv.value for lv in levers)}}
    if control_period_s is not None:
        overrides["control"]["control_period_s"] = control_period_s
    events = scenario_events(scenario)
    if events is not None:
        overrides["scenarios"] = events
    if isinstance(line, Mapping):
        return TwinLine.from_config(seed=seed, **merge(line, overrides))
    path = Path(line)
    if str(line) in shipped_lines():
        path = CONFIGS / "line" / f"{line}.yaml"
    elif not path.is_file():
        raise ValueError(f"line {str(line)!r}: neither a shipped line ({', '.join(shipped_lines())}) nor a file")
    return TwinLine.from_yaml(path, seed=seed, **overrides)
