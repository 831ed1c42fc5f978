"""Heuristic baselines for every task, built by name: `make_baseline(env, "spt")`.

Each baseline has SB3's `predict`, so `evaluate_policy(make_baseline(env, name), env)` scores a
rule exactly as it scores a trained agent. The rules live in `agents.dispatching` (Scheduling)
and `agents.rules` (the setpoint tasks).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import gymnasium as gym

from agents.dispatching import DispatchRule, Rule
from agents.rules import (
    Baseline,
    ConditionBasedMaintenance,
    FactoryRules,
    FixedIntervalMaintenance,
    NominalSpeed,
    ReactiveMaintenance,
    SSReorder,
    TimeOfUseEnergy,
)

BASELINES: dict[str, Callable[..., Baseline]] = {
    **{rule.value: partial(DispatchRule, rule=rule) for rule in Rule},
    "nominal_speed": NominalSpeed,
    "tou_energy": TimeOfUseEnergy,
    "reactive": ReactiveMaintenance,
    "fixed_interval": FixedIntervalMaintenance,
    "condition_based": ConditionBasedMaintenance,
    "ss_reorder": SSReorder,
    "factory_rules": FactoryRules,
}


def make_baseline(env: gym.Env[Any, Any], name: str, **params: Any) -> Baseline:
    """Build baseline `name` (a key of `BASELINES`) for `env`, with its tunable `params`."""
    if name not in BASELINES:
        raise ValueError(f"baseline {name!r} is unknown; choose one of {', '.join(BASELINES)}")
    return BASELINES[name](env, **params)


__all__ = [
    "BASELINES",
    "Baseline",
    "ConditionBasedMaintenance",
    "DispatchRule",
    "FactoryRules",
    "FixedIntervalMaintenance",
    "NominalSpeed",
    "ReactiveMaintenance",
    "Rule",
    "SSReorder",
    "TimeOfUseEnergy",
    "make_baseline",
]
