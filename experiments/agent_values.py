"""An SB3 algorithm's settings, checked before any work: SB3 reads some of them only when it trains.

A value SB3 takes when the algorithm is built but uses only in `train()` (`gae_lambda: abc`,
`n_epochs: 0`, `gamma: 2`, `batch_size: 1.5`) would stop a run after its first rollout with a
traceback, leaving a half-written run folder; `check_agent_values` makes each one line naming its
key. Each setting is checked against the type of the algorithm's own default for it, and the
settings below against the range their definition allows (a number, where one defaults to None).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from experiments.errors import ConfigError


@dataclass(frozen=True)
class Span:
    """The values a setting may take: from `low` to `high`, each end in or out."""

    low: float
    high: float = math.inf
    low_in: bool = False
    high_in: bool = True

    def holds(self, value: float) -> bool:
        """Whether `value` lies in the span."""
        above = value >= self.low if self.low_in else value > self.low
        below = value <= self.high if self.high_in else value < self.high
        return above and below

    def __str__(self) -> str:
        high = "inf)" if math.isinf(self.high) else f"{self.high:g}{']' if self.high_in else ')'}"
        return f"{'[' if self.low_in else '('}{self.low:g}, {high}"


_FRACTION = Span(0.0, 1.0, low_in=True)
SPANS: dict[str, Span] = {  # by parameter name: what the quantity is defined on (SB3 trains outside some)
    "learning_rate": Span(0.0),
    "gamma": _FRACTION,
    "gae_lambda": _FRACTION,
    "tau": _FRACTION,
    "exploration_fraction": _FRACTION,
    "exploration_initial_eps": _FRACTION,
    "exploration_final_eps": _FRACTION,
    "clip_range": Span(0.0),
    "clip_range_vf": Span(0.0),  # None by default: no clipping of the value
    "target_kl": Span(0.0),  # None by default: no early stop
}
WHOLE: dict[str, int] = {  # by parameter name: the least whole number it may be
    "n_steps": 1,
    "batch_size": 1,
    "n_epochs": 1,
    "buffer_size": 1,
    "learning_starts": 0,
    "target_update_interval": 1,
    "train_freq": 1,
    "gradient_steps": 0,  # or -1: as many as environment steps
}
AUTO: dict[str, str] = {  # by parameter name, where the default is a text: what it takes
    "target_entropy": "a number or 'auto' (minus the action dimension)",
    "ent_coef": "a number, 'auto' or 'auto_<initial value above 0>' (learned, from 1 or from the value given)",
}
_UNITS = ("step", "episode")  # of a `train_freq` given as [count, unit]
SET_BY_RUN: dict[str, str] = {  # SB3 parameters `experiments.build.make_agent` passes itself, over the agent config's
    "env": "the task's env (task=...)",
    "seed": "the run's seed (seed=..., at the top level)",
    "tensorboard_log": "the run folder's tb/",
    "device": "cpu (the platform's torch build)",
    "verbose": "0 (the run logs its own progress)",
}


def check_agent_values(
    agent: Mapping[str, Any],
    accepted: Mapping[str, inspect.Parameter],
    policy_accepted: Mapping[str, inspect.Parameter] | None = None,
) -> None:
    """Refuse a setting of `agent` (the `agent` config, plain data) that the algorithm could not train with.

    `accepted` are the algorithm's parameters (`inspect.signature(cls).parameters`), `policy_accepted`
    its policy class's, against which `policy_kwargs` are checked alike (None: not checked); a name
    they do not take is left to the algorithm, whose refusal `experiments.errors.parameter_error` names.

    Raises:
        ConfigError: a setting the run passes itself (`SET_BY_RUN`: set there, it would be
            dropped without a word), a text or boolean where the default is a number, a fraction
            where it is a whole number, a value outside the setting's span (`SPANS`, `WHOLE`), a
            text SAC cannot read for a setting it may also set itself (`AUTO`), or
            a `train_freq` that is neither a count nor [count, step|episode].
    """
    for name, by in SET_BY_RUN.items():
        if name in agent:
            raise ConfigError(f"agent.{name}: the run sets it, not the agent config: {by}; remove agent.{name}")
    kwargs = agent.get("policy_kwargs")
    if isinstance(kwargs, Mapping) and kwargs.get("net_arch") is not None:  # None: the algorithm's default
        _net_arch("agent.policy_kwargs.net_arch", kwargs["net_arch"])
    if isinstance(kwargs, Mapping) and policy_accepted is not None:
        _check_values("agent.policy_kwargs", kwargs, policy_accepted)
    _check_values("agent", agent, accepted)


def _check_values(prefix: str, values: Mapping[str, Any], accepted: Mapping[str, inspect.Parameter]) -> None:
    """Each of `values` (the config at `prefix`) against its parameter's default's type and its span."""
    for name, value in values.items():
        if name not in accepted or name.startswith("_") or (isinstance(value, Mapping) and "_target_" in value):
            continue  # a `_target_` node is built by `instantiate` (a learning-rate schedule): SB3 checks it
        key, default = f"{prefix}.{name}", accepted[name].default
        if name == "train_freq" and isinstance(value, list | tuple):
            _train_freq(key, value)
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise ConfigError(f"{key}: must be true or false, got {value!r}")
        elif isinstance(value, int | float) and not isinstance(value, bool):
            # an int default of a setting typed float (DQN's max_grad_norm=10) does not make it a count
            whole = isinstance(default, int) and accepted[name].annotation not in (float, "float")
            _number(key, name, value, whole=name in WHOLE or whole)
        elif isinstance(default, int | float) or (name in SPANS and value is not None):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        elif name in AUTO and isinstance(default, str) and not _automatic(name, value):
            raise ConfigError(f"{key}: expected {AUTO[name]}, got {value!r}")
        elif isinstance(default, type) and default is not inspect.Parameter.empty and not isinstance(value, type):
            example = f"{{_target_: hydra.utils.get_class, path: {_path(default)}}}"
            raise ConfigError(f"{key}: expected a class, e.g. {example}, got {value!r}")


def _automatic(name: str, value: Any) -> bool:
    """Whether `value` asks SAC to set the setting `name` itself: 'auto', or for `ent_coef` 'auto_<value>' above 0."""
    if value == "auto":
        return True
    if name != "ent_coef" or not isinstance(value, str) or not value.startswith("auto_"):
        return False
    try:
        return 0 < float(value.removeprefix("auto_")) < math.inf
    except ValueError:
        return False


def _path(cls: type) -> str:
    """`cls`'s import path, as `hydra.utils.get_class` takes it."""
    return f"{cls.__module__}.{cls.__qualname__}"


