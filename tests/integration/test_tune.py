"""Tuned heuristics for real: a Hydra sweep, its winner in an experiment's `heuristics`, a trainer of its own."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from agents.baselines import make_baseline
from agents.rollout import run_episode
from experiments.build import ConfigError, heuristics, make_env
from experiments.evaluate import heuristic_params
from experiments.report import EPISODE, Row, continuing_mode, settled_mode
from experiments.train import train
from experiments.tune import grid_points, point_label, ranking, tune
from tests.presets import CONFIGS

SHORT = ["task.max_episode_steps=120", "final.episodes=2", "final.continuing_seeds=0", "progress_bar=false"]


def compose_config(name: str, overrides: list[str]) -> DictConfig:
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        return compose(name, overrides=overrides)


def test_the_grid_is_every_combination_labelled_by_its_values():
    points = grid_points({"a": [1, 2], "b": [{"x": 3}, {"x": 4}]})
    assert points == [
        {"a": 1, "b": {"x": 3}},
        {"a": 1, "b": {"x": 4}},
        {"a": 2, "b": {"x": 3}},
        {"a": 2, "b": {"x": 4}},
    ]
    assert point_label(points[1]) == "a=1, b={x: 4}"
    assert grid_points({}) == [{}]


def test_a_sweep_ranks_by_mean_return_on_tuning_seeds_and_writes_the_winner_as_heuristics(tmp_path):
    cfg = compose_config(
        "tune",
        [
            "task=maintenance",
            "tune.baseline=fixed_interval",
            "tune.grid={interval_h:[2.0,100.0]}",  # maintaining every 2 h costs far more than it saves
            "tune.episodes=2",
            "tune.continuing_seeds=1",
            "tune.continuing_days=0.25",
            *SHORT,
        ],
    )
    best = tune(cfg, tmp_path, "python -m experiments.tune ...")
    assert best == {"interval_h": 100.0}
    with (tmp_path / "episodes.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {r["seed"] for r in rows} == {"10000", "10001"}  # the evaluation seeds, never the held-out 20000+
    means = {
        label: np.mean([float(r["return"]) for r in rows if r["policy"] == label and r["mode"] == EPISODE])
        for label in ("interval_h=2.0", "interval_h=100.0")
    }
    assert means["interval_h=100.0"] > means["interval_h=2.0"]
    ranking = (tmp_path / "ranking.md").read_text()
    assert ranking.index("interval_h=100.0") < ranking.index("interval_h=2.0")
    assert "0.25-day run" in ranking
    assert yaml.safe_load((tmp_path / "best.yaml").read_text()) == {
        "heuristics": {"fixed_interval": {"interval_h": 100.0}}
    }


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["tune.baseline=fixd_interval", "tune.grid={interval_h:[1]}"], "tune.baseline: 'fixd_interval'"),
        (["tune.baseline=fixed_interval", "tune.grid={interval:[1]}"], "tune.grid.interval: fixed_interval has no"),
        (["tune.baseline=fixed_interval", "tune.grid={interval_h:3}"], "tune.grid.interval_h: expected a non-empty"),
        (["tune.baseline=fixed_interval"], "tune.grid: expected a mapping"),
        (["tune.baseline=fixed_interval", "tune.grid={interval_h:[1]}", "tune.rank_by=week"], "tune.rank_by"),
        (["tune.grid={interval_h:[1]}", "tune.episodes=0"], "tune.episodes: must be a positive whole number, got 0"),
        (
            ["tune.grid={interval_h:[1]}", "tune.episodes=true"],
            "tune.episodes: must be a positive whole number, got True",
        ),
        (
            ["tune.grid={interval_h:[1]}", "tune.continuing_seeds=-1"],
            "tune.continuing_seeds: must be a whole number >= 0",
        ),
        (["tune.grid={interval_h:[1]}", "tune.continuing_seeds=true"], "tune.continuing_seeds: .* got True"),
        (["tune.grid={interval_h:[50,100,50]}"], "tune.grid.interval_h: 50 is named twice"),
        (
            ["tune.grid={interval_h:[1]}", "tune.rank_by=settled"],
            "tune.rank_by: settled needs tune.settle_episodes > 0",
        ),
        (["tune.grid={interval_h:[1]}", "tune.seed=-3"], "tune.seed: must be a whole number >= 0, got -3"),
        (["tune.grid={interval_h:[1]}", "tune.seed=1.5"], "tune.seed: must be a whole number >= 0, got 1.5"),
        (["tune.grid={interval_h:[1]}", "tune.continuing_days=0"], "tune.continuing_days: must be a positive number"),
        (["tune.grid={interval_h:[-1,0]}"], r"tune.grid \(interval_h=-1\): fixed_interval refuses every combination"),
        (["tune.grid={interval_h:[-5,.nan,85]}"], r"tune.grid \(interval_h=-5\): .* must be a finite number > 0"),
    ],
)
def test_a_bad_sweep_is_a_config_error_naming_its_key(tmp_path, overrides, message):
    cfg = compose_config("tune", ["task=maintenance", "tune.baseline=fixed_interval", *overrides])
    with pytest.raises(ConfigError, match=message):
        tune(cfg, tmp_path)
    assert not (tmp_path / "best.yaml").exists()


def test_a_task_without_a_clock_cannot_be_ranked_by_a_continuing_run(tmp_path):
    """Scheduling has no continuing run: every combination scored nothing and the first in the grid won."""
    grid = "tune.grid={time_limit_s:[0.2,0.1]}"
    cfg = compose_config("tune", ["experiment=scheduling", "tune.baseline=cpsat", grid, "tune.rank_by=continuing"])
    with pytest.raises(ConfigError, match=r"tune\.rank_by: continuing: task Scheduling runs a fixed job set, not a"):
        tune(cfg, tmp_path)
    assert not (tmp_path / "best.yaml").exists()


def test_tuning_seeds_shared_with_the_final_tables_held_out_seeds_are_named_in_the_ranking(tmp_path, caplog):
    cfg = compose_config(
        "tune",
        [
            "task=maintenance",
            "tune.baseline=fixed_interval",
            "tune.grid={interval_h:[100.0]}",
            "tune.episodes=3",
            "tune.seed=19998",
            "tune.continuing_seeds=0",
            *SHORT,
        ],
    )
    tune(cfg, tmp_path)
    shared = "seed 20000 held out for the final table too (final.seed 20000, final.episodes 2)"
    assert shared in (tmp_path / "ranking.md").read_text()
    assert shared in (tmp_path / "best.yaml").read_text()
    assert shared in caplog.text
    cfg.tune.seed, cfg.final.episodes = 19996, 5
    tune(cfg, tmp_path / "apart")
    assert "held out" not in (tmp_path / "apart" / "ranking.md").read_text()
    cfg.tune.seed = 19999
    tune(cfg, tmp_path / "two")
    assert "2 seeds, 20000-20001, held out for the final table too" in (tmp_path / "two" / "ranking.md").read_text()


def test_the_final_table_compares_with_every_heuristic_at_its_tuned_parameters(tmp_path):
    tuned = "heuristics={fixed_interval:{interval_h:30.0},condition_based:{}}"
    cfg = compose_config("train", ["task=maintenance", "agent=reactive", tuned, *SHORT])
    train(cfg, tmp_path)
    with (tmp_path / "final" / "episodes.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {r["policy"] for r in rows} == {"reactive", "fixed_interval (heuristic)", "condition_based (heuristic)"}
    table_returns = [float(r["return"]) for r in rows if r["policy"] == "fixed_interval (heuristic)"]
    env = make_env(cfg)
    try:
        tuned_returns = [
            run_episode(env, make_baseline(env, "fixed_interval", interval_h=30.0), s).total_reward
            for s in (20000, 20001)
        ]
        shipped_returns = [
            run_episode(env, make_baseline(env, "fixed_interval"), s).total_reward for s in (20000, 20001)
        ]
    finally:
        env.close()
    assert table_returns == pytest.approx(tuned_returns)
    assert tuned_returns != pytest.approx(shipped_returns)  # the override changed what the rule did
    summary = (tmp_path / "final" / "kpi_table.md").read_text()
    verdicts = [line for line in summary.splitlines() if line.startswith("episode: reactive")]
    assert len(verdicts) == 2
    assert "fixed_interval (heuristic)" in verdicts[0]
    assert "condition_based (heuristic)" in verdicts[1]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("{fixd_interval:{}}", r"heuristics.fixd_interval: not a heuristic \(did you mean fixed_interval\?\)"),
        ("{fixed_interval:{interval:5}}", "heuristics.fixed_interval: .*unknown parameter 'interval'"),
        ("{fixed_interval:5}", "heuristics.fixed_interval: expected a mapping"),
        ("{}", "heuristics: name at least one heuristic"),
    ],
)
def test_a_bad_heuristics_entry_is_a_config_error_naming_it(tmp_path, value, message):
    cfg = compose_config("train", ["task=maintenance", "agent=reactive", f"heuristics={value}", *SHORT])
    with pytest.raises(ConfigError, match=message):
        train(cfg, tmp_path)


def test_without_heuristics_the_task_baseline_as_shipped():
    cfg = compose_config("train", ["task=maintenance"])
    assert heuristics(cfg) == {"condition_based": {}}


def test_evaluate_takes_the_artifacts_tuned_parameters_and_the_command_lines_over_them():
    run_cfg = OmegaConf.create({"heuristics": {"fixed_interval": {"interval_h": 80.0}, "reactive": {}}})
    cfg = OmegaConf.create({"heuristics": {"fixed_interval": {"interval_h": 60.0}, "condition_based": None}})
    assert heuristic_params(run_cfg, cfg) == {
        "fixed_interval": {"interval_h": 60.0},
        "reactive": {},
        "condition_based": {},
    }
    assert heuristic_params(OmegaConf.create({}), OmegaConf.create({"heuristics": {}})) == {}


class CountingTrainer:
    """A trainer of its own: `train` must hand it the whole run and return what `fit` returns."""

    def __init__(self, answer: float) -> None:
        self.answer = answer

    def fit(self, cfg: DictConfig, out_dir: Path) -> float:
        """Leave a mark of the run's task in its folder and answer the configured objective."""
        (out_dir / "fitted.txt").write_text(str(cfg.task.name))
        return self.answer


