"""The line layer's config groups, `hardware` and `guard`, built without the training stack.

`experiments.build` (training, evaluation) and `experiments.deploy` (an edge box without torch)
build them here alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from experiments.errors import ConfigError
from hardware import Lever, Line
from hardware.guard import GuardConfig
from hardware.guard_rules import unmatched_entries
from hardware.modbus.maps import setpoint_spec


def line_definition(line: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    """A line definition as plain data, without the Hydra keys that would build a twin from it."""
    data = OmegaConf.to_container(line, resolve=True) if isinstance(line, DictConfig) else dict(line)
    return {str(k): v for k, v in data.items() if not str(k).startswith("_")}  # type: ignore[union-attr]


def hardware_line(
    hardware: DictConfig,
    definition: Mapping[str, Any],
    levers: Iterable[Lever],
    control_period_s: float | None,
    **extra: Any,
) -> Line:
    """The line the `hardware` group configures, handing it `levers` at `control_period_s`.

    `extra` goes to the line's factory (e.g. `read_only=True` for shadow mode).

    Raises:
        ConfigError: the factory refuses the values, naming the group option (`hardware=modbus: ...`).
    """
    name = hardware.get("name", "hardware")
    params = OmegaConf.create({k: v for k, v in hardware.items() if k != "name"})  # name labels the option
    try:
        return instantiate(
            params,
            definition=dict(definition),
            levers=frozenset(levers),
            control_period_s=control_period_s,
            _convert_="all",
            **extra,
        )
    except (TypeError, ValueError, InstantiationException) as exc:
        inner = exc.__cause__ if isinstance(exc, InstantiationException) and exc.__cause__ else exc
        raise ConfigError(f"hardware={name}: {inner}") from exc


def guard_config(group: DictConfig | None, definition: Mapping[str, Any] | None = None) -> GuardConfig | None:
    """The `guard` group's `GuardConfig`; None for `guard=none` (or no group).

    With the line's `definition`, every limit, rate, deadband and interlock must name an actuator
    of that line (any of its setpoints, not only the task's levers): a typo is refused rather than
    left guarding nothing.

    Raises:
        ConfigError: a value the guard refuses, an entry that names no actuator of the line, or a
            target that builds something else.
    """
    if group is None or not group.get("_target_"):
        return None
    try:
        config = instantiate(group, _convert_="all")
    except (TypeError, ValueError, InstantiationException) as exc:
        inner = exc.__cause__ if isinstance(exc, InstantiationException) and exc.__cause__ else exc
        raise ConfigError(f"guard: {inner}") from exc
    if not isinstance(config, GuardConfig):
        raise ConfigError(f"guard._target_: {group._target_} builds a {type(config).__name__}, not a GuardConfig")
    if definition is not None:
        spec = setpoint_spec(definition)
        if unmatched := unmatched_entries(config, spec):
            raise ConfigError(
                f"guard: {'; '.join(unmatched)} match nothing on line {spec.name!r} "
                f"(its actuators: {', '.join(a.name for a in spec.actuators)})"
            )
    return config