def _number(key: str, name: str, value: float, whole: bool) -> None:
    if not math.isfinite(value):
        raise ConfigError(f"{key}: must be a finite number, got {value!r}")
    if whole and not isinstance(value, int):  # 5.0 too: SB3 counts with it (range(n_epochs))
        raise ConfigError(f"{key}: expected a whole number, got {value!r}")
    if name == "gradient_steps" and value == -1:  # as many gradient steps as environment steps
        return
    least = WHOLE.get(name)
    if least is not None and value < least:
        kind = "a positive whole number" if least == 1 else f"a whole number >= {least}"
        raise ConfigError(f"{key}: must be {kind}, got {value!r}")
    span = SPANS.get(name)
    if span is not None and not span.holds(value):
        raise ConfigError(f"{key}: must be in {span}, got {value!r}")


def _net_arch(key: str, value: Any) -> None:
    """Layer widths: a list of positive whole numbers, or a mapping of such lists (`pi`, `vf`, `qf`)."""
    lists = value.values() if isinstance(value, Mapping) else [value]
    for widths in lists:
        if not isinstance(widths, list | tuple) or not all(
            isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in widths
        ):
            raise ConfigError(
                f"{key}: expected layer widths, a list of positive whole numbers (or one per network, "
                f"{{pi: [...], vf: [...]}}), got {value!r}"
            )


def _train_freq(key: str, value: list[Any] | tuple[Any, ...]) -> None:
    count = value[0] if len(value) == 2 else None
    if len(value) != 2 or isinstance(count, bool) or not isinstance(count, int) or count < 1 or value[1] not in _UNITS:
        raise ConfigError(f"{key}: expected a positive whole number or [count, step|episode], got {list(value)!r}")
