"""Reward weights: frozen dataclasses built from user mappings, every weight checked."""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping
from typing import Any, TypeVar

W = TypeVar("W")

# Replacement value of machine health, per unit (1 = a new machine's life between renewals), in the
# tariff's currency: what planned maintenance costs per unit of health it restores on the default
# line (a cnc's preventive maintenance, 200 plus 20 minutes of planned downtime at 150 an hour, done
# at half wear: 250 for 0.5). Tasks with a speed or maintenance lever charge it on the health a step
# uses net of what repairs and maintenance restore, so an episode pays for the wear it leaves behind
# and cannot borrow from the machines' future.
WEAR_COST_PER_HEALTH = 500.0
# Default prices shared by the tasks' rewards, in the tariff's currency, so every task that counts a
# quantity prices it alike. Downtime is the exception: Maintenance prices planned and unplanned hours
# apart (its lever trades one for the other), the others at one rate.
PART_VALUE = 12.0  # per good part
SCRAP_COST = 8.0  # per scrapped part, on top of its lost value
DOWNTIME_COST_PER_H = 300.0  # per station-hour down
TARDINESS_COST_PER_H = 20.0  # per hour of lateness, summed over orders
HOLDING_COST_PER_UNIT_H = 0.002  # per unit-hour of raw stock held
ORDER_COST = 40.0  # per order placed
STOCKOUT_COST_PER_H = 400.0  # per station-hour held up by an empty store


def finite_number(value: Any) -> bool:
    """Whether `value` is a finite real number, numpy's included (`np.int64(2)`), and not a boolean."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def make_weights(cls: type[W], given: Mapping[str, Any] | None) -> W:
    """Build weights `cls` from `given` (None: defaults); unknown names and negative values are errors."""
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    if given is not None and not isinstance(given, Mapping):
        raise ValueError(f"weights: expected a mapping of {cls.__name__} fields to prices, got {given!r}")
    given = dict(given or {})
    unknown = sorted(set(given) - known)
    if unknown:
        raise ValueError(
            f"weights: unknown weight {unknown[0]!r} for {cls.__name__} (known: {', '.join(sorted(known))})"
        )
    for name, value in given.items():
        if not finite_number(value) or value < 0:
            raise ValueError(f"weights.{name} must be a finite number >= 0, got {value!r}")
    return cls(**{k: float(v) for k, v in given.items()})