def test_an_agent_with_fit_is_a_trainer_that_runs_the_experiment(tmp_path):
    cfg = compose_config("train", ["experiment=scheduling", "progress_bar=false"])
    OmegaConf.set_struct(cfg, False)
    cfg.agent = {"_target_": f"{__name__}.CountingTrainer", "answer": -12.5}
    assert train(cfg, tmp_path) == -12.5
    assert (tmp_path / "fitted.txt").read_text() == "Scheduling"


def test_settled_returns_are_a_column_of_the_ranking_and_can_rank_it():
    def rows(label: str, mode: str, returns: list[float]) -> list[Row]:
        return [Row(label, "none", 10000 + i, {"return": r}, mode) for i, r in enumerate(returns)]

    settled = settled_mode(2)
    data = [
        *rows("a", EPISODE, [10.0, 12.0]), *rows("a", settled, [1.0, 3.0]),
        *rows("b", EPISODE, [5.0, 7.0]), *rows("b", settled, [8.0, 8.0]),
    ]  # fmt: skip
    by_episode = ranking(data, ["a", "b"], "episode", 7, settle_episodes=2)
    assert by_episode == [("1", "a", "11.0 ± 12.7", "-", "2.0 ± 12.7"), ("2", "b", "6.0 ± 12.7", "-", "8.0 ± 0.0")]
    one_week = [*rows("a", EPISODE, [10.0, 12.0]), Row("a", "none", 10000, {"return": -99.0}, continuing_mode(7))]
    assert ranking(one_week, ["a"], "episode", 7) == [("1", "a", "11.0 ± 12.7", "-99.0")]  # one run: no interval
    assert [r[1] for r in ranking(data, ["a", "b"], "settled", 7, settle_episodes=2)] == ["b", "a"]
    assert ranking(data, ["a", "b"], "episode", 7)[0] == ("1", "a", "11.0 ± 12.7", "-")  # no settled column


