"""The trade-off module: points from run folders, paired dominance, the front and the written report."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from experiments import pareto, pareto_points
from experiments.pareto_points import ParetoError, Point

SEEDS = (20000, 20001, 20002, 20003)


def _run(
    folder: Path, rows: list[tuple[str, str, int, float, float, float]], weights: dict, heuristics: dict | None
) -> Path:
    """A finished train run: its config and `final/episodes.csv` rows (policy, mode, seed, parts, energy, CO2/part)."""
    (folder / ".hydra").mkdir(parents=True)
    (folder / "final").mkdir()
    OmegaConf.save(
        {"task": {"kwargs": {"weights": weights}}, "heuristics": heuristics}, folder / ".hydra" / "config.yaml"
    )
    with (folder / "final" / "episodes.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["policy", "scenario", "mode", "seed", "return", "good_parts", "energy_cost", "co2_kg_per_part"]
        )
        for policy, mode, seed, parts, energy, co2 in rows:
            writer.writerow([policy, "none", mode, seed, 0.0, parts, energy, co2])
    return folder


def _rows(
    policy: str, parts: float, energy: float, co2_per_part: float, wobble: float = 1.0
) -> list[tuple[str, str, int, float, float, float]]:
    """Episodes of one policy on `SEEDS`, varied by seed so that intervals are not zero."""
    return [(policy, "episode", s, parts + wobble * i, energy + wobble * i, co2_per_part) for i, s in enumerate(SEEDS)]


def test_points_carry_weights_parameters_and_total_co2(tmp_path: Path) -> None:
    run = _run(
        tmp_path / "a",
        _rows("learned", 840, 90.0, 0.25) + _rows("factory_rules (heuristic)", 830, 100.0, 0.3),
        {"energy_cost": 10.0},
        {"factory_rules": {"speed_ratio": 0.8}},
    )
    learned, rule = pareto_points.load_points([run])
    assert learned.learned
    assert learned.label == "learned (energy_cost=10)"
    assert not rule.learned
    assert rule.label == "factory_rules (speed_ratio=0.8)"
    # CO2 is per part in the table: the point holds the episode's total, kg
    assert rule.values[20000] == (830.0, 100.0, pytest.approx(249.0))
    assert learned.interval(0)[0] == pytest.approx(841.5)


def _artifact(
    run: Path, weights: dict, heuristics: dict | None, overrides: list[str], warm_start: str | None = None
) -> tuple[Path, str]:
    """An artifact folder `<run>/artifact` trained with `weights`, and its name in an evaluate run's table."""
    artifact = run / "artifact"
    artifact.mkdir(parents=True)
    trained = {
        "task": {"name": "Factory", "kwargs": {"weights": weights}},
        "heuristics": heuristics,
        "warm_start": {"heuristic": warm_start},
    }
    (artifact / "manifest.json").write_text(json.dumps({"algorithm": "ARS", "config": trained}))
    (run / ".hydra").mkdir()
    OmegaConf.save(overrides, run / ".hydra" / "overrides.yaml")
    return artifact, f"ARS {run.parent.name}/{run.name}"


def _evaluate_run(folder: Path, rows: list[tuple[str, str, int, float, float, float]], policies: list[str]) -> Path:
    run = _run(folder, rows, {}, None)  # evaluate's own config: the default weights, no heuristics
    config = OmegaConf.load(run / ".hydra" / "config.yaml")
    config.policies = policies
    OmegaConf.save(config, run / ".hydra" / "config.yaml")
    return run


def test_an_evaluate_run_labels_points_by_the_artifacts_weights_and_tuned_heuristics(tmp_path: Path) -> None:
    artifact, name = _artifact(
        tmp_path / "train" / "a", {"energy_cost": 40.0}, {"factory_rules": {"speed_ratio": 0.8}}, []
    )
    run = _evaluate_run(
        tmp_path / "evaluate",
        _rows(name, 840, 90.0, 0.25) + _rows("factory_rules", 830, 100.0, 0.3),
        [str(artifact), "factory_rules"],
    )
    learned, rule = pareto_points.load_points([run])
    assert learned.label == "learned (energy_cost=40)"
    assert rule.label == "factory_rules (speed_ratio=0.8)"


