"""Heuristic baselines for every task, built by name with their configured parameters: `make_baseline(env, "spt")`.

Each baseline has SB3's `predict`, so `evaluate_policy(make_baseline(env, name), env)` scores a
rule exactly as it scores a trained agent. Its parameters live in its config,
`configs/agent/<name>.yaml`, which says how each value was chosen; a rule never reads them from
the twin, so it acts the same on a real line. The rules live in `agents.dispatching`
(Scheduling), `agents.speed_rules`, `agents.maintenance_rules`, `agents.inventory_rules` and
`agents.factory_rules`; `cpsat`, the job-shop limit line rather than a plant rule, in `agents.cpsat`.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from functools import partial
from typing import Any

import gymnasium as gym
from omegaconf import DictConfig, ListConfig, OmegaConf

from agents.baseline import Baseline
from agents.cpsat import CpSatDispatch
from agents.dispatching import DispatchRule, Rule
from agents.factory_rules import FactoryRules
from agents.inventory_rules import SSReorder
from agents.maintenance_rules import ConditionBasedMaintenance, FixedIntervalMaintenance, ReactiveMaintenance
from agents.speed_rules import FixedSpeed, NominalSpeed, TimeOfUseEnergy
from configs import config_file

BASELINES: dict[str, Callable[..., Baseline]] = {
    **{rule.value: partial(DispatchRule, rule=rule) for rule in Rule},
    "cpsat": CpSatDispatch,
    "nominal_speed": NominalSpeed,
    "fixed_speed": FixedSpeed,
    "tou_energy": TimeOfUseEnergy,
    "reactive": ReactiveMaintenance,
    "fixed_interval": FixedIntervalMaintenance,
    "condition_based": ConditionBasedMaintenance,
    "ss_reorder": SSReorder,
    "factory_rules": FactoryRules,
}
# Keys of an agent config that say what to build rather than how it behaves.
_NOT_PARAMS = frozenset({"name"})


def parameter_names(name: str) -> tuple[str, ...]:
    """The tunable parameters of baseline `name`: its factory's arguments after `env`."""
    factory = BASELINES[name]
    bound = factory.keywords if isinstance(factory, partial) else {}
    return tuple(p for p in inspect.signature(factory).parameters if p != "env" and p not in bound)


def configured_params(name: str) -> dict[str, Any]:
    """The parameters of baseline `name` from its shipped config `configs/agent/<name>.yaml`."""
    path = config_file("agent", name)
    if not path.is_file():
        raise ValueError(f"baseline {name!r} has no config: {path} is missing")
    config = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    if not isinstance(config, dict):
        raise ValueError(f"{path}: expected a mapping of parameters, got {type(config).__name__}")
    return {str(k): v for k, v in config.items() if not str(k).startswith("_") and k not in _NOT_PARAMS}


def make_baseline(env: gym.Env[Any, Any], name: str, **overrides: Any) -> Baseline:
    """Build baseline `name` (a key of `BASELINES`) for `env`.

    Args:
        env: the env the baseline acts on (its task must be one the baseline drives).
        name: the baseline, also the name of its config `configs/agent/<name>.yaml`.
        **overrides: parameters that replace the configured ones (a Hydra `agent` config's keys).

    Raises:
        ValueError: for an unknown baseline, a parameter it does not take or one left without a value.
        TypeError: when `env`'s task is not one the baseline drives.
    """
    if name not in BASELINES:
        raise ValueError(f"baseline {name!r} is unknown; choose one of {', '.join(BASELINES)}")
    known = parameter_names(name)
    params = configured_params(name) | {
        k: OmegaConf.to_container(v, resolve=True) if isinstance(v, DictConfig | ListConfig) else v
        for k, v in overrides.items()
    }
    for key in params:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"it takes {', '.join(known) or 'none'}"
            raise ValueError(f"baseline {name}: unknown parameter {key!r}; {hint}")
    missing = [p for p in known if p not in params and _required(name, p)]
    if missing:
        raise ValueError(f"baseline {name}: no value for {', '.join(missing)}; set it in {config_file('agent', name)}")
    return BASELINES[name](env, **params)


def _required(name: str, parameter: str) -> bool:
    return inspect.signature(BASELINES[name]).parameters[parameter].default is inspect.Parameter.empty


__all__ = [
    "BASELINES",
    "Baseline",
    "ConditionBasedMaintenance",
    "CpSatDispatch",
    "DispatchRule",
    "FactoryRules",
    "FixedIntervalMaintenance",
    "FixedSpeed",
    "NominalSpeed",
    "ReactiveMaintenance",
    "Rule",
    "SSReorder",
    "TimeOfUseEnergy",
    "make_baseline",
]