def test_a_combination_whose_return_is_not_a_number_ranks_last():
    returns = {"a": [1.0, 1.0], "b": [float("nan"), 3.0], "c": [5.0, 5.0], "d": [2.0, 2.0]}
    data = [Row(label, "none", s, {"return": v}) for label, values in returns.items() for s, v in enumerate(values)]
    assert [r[1] for r in ranking(data, list(returns), "episode", 7)] == ["c", "d", "a", "b"]


def test_combinations_the_heuristic_refuses_are_listed_under_the_ranking_and_not_run(tmp_path):
    """On the Inventory preset an order is at least 1,250 units: (s, S) = (800, 1600) would act as (350, 1600)."""
    grid = "tune.grid={reorder_point_units:[300,800],order_up_to_units:[1600,2050]}"
    short = ["tune.episodes=2", "tune.continuing_seeds=0", "task.max_episode_steps=24"]
    cfg = compose_config("tune", ["experiment=inventory", "tune.baseline=ss_reorder", grid, *short])
    tune(cfg, tmp_path)
    with (tmp_path / "episodes.csv").open() as f:
        run = {r["policy"] for r in csv.DictReader(f)}
    assert run == {
        "reorder_point_units=300, order_up_to_units=1600",
        "reorder_point_units=300, order_up_to_units=2050",
        "reorder_point_units=800, order_up_to_units=2050",
    }
    ranking_md = (tmp_path / "ranking.md").read_text()
    refused = ranking_md.split("Refused by ss_reorder, not run:")[1]
    assert refused.strip().splitlines() == [
        "- reorder_point_units=800, order_up_to_units=1600: the target (1600 units) less reorder_point_units (800) "
        "is below the task's min_order_units (1250): at s the gap to S is too small to order, so the rule would act "
        "as reorder_point_units=350"
    ]


