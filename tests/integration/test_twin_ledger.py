"""What the KPIs charge and count, checked against the twin's prices and events.

Repairs and maintenances at their prices, scrap in quality, and the nominal work that OEE's
performance is measured against.
"""

from __future__ import annotations

import numpy as np
import pytest

from hardware import Command
from hardware.twin import TwinLine
from tests.lines import edited

WAVE = {"kind": "breakdown_wave", "start_s": 3600.0, "duration_s": 6 * 3600.0, "factor": 100.0}


def run(line: TwinLine, hours: float, speed: float | None = None, maintain: str | None = None):
    """The frame after `hours` of the line, its stations at `speed` and `maintain` maintained at the start."""
    line.reset()
    if speed is not None:
        line.write(
            Command(setpoints=np.array([speed if a.name.endswith(".speed") else np.nan for a in line.spec.actuators]))
        )
    if maintain is not None:
        line.write(Command(setpoints=np.array([1.0 if a.name == maintain else np.nan for a in line.spec.actuators])))
    frame = line.read()
    while frame.time < hours * 3600.0:
        frame = line.advance(hours * 3600.0 - frame.time)
    return frame


def test_every_failure_is_charged_the_repair_price_and_every_maintenance_the_preventive_one(flow5_definition):
    """One repair price and one maintenance price for every machine, so the totals are counts times prices."""
    definition = edited(flow5_definition, "control.levers", ["maintenance"])
    for machine in definition["machines"]:
        definition = edited(definition, f"machines.{machine}.repair_cost", 1000.0)
        definition = edited(definition, f"machines.{machine}.maintenance_cost", 100.0)
    definition["scenarios"] = [WAVE]
    k = run(TwinLine.from_config(seed=4, **definition), 24.0, maintain="cut.maintain").kpis
    assert k.failures > 0
    assert k.preventive_maintenances == 1
    assert k.repair_cost == pytest.approx(1000.0 * k.failures)  # not the preventive price
    assert k.preventive_cost == pytest.approx(100.0)


def test_every_scrapped_part_is_a_scrapped_operation_and_lowers_quality(flow5_definition):
    frame = run(TwinLine.from_config(seed=3, **flow5_definition), 24.0)
    c, k = frame.counters, frame.kpis
    assert k.scrap_parts > 0
    assert c.scrapped_operations == k.scrap_parts
    assert k.quality == pytest.approx((c.operations - k.scrap_parts) / c.operations, rel=1e-12)
    assert k.quality < 1.0


def test_performance_counts_nominal_work_so_a_faster_line_shows_more_of_it(flow5_definition):
    """Each operation is credited its nominal time whatever the speed: per operation the same at 1.0 and 1.15."""
    definition = edited(flow5_definition, "control.levers", ["speed"])
    nominal = [run(TwinLine.from_config(seed=5, **definition), 24.0, speed) for speed in (1.0, 1.15)]
    per_op = [f.counters.ideal_busy_s / f.counters.operations for f in nominal]
    assert per_op[1] == pytest.approx(per_op[0], rel=0.03)
    busy = [f.kpis.busy_time_s / f.counters.operations for f in nominal]
    assert busy[0] / busy[1] == pytest.approx(1.15, rel=0.05)  # the faster line is busy for less of each
