"""`KpiLogger`: guard counts are means over every guarded episode of a logging interval."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
from stable_baselines3.common.logger import Logger

from agents.callbacks import KpiLogger
from agents.rollout import kpi_mean
from hardware import Kpis


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


def test_an_episode_without_a_good_part_leaves_cost_per_part_out_of_the_intervals_mean():
    logger = Logger(folder=None, output_formats=[])
    callback = KpiLogger()
    callback.model = SimpleNamespace(logger=logger)
    finish(callback, {"kpis": Kpis(energy_cost=0.1)})  # no part: cost per part undefined, not 0
    finish(callback, {"kpis": Kpis(good_parts=4, energy_cost=2.0, energy_cost_per_good_part=0.5)})
    assert logger.name_to_value["kpi/energy_cost_per_part"] == pytest.approx(0.5)
    assert logger.name_to_value["kpi/energy_cost"] == pytest.approx(1.05)
    assert kpi_mean([math.nan, 0.5, 0.25]) == pytest.approx(0.375)
    assert math.isnan(kpi_mean([math.nan]))
