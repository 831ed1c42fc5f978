"""`KpiLogger`: guard counts are means over every guarded episode of a logging interval."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from stable_baselines3.common.logger import Logger

from agents.callbacks import KpiLogger


def finish(callback: KpiLogger, info: dict[str, float]) -> None:
    """One env step that ends an episode with `info`."""
    callback.locals = {"dones": [True], "infos": [info]}
    callback._on_step()


def test_a_reason_first_met_late_in_an_interval_counts_zero_for_the_episodes_before_it():
    logger = Logger(folder=None, output_formats=[])
    callback = KpiLogger()
    callback.model = SimpleNamespace(logger=logger)  # the callback logs through its model's logger
    base = {"guard/checks": 10.0, "guard/interventions": 0.0, "guard/blocked": 0.0, "guard/clipped": 0.0}
    for episode in range(4):
        finish(callback, base | ({"guard/deadband:paint.speed": 1.0} if episode == 2 else {}))
    assert logger.name_to_value["guard/deadband/paint.speed"] == pytest.approx(0.25)  # 1 of 4 episodes, not 1 of 2
    assert logger.name_to_value["guard/checks"] == pytest.approx(10.0)
    logger.dump(1)
    finish(callback, base)  # the next interval: the reason is known and counts 0 where absent
    assert logger.name_to_value["guard/deadband/paint.speed"] == 0.0
    assert logger.name_to_count["guard/deadband/paint.speed"] == 1