TINY_TUNE = [
    "experiment=maintenance", "tune.baseline=fixed_interval", "tune.grid={interval_h:[50,100]}", "tune.episodes=2",
    "tune.continuing_seeds=0", "task.max_episode_steps=24",
]  # fmt: skip


def test_a_sweep_job_records_the_command_that_reruns_it_alone(tmp_path):
    """The sweep's command line (`tune.seed=10000,10002`) was recorded, which reruns every job."""
    sweep = tmp_path / "sweep"
    tune_cli = [sys.executable, "-m", "experiments.tune", "-m"]
    done = subprocess.run(
        [*tune_cli, *TINY_TUNE, "tune.seed=10000,10002", f"hydra.sweep.dir={sweep}"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    first_line = (sweep / "1" / "best.yaml").read_text().splitlines()[0]
    assert first_line == (
        "# python -m experiments.tune experiment=maintenance tune.baseline=fixed_interval "
        "'tune.grid={interval_h:[50,100]}' tune.episodes=2 tune.continuing_seeds=0 task.max_episode_steps=24 "
        "tune.seed=10002"
    )


def test_an_optimising_sweeper_over_tune_is_refused_before_any_job(tmp_path):
    """experiments.tune returns no objective: every Optuna trial ran, then a 40-line traceback."""
    sweep = tmp_path / "sweep"
    optuna = ["hydra/sweeper=optuna", "hydra.sweeper.direction=maximize", "hydra.sweeper.n_trials=2"]
    done = subprocess.run(
        [sys.executable, "-m", "experiments.tune", "-m", *TINY_TUNE, *optuna, "tune.seed=choice(10000,10002)",
         f"hydra.sweep.dir={sweep}"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.strip().startswith("config error: hydra/sweeper: experiments.tune ranks its grid itself")
    assert not sweep.exists()
