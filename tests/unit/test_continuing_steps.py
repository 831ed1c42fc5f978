"""Steps of a continuing run: the days at the control period, not one step more from float rounding."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from experiments.build import continuing_steps


def _env(period: float | None) -> Any:
    return SimpleNamespace(
        unwrapped=SimpleNamespace(line=SimpleNamespace(spec=SimpleNamespace(control_period_s=period)))
    )


@pytest.mark.parametrize(
    ("days", "period", "steps"), [(1.1, 60.0, 1584), (0.55, 120.0, 396), (7, 60.0, 10080), (0.001, 60.0, 2)]
)
def test_whole_steps_are_not_rounded_up_by_float_noise(days, period, steps):
    assert continuing_steps(_env(period), days) == steps


def test_a_task_without_a_clock_has_no_continuing_run():
    assert continuing_steps(_env(None), 7) is None