def test_each_artifact_of_an_evaluate_run_is_labelled_by_its_own_training(tmp_path: Path) -> None:
    """Two artifacts in one evaluation were both labelled with the first one's weights and judged as one point."""
    first, first_name = _artifact(tmp_path / "train" / "a", {"energy_cost": 20.0}, None, ["agent.iterations=300"])
    second, second_name = _artifact(
        tmp_path / "train" / "b",
        {"energy_cost": 20.0, "co2": 10.0},
        None,
        ["experiment=factory_ars", "+task.kwargs.weights.co2=10", "heuristics.factory_rules.speed_ratio=0.8"],
        warm_start="factory_rules",
    )
    run = _evaluate_run(
        tmp_path / "evaluate",
        _rows(first_name, 840, 90.0, 0.25) + _rows(second_name, 835, 85.0, 0.22),
        [str(first), str(second)],
    )
    labels = [p.label for p in pareto_points.load_points([run])]
    assert labels == [
        "learned (energy_cost=20; agent.iterations=300)",
        "learned (energy_cost=20, co2=10; heuristics.factory_rules.speed_ratio=0.8)",
    ]


def test_labels_name_whole_group_overrides_and_heuristics_only_under_a_warm_start(tmp_path: Path) -> None:
    run = tmp_path / "train" / "a"
    _artifact(run, {}, None, ["agent=sac", "heuristics={factory_rules: {speed_ratio: 0.8}}", "warm_start.epochs=5"])
    trained = OmegaConf.create({"warm_start": {"heuristic": None}})
    assert pareto_points.training_changes(run, trained) == "; agent=sac, warm_start.epochs=5"
    trained.warm_start.heuristic = "factory_rules"
    assert pareto_points.training_changes(run, trained) == (
        "; agent=sac, heuristics={factory_rules: {speed_ratio: 0.8}}, warm_start.epochs=5"
    )


def test_relative_artifact_paths_are_read_from_where_the_evaluation_ran(tmp_path: Path) -> None:
    artifact, name = _artifact(tmp_path / "train" / "a", {"energy_cost": 40.0}, None, [])
    run = _evaluate_run(tmp_path / "evaluate", _rows(name, 840, 90.0, 0.25), ["train/a/artifact"])
    OmegaConf.save({"hydra": {"runtime": {"cwd": str(tmp_path)}}}, run / ".hydra" / "hydra.yaml")
    (learned,) = pareto_points.load_points([run])
    assert learned.label == "learned (energy_cost=40)"
    (artifact / "manifest.json").unlink()
    with pytest.raises(ParetoError, match="train/a/artifact"):
        pareto_points.load_points([run])


