"""Resolve the `line` and `scenario` arguments of the envs into a `Line`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from configs import CONFIG_DIR, config_file, options
from hardware import Lever, Line
from hardware.twin import LineDefinitionError, TwinLine


def shipped_lines() -> tuple[str, ...]:
    """Names of the line definitions under `configs/line/`."""
    return options("line")


def shipped_scenarios() -> tuple[str, ...]:
    """Names of the scenarios under `configs/scenario/`."""
    return options("scenario")


def scenario_events(scenario: str | Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]] | None:
    """Events of a scenario given by shipped name, as a list of event mappings, or None (the line's own)."""
    if scenario is None:
        return None
    if isinstance(scenario, str):
        if scenario not in shipped_scenarios():
            raise ValueError(f"scenario {scenario!r} is unknown; shipped scenarios: {', '.join(shipped_scenarios())}")
        return list(yaml.safe_load(config_file("scenario", scenario).read_text())["events"])
    return [dict(e) for e in scenario]


def resolve_line(
    line: str | Path | Mapping[str, Any] | Line,
    levers: frozenset[Lever],
    control_period_s: float | None,
    scenario: str | Sequence[Mapping[str, Any]] | None,
    seed: int | None = None,
    start: Mapping[str, Any] | None = None,
    start_default: Mapping[str, Any] | None = None,
) -> Line:
    """A `Line` for a task: an object as given, or a twin from a shipped name, a file or a definition.

    A twin built here hands the agent exactly the task's `levers`, ticking every
    `control_period_s` seconds. Its episodes start as the line definition's `start` section says,
    `start_default` filling in what the definition leaves out and `start` replacing it. A given
    `Line` object must already hand the agent exactly those levers (the task checks) and starts as
    it is. A definition is a mapping as in a line file (what the Hydra `line` group composes).
    """
    if not isinstance(line, str | Path | Mapping):
        for name, given in (("scenario", scenario), ("start, warmup_h", start)):
            if given is not None:
                raise ValueError(f"{name}: only applies to a line built from a definition, not to a Line object")
        return line
    overrides: dict[str, Any] = {"control": {"levers": sorted(lv.value for lv in levers)}}
    if start is not None:
        overrides["start"] = dict(start)
    defaults = {"start": dict(start_default)} if start_default is not None else None
    if control_period_s is not None:
        overrides["control"]["control_period_s"] = control_period_s
    events = scenario_events(scenario)
    if events is not None:
        overrides["scenarios"] = events
    try:
        if isinstance(line, Mapping):
            return TwinLine.from_definition(line, seed=seed, defaults=defaults, **overrides)
        path = Path(line)
        if str(line) in shipped_lines():
            path = config_file("line", str(line))
        elif not path.is_file():
            raise ValueError(f"line {str(line)!r}: neither a shipped line ({', '.join(shipped_lines())}) nor a file")
        return TwinLine.from_yaml(path, seed=seed, defaults=defaults, search=[CONFIG_DIR / "line"], **overrides)
    except LineDefinitionError as exc:
        if events is None:
            raise
        raise _blamed_on_scenario(exc, scenario) from None


def _blamed_on_scenario(
    exc: LineDefinitionError, scenario: str | Sequence[Mapping[str, Any]] | None
) -> LineDefinitionError:
    """An error in the events `scenario` gave, named after it rather than the line file they were merged into."""
    field = scenario_field(exc)
    if field is None:
        return exc
    if isinstance(scenario, str):
        return LineDefinitionError(f"scenario {scenario!r} ({config_file('scenario', scenario)}): scenarios{field}")
    return LineDefinitionError(f"scenario{field} (given to the env, over {str(exc).partition(': ')[0]})")


def scenario_field(exc: LineDefinitionError) -> str | None:
    """The field and problem of an error in a scenario event (`[0].kind: must be ...`), None for another field.

    A line's scenario events are checked with its definition, which names them `scenarios[i]`.
    """
    rest = str(exc).partition(": ")[2]
    return rest.removeprefix("scenarios") if rest.startswith("scenarios[") else None
