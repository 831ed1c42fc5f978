"""The KPI table and summary: a mean with its 95% interval, and no interval where one episode was run."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
from scipy import stats

from experiments.report import Row, kpi_table, write_reports

ROWS = [
    Row("learned", "none", 0, {"return": 5.0, "good_parts": 3.0}),
    Row("rule", "none", 0, {"return": 4.0, "good_parts": 2.0}),
    Row("rule", "none", 1, {"return": 6.0, "good_parts": 5.0}),
]


def test_a_row_of_one_episode_shows_its_values_without_an_interval():
    lines = kpi_table(ROWS).splitlines()
    assert lines[2] == "| learned | none | episode | 1 | 5 | 3 |"
    half = stats.t.ppf(0.975, 1) * math.sqrt(2.0) / math.sqrt(2)  # returns 4 and 6: std sqrt(2)
    assert lines[3] == f"| rule | none | episode | 2 | 5 ± {half:.4g} | 3.5 ± {half * 1.5:.4g} |"


def test_the_summary_writes_no_half_width_for_one_episode(tmp_path: Path):
    write_reports(ROWS, tmp_path, "one seed", pairs=[("learned", "rule")])
    summary = {(s["policy"], s["metric"]): s for s in csv.DictReader((tmp_path / "summary.csv").open())}
    assert math.isnan(float(summary[("learned", "return")]["ci95_half_width"]))
    assert float(summary[("rule", "good_parts")]["ci95_half_width"]) == pytest.approx(stats.t.ppf(0.975, 1) * 1.5)
    assert (tmp_path / "return.png").stat().st_size > 0