def test_learned_point_dominates_only_when_every_interval_clears_zero(tmp_path: Path) -> None:
    run = _run(
        tmp_path / "a",
        _rows("learned", 840, 90.0, 0.25) + _rows("factory_rules (heuristic)", 830, 100.0, 0.3),
        {},
        None,
    )
    (c,) = pareto_points.compare_points(pareto_points.load_points([run]))
    assert c.seeds == 4
    (parts, parts_half), (energy, _), (co2, _) = c.gains
    assert parts == pytest.approx(10.0)
    assert parts_half == pytest.approx(0.0)
    assert energy == pytest.approx(10.0)
    # 100 heuristic parts more each seed: 0.3 * 831.5 - 0.25 * 841.5 kg saved on average
    assert co2 == pytest.approx(0.3 * 831.5 - 0.25 * 841.5)
    assert c.verdicts() == ("better", "better", "better")
    assert c.dominates
    tie = _run(
        tmp_path / "b",
        [("learned", "episode", s, 830 + (-5 if i % 2 else 5), 90.0 + i, 0.25) for i, s in enumerate(SEEDS)]
        + _rows("factory_rules (heuristic)", 830, 100.0, 0.3, wobble=0.0),
        {},
        None,
    )
    points = pareto_points.load_points([tie])
    (c,) = pareto_points.compare_points(points)
    assert c.verdicts()[0] == "tie"
    assert not c.dominates
    assert c.never_worse  # a tie on parts, better on energy and CO2: Pareto's weaker sense
    text = pareto.report(points, [c])
    assert "does not dominate every heuristic point: better on all three against 0 of 1;" in text
    assert "better on one and worse on none against 1 of 1." in text
    worse = _run(
        tmp_path / "c",
        _rows("learned", 820, 90.0, 0.25) + _rows("factory_rules (heuristic)", 830, 100.0, 0.3),
        {},
        None,
    )
    (c,) = pareto_points.compare_points(pareto_points.load_points([worse]))
    assert c.verdicts() == ("worse", "better", "better")
    assert not c.never_worse


def test_front_drops_dominated_points_and_duplicates_are_kept_once(tmp_path: Path) -> None:
    heuristic = _rows("factory_rules (heuristic)", 830, 100.0, 0.3)
    a = _run(tmp_path / "a", _rows("learned", 840, 90.0, 0.25) + heuristic, {"energy_cost": 1.0}, None)
    b = _run(tmp_path / "b", _rows("learned", 835, 95.0, 0.26) + heuristic, {"energy_cost": 3.0}, None)
    c = _run(tmp_path / "c", _rows("learned", 800, 60.0, 0.2) + heuristic, {"energy_cost": 30.0}, None)
    OmegaConf.save(["experiment=factory", "agent.gamma=0.98", "progress_bar=false"], c / ".hydra" / "overrides.yaml")
    # the same heuristic results under another label (as a held-out grid gives them): still one point
    tuned = {"factory_rules": {"speed_ratio": 0.8}}
    d = _run(tmp_path / "d", _rows("learned", 830, 95.0, 0.26) + heuristic, {"energy_cost": 10.0}, tuned)
    points = pareto_points.load_points([a, b, c, d])
    assert [p.label for p in points] == [
        "learned (energy_cost=1)",
        "factory_rules (as shipped)",
        "learned (energy_cost=3)",
        "learned (energy_cost=30; agent.gamma=0.98)",
        "learned (energy_cost=10)",
    ]
    best = pareto_points.front([p for p in points if p.learned])
    assert [p.label for p in best] == ["learned (energy_cost=30; agent.gamma=0.98)", "learned (energy_cost=1)"]


def test_write_makes_plot_points_and_report(tmp_path: Path) -> None:
    run = _run(
        tmp_path / "a",
        _rows("learned", 840, 90.0, 0.25)
        + _rows("factory_rules (heuristic)", 830, 100.0, 0.3)
        + [
            ("learned", "7-day run", 20000, 5800, 700.0, 0.25),
            ("factory_rules (heuristic)", "7-day run", 20000, 5700, 760.0, 0.3),
        ],
        {},
        None,
    )
    pareto.main(["out=" + str(tmp_path / "out"), str(run)])
    out = tmp_path / "out"
    assert (out / "pareto_episode.png").stat().st_size > 10_000
    assert (out / "pareto_7-day_run.png").is_file()
    text = (out / "pareto.md").read_text()
    # points are tagged L1.. and H1.. in the plots; the table names them
    assert "| L1 | learned (default weights) | 4 | 841.5 ± 2.1 | 91.5 ± 2.1 |" in text
    assert "| H1 | factory_rules (as shipped) | 4 | 831.5 ± 2.1 | 101.5 ± 2.1 |" in text
    assert "| learned (default weights) | factory_rules (as shipped) | 4 | +10.0 ± 0.0 | +10.0 ± 0.0 |" in text
    # a single continuing seed has no interval, so no dominance claim
    assert "| learned (default weights) | factory_rules (as shipped) | 1 | +100.0 | +60.0 |" in text
    assert "| L1 | learned (default weights) | 1 | 5,800.0 | 700.0 |" in text  # one seed: no interval, not ± 0
    with (out / "points.csv").open() as f:
        points = list(csv.DictReader(f))
    assert len(points) == 4
    assert [p["good_parts_ci95"] for p in points if p["mode"] == "7-day run"] == ["nan", "nan"]
    assert float(next(p["good_parts_ci95"] for p in points if p["mode"] == "episode")) == pytest.approx(2.05, abs=0.01)


