"""Reward weights: frozen dataclasses built from user mappings, every weight checked."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, TypeVar

W = TypeVar("W")

# Replacement value of machine health, per unit (1 = a new machine's life between renewals), in the
# tariff's currency. Restoring health costs between about 600 per unit (planned maintenance with its
# downtime, done at half wear on the default line's machines) and about 3,600 (a corrective repair
# with its downtime); 1,000 prices wear near the planned end. Every task with a speed or maintenance
# lever charges it, so an episode cannot borrow from the machines' future.
WEAR_COST_PER_HEALTH = 1000.0


def make_weights(cls: type[W], given: Mapping[str, Any] | None) -> W:
    """Build weights `cls` from `given` (None: defaults); unknown names and negative values are errors."""
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    given = dict(given or {})
    unknown = sorted(set(given) - known)
    if unknown:
        raise ValueError(
            f"weights: unknown weight {unknown[0]!r} for {cls.__name__} (known: {', '.join(sorted(known))})"
        )
    for name, value in given.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            raise ValueError(f"weights.{name} must be a finite number >= 0, got {value!r}")
    return cls(**{k: float(v) for k, v in given.items()})
