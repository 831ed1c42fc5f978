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


def test_a_kpi_undefined_on_some_episodes_is_averaged_over_the_others_and_the_table_says_so(tmp_path: Path):
    """Two of five episodes without a good part: their cost per part was 0 and pulled the mean down."""
    per_part = [0.2, math.nan, 0.1, math.nan, 0.15]
    rows = [Row("rule", "none", s, {"return": 1.0 + s, "energy_cost_per_part": v}) for s, v in enumerate(per_part)]
    rows += [Row("idle", "none", s, {"return": 0.0, "energy_cost_per_part": math.nan}) for s in range(2)]
    lines = kpi_table(rows).splitlines()
    returns = stats.t.ppf(0.975, 4) * math.sqrt(2.5 / 5)  # returns 1..5: variance 2.5
    half = stats.t.ppf(0.975, 2) * 0.05 / math.sqrt(3)  # per part 0.2, 0.1, 0.15: std 0.05
    assert lines[2] == f"| rule | none | episode | 5 | 3 ± {returns:.4g} | 0.15 ± {half:.4g} (3 of 5) |"
    assert lines[3] == "| idle | none | episode | 2 | 0 ± 0 | n/a |"
    write_reports(rows, tmp_path, "undefined")
    summary = {(s["policy"], s["metric"]): s for s in csv.DictReader((tmp_path / "summary.csv").open())}
    assert float(summary[("rule", "energy_cost_per_part")]["mean"]) == pytest.approx(0.15)
    counts = [summary[("rule", metric)]["episodes"] for metric in ("energy_cost_per_part", "return")]
    assert counts == ["3", "5"]  # the episodes each mean is over
    assert math.isnan(float(summary[("idle", "energy_cost_per_part")]["mean"]))
    episodes = list(csv.DictReader((tmp_path / "episodes.csv").open()))
    assert [e["energy_cost_per_part"] for e in episodes[:2]] == ["0.2", "nan"]  # each episode as it was


def test_a_return_that_is_not_a_number_is_not_left_out():
    rows = [Row("p", "none", s, {"return": v}) for s, v in enumerate([1.0, math.nan])]
    assert kpi_table(rows).splitlines()[2] == "| p | none | episode | 2 | nan |"