def test_a_gain_smaller_than_a_tenth_is_shown_to_its_interval_not_rounded_to_zero() -> None:
    """Gains of 0.040 ± 0.0025 kg read `+0.0 ± 0.0` beside "better" and "dominates: yes"."""
    mine = Point(
        "L", True, "Factory", "episode", "r", {0: (101, 50.0, 30.0), 1: (103, 52.0, 31.0), 2: (102, 51.0, 30.5)}
    )
    rule = Point(
        "H",
        False,
        "Factory",
        "episode",
        "r",
        {0: (100, 50.04, 30.03), 1: (102, 52.041, 31.031), 2: (101, 51.039, 30.529)},
    )
    text = pareto.report([mine, rule], pareto_points.compare_points([mine, rule]))
    assert "| L | H | 3 | +1.0 ± 0.0 | +0.0400 ± 0.0025 | +0.0300 ± 0.0025 |" in text


def test_bad_input_names_what_and_where(tmp_path: Path) -> None:
    with pytest.raises(ParetoError, match=r"no \.hydra/config\.yaml"):
        pareto_points.load_points([tmp_path])
    (tmp_path / ".hydra").mkdir()
    OmegaConf.save({"task": {"kwargs": {}}}, tmp_path / ".hydra" / "config.yaml")
    with pytest.raises(ParetoError, match="not a finished train or evaluate run"):
        pareto_points.load_points([tmp_path])
    (tmp_path / "episodes.csv").write_text("policy,mode,seed,good_parts\nx,episode,1,3\n")
    with pytest.raises(ParetoError, match=r"episodes.csv:2: needs .*energy_cost"):
        pareto_points.load_points([tmp_path])
    with pytest.raises(ParetoError, match="name out=FOLDER"):
        pareto.arguments([str(tmp_path)])
    with pytest.raises(ParetoError, match="'colour=red': not an argument"):
        pareto.arguments(["out=x", "colour=red"])
    with pytest.raises(SystemExit):
        pareto.main(["out=" + str(tmp_path / "o")])
    # a folder that holds files (another report's, or a run's) would get this report mixed into it
    with pytest.raises(ParetoError, match=rf"^out: {re.escape(str(tmp_path))} already holds files \(\.hydra, "):
        pareto.arguments([f"out={tmp_path}", str(tmp_path)])
    lone = Point("learned", True, "Factory", "episode", "r", {1: (1.0, 1.0, 1.0)})
    other = Point("rule", False, "Factory", "episode", "r", {2: (1.0, 1.0, 1.0)})
    with pytest.raises(ParetoError, match="share no seed"):
        pareto_points.gains(lone, other)


def test_learned_points_of_two_runs_with_the_same_label_are_named_by_their_runs(tmp_path: Path) -> None:
    runs = [
        _run(tmp_path / name, _rows("learned", parts, 90.0, 0.25), {"energy_cost": 20.0}, None)
        for name, parts in (("first", 840), ("second", 820))
    ]
    labels = [p.label for p in pareto_points.load_points(runs)]
    assert labels == ["learned (energy_cost=20, run first)", "learned (energy_cost=20, run second)"]
    (alone,) = pareto_points.load_points(runs[:1])
    assert alone.label == "learned (energy_cost=20)"


def test_runs_of_another_task_or_line_are_refused(tmp_path: Path) -> None:
    runs = [
        _run(tmp_path / name, _rows("learned", 840, 90.0, 0.25), {"energy_cost": 20.0}, None)
        for name in ("factory", "maintenance")
    ]
    for run, task in zip(runs, ("Factory", "Maintenance"), strict=True):
        config = OmegaConf.load(run / ".hydra" / "config.yaml")
        config.task.name, config.line = task, {"name": "flow5"}
        OmegaConf.save(config, run / ".hydra" / "config.yaml")
    with pytest.raises(
        ParetoError, match=r"maintenance: task Maintenance on line flow5, but .*factory is task Factory"
    ):
        pareto_points.load_points(runs)
    assert len(pareto_points.load_points(runs[:1])) == 1


def test_points_are_per_scenario_and_total_co2_is_read_where_the_csv_has_it(tmp_path: Path) -> None:
    run = tmp_path / "r"
    (run / ".hydra").mkdir(parents=True)
    OmegaConf.save({"task": {"kwargs": {"weights": {}}}, "heuristics": None}, run / ".hydra" / "config.yaml")
    header = ["policy", "scenario", "mode", "seed", "good_parts", "energy_cost", "co2_kg_per_part", "co2_kg"]
    lines = [header]
    for seed in SEEDS:
        lines += [
            ["learned", "none", "episode", seed, 0, 500.0, 0.0, 40.0],  # an idle day: no parts, yet CO2
            ["factory_rules (heuristic)", "none", "episode", seed, 100, 100.0, 0.1, 10.0],
            ["factory_rules (heuristic)", "price_spike", "episode", seed, 50, 300.0, 0.3, 15.0],
        ]
    with (run / "episodes.csv").open("w", newline="") as f:
        csv.writer(f).writerows(lines)
    points = pareto_points.load_points([run])
    assert sorted((p.label, p.mode) for p in points) == [
        ("factory_rules (as shipped)", "episode"),
        ("factory_rules (as shipped)", "episode, price_spike"),
        ("learned (default weights)", "episode"),
    ]
    learned = next(p for p in points if p.learned)
    assert learned.values[SEEDS[0]] == (0.0, 500.0, 40.0)
    (comparison,) = pareto_points.compare_points(points)  # only the heuristic point of its own scenario
    assert comparison.heuristic.mode == "episode"
    assert comparison.verdicts() == ("worse", "worse", "worse")


def test_a_heuristic_point_sharing_no_seed_is_not_counted_as_dominated() -> None:
    def point(label: str, learned: bool, seeds: tuple[int, ...], base: tuple[float, float, float]) -> Point:
        return Point(
            label,
            learned,
            "Factory",
            "episode",
            "r",
            {s: (base[0] + i, base[1] + i, base[2]) for i, s in enumerate(seeds)},
        )

    mine = point("L", True, (1, 2, 3), (110.0, 90.0, 9.0))
    near = point("H", False, (1, 2, 3), (100.0, 100.0, 10.0))
    apart = point("H3", False, (10, 11), (500.0, 1.0, 0.1))
    text = pareto._verdicts(pareto_points.compare_points([mine, near, apart]), heuristic_points=2)
    assert text == (
        "- L does not dominate every heuristic point: better on all three against 1 of 2; better on one and worse "
        "on none against 1 of 2 (1 share no seed with it, not compared)."
    )


def test_two_learned_policies_of_one_run_with_one_label_are_two_points(tmp_path: Path) -> None:
    run = _run(
        tmp_path / "a",
        _rows("PPO x/run0", 840, 90.0, 0.25)
        + _rows("PPO y/run0", 800, 95.0, 0.25)
        + _rows("nominal_speed", 830, 100.0, 0.3),
        {"energy_cost": 10.0},
        None,
    )
    labels = sorted(p.label for p in pareto_points.load_points([run]) if p.learned)
    assert labels == ["learned (energy_cost=10, PPO x/run0)", "learned (energy_cost=10, PPO y/run0)"]


def test_artifacts_evaluate_told_apart_by_their_folders_keep_their_own_weights(tmp_path: Path) -> None:
    first, name = _artifact(tmp_path / "rootA" / "Factory" / "run0", {"energy_cost": 10.0}, None, [])
    second, same = _artifact(tmp_path / "rootB" / "Factory" / "run0", {"energy_cost": 40.0}, None, [])
    assert name == same  # evaluate names them apart: `<label> (<folder as named>)`
    run = _evaluate_run(
        tmp_path / "evaluate",
        _rows(f"{name} ({first})", 840, 90.0, 0.25) + _rows(f"{name} ({second})", 835, 85.0, 0.22),
        [str(first), str(second)],
    )
    assert sorted(p.label for p in pareto_points.load_points([run])) == [
        "learned (energy_cost=10)",
        "learned (energy_cost=40)",
    ]


def test_runs_of_another_episode_length_or_control_period_are_refused(tmp_path: Path) -> None:
    """A 12-step train run's final table and a 60-step evaluation were paired as one mode and judged on dominance."""
    runs = [_run(tmp_path / name, _rows("learned", 840, 90.0, 0.25), {}, None) for name in ("short", "day")]
    for key, values in (("max_episode_steps", (12, 60)), ("kwargs.control_period_s", (120.0, 60.0))):
        for run, value in zip(runs, values, strict=True):
            config = OmegaConf.load(run / ".hydra" / "config.yaml")
            config.task.name = "Factory"
            OmegaConf.update(config, f"task.{key}", value)
            OmegaConf.save(config, run / ".hydra" / "config.yaml")
        with pytest.raises(
            ParetoError, match=rf"day: task\.{key} {values[1]:g}, but .*short has task\.{key} {values[0]:g}"
        ):
            pareto_points.load_points(runs)
        config = OmegaConf.load(runs[1] / ".hydra" / "config.yaml")
        OmegaConf.update(config, f"task.{key}", values[0])
        OmegaConf.save(config, runs[1] / ".hydra" / "config.yaml")
    # unset is the task's registered setting: Factory's 1440 steps of 60 s
    for run, steps in zip(runs, (1440, None), strict=True):
        config = OmegaConf.load(run / ".hydra" / "config.yaml")
        config.task.max_episode_steps, config.task.kwargs.control_period_s = steps, None
        OmegaConf.save(config, run / ".hydra" / "config.yaml")
    assert len(pareto_points.load_points(runs)) == 1  # accepted: the same episodes, kept once


def test_heuristic_points_of_two_runs_with_the_same_label_are_named_by_their_runs(tmp_path: Path) -> None:
    runs = [
        _run(tmp_path / name, _rows("factory_rules (heuristic)", parts, 90.0, 0.25), {}, None)
        for name, parts in (("first", 840), ("second", 820))
    ]
    labels = [p.label for p in pareto_points.load_points(runs)]
    assert labels == ["factory_rules (as shipped, run first)", "factory_rules (as shipped, run second)"]


def test_plots_are_titled_by_the_runs_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every plot read `Factory trade-offs`, whatever task its runs trained on."""
    run = _run(tmp_path / "a", _rows("learned", 840, 90.0, 0.25) + _rows("tou_energy", 830, 100.0, 0.3), {}, None)
    config = OmegaConf.load(run / ".hydra" / "config.yaml")
    config.task.name = "Energy"
    OmegaConf.save(config, run / ".hydra" / "config.yaml")
    titles: list[str] = []
    monkeypatch.setattr(pareto.plt, "close", lambda fig: titles.append(fig._suptitle.get_text()))
    pareto.write(pareto_points.load_points([run]), tmp_path / "out")
    assert titles == ["Energy trade-offs, episode (mean, 95% interval over seeds)"]
