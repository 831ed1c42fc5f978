"""The Factory preset of issue 10 composes, trains a few hundred steps and compares; its rule's speed and standby."""

from __future__ import annotations

import csv
import json
import re

import gymnasium as gym
import numpy as np
import pytest
from omegaconf import OmegaConf
from scipy import stats

from agents.baselines import make_baseline
from experiments.bench_deploy import untrained_artifact
from experiments.build import ConfigError, heuristics, make_env
from experiments.report import Row
from experiments.robustness import cells, refused_scenarios, robustness, table
from tests.presets import TINY_RUN, compose_train, train_tiny_preset

TINY = [*TINY_RUN, "task.max_episode_steps=30"]


def test_preset_decides_every_two_minutes_over_one_day_against_the_tuned_rule():
    cfg = compose_train(["experiment=factory"])
    assert set(heuristics(cfg)) == {"factory_rules"}
    env = make_env(cfg)
    try:
        period = env.unwrapped.line.spec.control_period_s
        assert period == 120.0
        assert cfg.task.max_episode_steps * period == 86_400.0
        assert cfg.agent.gamma == pytest.approx(0.98)
        assert env.unwrapped.task.reorder == "order_up_to"
    finally:
        env.close()


@pytest.mark.slow
def test_preset_trains_exports_and_compares_with_its_heuristic(tmp_path):
    run = tmp_path / "run"
    rows = train_tiny_preset("factory", run, TINY)
    assert {r["policy"] for r in rows} == {"learned", "factory_rules (heuristic)"}
    assert all(r["seed"] == "20000" for r in rows)
    # the robustness grid on this artifact: its task's heuristic under none and a scenario it never saw
    out = tmp_path / "robustness"
    grid = OmegaConf.create(
        {
            "artifacts": [str(run / "artifact")],
            "scenarios": ["breakdown_wave"],
            "episodes": 2,
            "seed": 20_000,
            "continuing_days": 7,
            "continuing_seeds": 0,
            "out": str(out / "table.md"),
            "plots": str(out),
        }
    )
    robustness(grid)
    text = (out / "table.md").read_text()
    assert "| Factory | run | factory_rules | episode | none | 2 |" in text
    assert "| Factory | run | factory_rules | episode | breakdown_wave | 2 |" in text
    assert (out / "factory.png").is_file()
    with (out / "episodes.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 2 * 2 * 2  # scenarios x policies x seeds


def _rules(**params: object) -> tuple[gym.Env, object]:
    env = gym.make("smartline/Factory-v0", control_period_s=120.0, max_episode_steps=30)
    return env, make_baseline(env, "factory_rules", **params)


def test_rule_runs_every_station_at_its_fixed_speed_and_stands_by_only_when_dear_and_idle():
    env, rule = _rules(speed_ratio=0.8, standby_price_per_kwh=0.0)
    try:
        obs, _ = env.reset(seed=3)
        line = env.unwrapped.line
        saw_standby = saw_run = False
        for _ in range(30):
            action, _ = rule.predict(obs)
            obs, *_ = env.step(action)
            frame = line.read()
            speeds = [frame.values[line.spec.sensor_index(f"{s}.speed_ratio")] for s in line.spec.stations]
            np.testing.assert_allclose(speeds, 0.8, atol=1e-9)
            modes = action[[1, 4, 7, 10, 13]]
            saw_standby |= bool((modes == -0.5).any())
            saw_run |= bool((modes == 0.0).any())
        # price 0 is always dear: a station stands by exactly when its queue is empty
        assert saw_standby
        assert saw_run
    finally:
        env.close()
    with pytest.raises(ValueError, match=r"speed_ratio: 2 is outside every station's speed limits \(the line's "):
        _rules(speed_ratio=2.0)  # every station at its limit: ranked by a sweep as 1.2 under another name
    env, rule = _rules(speed_ratio=1.2)
    try:
        obs, _ = env.reset(seed=3)
        action, _ = rule.predict(obs)
        # the fastest station's limit: each runs at its upper limit (the press's is 1.15), action 1
        np.testing.assert_allclose(action[[0, 3, 6, 9, 12]], 1.0)
        assert (action[[1, 4, 7, 10, 13]] == 0.0).all()  # no standby price: always run
    finally:
        env.close()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"speed_ratio": 0.0}, "speed_ratio must be a finite number > 0"),
        ({"speed_ratio": float("nan")}, "speed_ratio must be a finite number > 0"),
        ({"standby_price_per_kwh": -0.1}, "standby_price_per_kwh must be a finite number >= 0"),
    ],
)
def test_rule_names_a_bad_parameter(params, message):
    env = gym.make("smartline/Factory-v0")
    try:
        with pytest.raises(ValueError, match=message):
            make_baseline(env, "factory_rules", **params)
    finally:
        env.close()


def _command_order(env: gym.Env, action: np.ndarray) -> float:
    """The reorder setpoint the task writes for `action` on the current frame, material units."""
    base = env.unwrapped
    command = base.task.command(action, base.frame)
    return float(command.setpoints[base.line.spec.actuator_index("line.reorder_units")])


def test_order_up_to_orders_the_gap_to_the_target_once_it_reaches_the_minimum():
    env = gym.make("smartline/Factory-v0", reorder="order_up_to", min_order_units=500.0)
    try:
        env.reset(seed=4)
        spec = env.unwrapped.line.spec
        values = env.unwrapped.frame.values
        position = values[spec.sensor_index("line.stock_units")] + values[spec.sensor_index("line.on_order_units")]
        action = np.zeros(16, dtype=np.float32)
        for a in (-1.0, -0.2, 0.0, 0.6, 1.0):
            action[15] = a
            target = (a + 1.0) / 2.0 * 5000.0
            expected = target - position if target - position >= 500.0 else 0.0
            assert _command_order(env, action) == pytest.approx(expected)
        action[15] = 1.0
        assert _command_order(env, action) > 0.0  # a target of the largest order always orders here
        action[15] = 0.0
        assert 2500.0 - position >= 500.0  # so the neutral target orders here
        assert _command_order(env, action) == pytest.approx(2500.0 - position)
        action[15] = np.nan  # invalid: orders nothing, as an invalid quantity does, and is counted as invalid
        assert _command_order(env, action) == 0.0
        assert env.unwrapped.task.invalid_action
    finally:
        env.close()
    quantity = gym.make("smartline/Factory-v0")
    try:
        quantity.reset(seed=4)
        action = np.zeros(16, dtype=np.float32)
        action[15] = 0.3
        assert _command_order(quantity, action) == pytest.approx(1500.0)
    finally:
        quantity.close()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"reorder": "level"}, "reorder must be one of quantity, order_up_to, got 'level'"),
        ({"min_order_units": -1.0}, "min_order_units must be a finite number >= 0"),
        ({"min_order_units": True}, "min_order_units must be a finite number >= 0"),
    ],
)
def test_factory_names_a_bad_reorder_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        gym.make("smartline/Factory-v0", **kwargs)


@pytest.mark.slow
def test_the_neutral_action_starves_the_line_as_a_quantity_but_not_as_an_order_up_to_target():
    """Why the preset reorders by target: the zero action of an untrained policy over three days."""
    stockout_h = {}
    for reorder in ("quantity", "order_up_to"):
        env = gym.make(
            "smartline/Factory-v0",
            control_period_s=120.0,
            max_episode_steps=2160,
            reorder=reorder,
            **({"min_order_units": 500.0} if reorder == "order_up_to" else {}),  # a quantity has no least order
        )
        try:
            env.reset(seed=10_000)
            total, done = 0.0, False
            while not done:
                _, _, terminated, truncated, info = env.step(np.zeros(16, dtype=np.float32))
                total += info["objectives"][-1]
                done = terminated or truncated
            stockout_h[reorder] = total
        finally:
            env.close()
    assert stockout_h["quantity"] > 24.0  # station-hours held up by an empty store
    assert stockout_h["order_up_to"] == 0.0


@pytest.mark.slow
def test_rule_orders_the_same_whether_the_task_reorders_by_quantity_or_by_target():
    orders, targets = {}, {}
    # S - s = 700: a least order of 500 needs the rule to switch; 700 lets it hold S throughout
    for label, kwargs in {
        "quantity": {},
        "target, least order 500": {"reorder": "order_up_to", "min_order_units": 500.0},
        "target, least order 700": {"reorder": "order_up_to", "min_order_units": 700.0},
    }.items():
        env = gym.make("smartline/Factory-v0", control_period_s=120.0, max_episode_steps=360, **kwargs)
        rule = make_baseline(env, "factory_rules", reorder_point_units=1900.0, order_up_to_units=2600.0)
        try:
            obs, _ = env.reset(seed=7)
            placed, asked = [], []
            for _ in range(360):
                action, _ = rule.predict(obs)
                placed.append(_command_order(env, action))
                asked.append(float(action[-1]))
                obs, *_ = env.step(action)
            orders[label], targets[label] = placed, asked
        finally:
            env.close()
    assert sum(q > 0 for q in orders["quantity"]) >= 1
    np.testing.assert_allclose(orders["target, least order 500"], orders["quantity"], atol=1e-6)
    np.testing.assert_allclose(orders["target, least order 700"], orders["quantity"], atol=1e-6)
    assert len(set(targets["target, least order 700"])) == 1
    assert len(set(targets["target, least order 500"])) == 2


def _row(policy: str, scenario: str, seed: int, value: float) -> Row:
    return Row(policy, scenario, seed, {"return": value})


def test_robustness_cells_pair_by_seed_and_measure_the_change_from_no_scenario():
    rows = [
        *(_row("learned", "none", s, 100.0 + s) for s in (1, 2, 3)),
        *(_row("rule", "none", s, 90.0 + s) for s in (1, 2, 3)),
        *(_row("learned", "price_spike", s, 50.0 + 2 * s) for s in (1, 2, 3)),
        *(_row("rule", "price_spike", s, 80.0 + s) for s in (1, 2, 3)),
    ]
    none, spike = cells("Factory", "run0", rows, ["rule"])
    assert none.difference == (pytest.approx(10.0), pytest.approx(0.0))
    assert none.change is None
    # per seed: (50 + 2s) - (80 + s) = s - 30, i.e. -29, -28, -27; change from +10: -39, -38, -37
    assert spike.difference[0] == pytest.approx(-28.0)
    assert spike.change is not None
    assert spike.change[0] == pytest.approx(-38.0)
    assert spike.change[1] == pytest.approx(stats.t.ppf(0.975, 2) * 1.0 / np.sqrt(3))
    assert spike.learned_return == pytest.approx(54.0)
    assert spike.heuristic_return == pytest.approx(82.0)
    text = table([none, spike])
    row = "| Factory | run0 | rule | episode | price_spike | 3 | 54 | 82 | -28 ± 2 | -38 ± 2 | heuristic better |"
    assert row in text
    with pytest.raises(ValueError, match="no seed has both learned and other"):
        cells("Factory", "run0", rows, ["other"])


def test_a_small_robustness_difference_is_shown_to_two_digits_of_its_interval():
    rows = [
        *(_row("learned", "none", s, 100.0 + 0.3 + 0.01 * s) for s in (1, 2, 3)),
        *(_row("rule", "none", s, 100.0) for s in (1, 2, 3)),
    ]
    (none,) = cells("Speed", "run0", rows, ["rule"])
    row = "| Speed | run0 | rule | episode | none | 3 | 100 | 100 | +0.320 ± 0.025 | - | learned better |"
    assert row in table([none])


def test_a_return_that_is_not_a_number_gives_no_verdict():
    rows = [
        *(_row("learned", "none", s, v) for s, v in enumerate([11.0, float("nan"), 13.0])),
        *(_row("h", "none", s, 10.0) for s in range(3)),
    ]
    (none,) = cells("T", "r", rows, ["h"])
    assert table([none]).endswith("| no verdict, the return is not a number on some of the 3 seeds |")


def test_a_change_from_none_over_one_shared_seed_has_no_interval():
    rows = [
        *(_row("learned", "none", s, v) for s, v in enumerate([11.0, 12.0, 13.0])),
        *(_row("h", "none", s, 10.0) for s in (0, 1)),
        *(_row("learned", "spike", s, v) for s, v in enumerate([5.0, 6.0, 9.0])),
        *(_row("h", "spike", s, 5.0) for s in (1, 2)),
    ]  # only seed 1 has both policies under both scenarios
    _, spike = cells("T", "r", rows, ["h"])
    assert (spike.seeds, spike.change_seeds) == (2, 1)
    assert "| T | r | h | episode | spike | 2 | 8 | 5 | +2 ± 19 | -1 | no difference |" in table([spike])


def test_two_artifacts_of_one_task_have_their_own_rows_and_plots(tmp_path):
    """The table could not tell two Factory artifacts' rows apart, and the second's plot overwrote the first's."""
    overrides = ("task=speed", "line=flow5", "seed=0", "task.max_episode_steps=8")
    artifacts = [untrained_artifact(tmp_path / run / "artifact", overrides, warmup_steps=8) for run in ("a", "b")]
    grid = {
        "artifacts": [str(a) for a in artifacts],
        "scenarios": ["price_spike"],
        "episodes": 2,
        "seed": 10_002,  # the last of the runs' evaluation seeds, and one after
        "continuing_days": 7,
        "continuing_seeds": 0,
    }
    paths = robustness(OmegaConf.create(grid), tmp_path / "run")
    text = paths["table"].read_text()
    for run in ("a", "b"):
        for scenario in ("none", "price_spike"):
            assert f"| Speed | {run} | nominal_speed | episode | {scenario} | 2 |" in text
        assert paths[f"plot Speed {run}"] == tmp_path / "run" / f"speed_{run}.png"
        assert paths[f"plot Speed {run}"].is_file()
        assert (
            f"Seeds: Speed {run} ({tmp_path / run / 'artifact'}): seed 10002 used by the artifact's run too "
            "(evaluation.seed 10000, evaluation.episodes 3)"
        ) in text


def test_robustness_leaves_out_a_scenario_the_artifacts_line_refuses():
    orders = compose_train(["task=scheduling", "line=flow5_orders"])  # a fixed job set: no arrivals to surge
    assert refused_scenarios(orders, ["none", "demand_surge", "price_spike"]) == {
        "demand_surge": "scenarios[0].kind: a demand_surge scales open arrivals, and the line has none "
        "(demand.arrival_rate_per_h is 0)"
    }
    assert refused_scenarios(compose_train([]), ["demand_surge"]) == {}


def test_a_parameter_a_heuristic_refuses_is_named_by_its_task_entry(tmp_path):
    """It was named as `policies: fixed_speed: ...`, though robustness has no policies and the task's entry set it."""
    overrides = ("task=speed", "line=flow5", "seed=0", "task.max_episode_steps=8")
    artifact = untrained_artifact(tmp_path / "a" / "artifact", overrides, warmup_steps=8)
    grid = {
        "artifacts": [str(artifact)],
        "scenarios": ["price_spike"],
        "episodes": 1,
        "seed": 20_000,
        "continuing_days": 7,
        "continuing_seeds": 0,
        "heuristics": {"Speed": {"fixed_speed": {"speed_rato": 0.9}}},
    }
    with pytest.raises(ConfigError, match=r"^heuristics\.Speed\.fixed_speed\.speed_rato: .*unknown parameter"):
        robustness(OmegaConf.create(grid), tmp_path / "run")


def test_robustness_notes_an_artifact_of_a_fixed_instance_and_names_a_bad_scenario(tmp_path):
    artifact = tmp_path / "train" / "artifact"
    artifact.mkdir(parents=True)
    config = {"task": {"name": "Scheduling", "kwargs": {"instance": "ta01"}}, "scenario": {"name": "none"}}
    (artifact / "manifest.json").write_text(json.dumps({"config": config}))
    grid = {
        "artifacts": [str(artifact)],
        "scenarios": ["breakdown_wave"],
        "episodes": 2,
        "seed": 20_000,
        "continuing_days": 7,
        "continuing_seeds": 0,
        "out": str(tmp_path / "first" / "table.md"),
        "plots": str(tmp_path / "first"),
    }
    robustness(OmegaConf.create(grid))
    text = (tmp_path / "first" / "table.md").read_text()
    assert f"Not evaluated: Scheduling ({artifact}) runs a fixed job-shop instance" in text
    # a second run into the first one's folder is refused before it runs, for its table or its plots
    first, second = re.escape(str(tmp_path / "first")), tmp_path / "second"
    with pytest.raises(ConfigError, match=rf"^out: {first} already holds files \(episodes\.csv, table\.md\)"):
        robustness(OmegaConf.create(grid | {"plots": str(second)}))
    with pytest.raises(ConfigError, match=rf"^plots: {first} already holds files"):
        robustness(OmegaConf.create(grid | {"out": str(second / "table.md")}))
    assert not second.exists()
    grid |= {"out": str(tmp_path / "out" / "table.md"), "plots": str(tmp_path / "out")}
    with pytest.raises(ConfigError, match="scenarios: 'blackout' is not a shipped scenario"):
        robustness(OmegaConf.create(grid | {"scenarios": ["blackout"]}))
    refused = {
        "scenarios: 'price_spike' is named twice": {"scenarios": ["price_spike", "demand_surge", "price_spike"]},
        "artifacts: .* is named twice": {"artifacts": [str(artifact), str(artifact)]},
        "episodes: must be a positive whole number, got 0": {"episodes": 0},
        "seed: must be a whole number >= 0, got 'abc'": {"seed": "abc"},
        "continuing_days: must be a positive number, got -7": {"continuing_days": -7},
        r"heuristics\.Sped: not a task \(did you mean Speed\?\)": {"heuristics": {"Sped": {}}},
        # before any artifact runs: the empty entry ran every episode, then failed to draw a plot of no panel
        r"^heuristics\.Scheduling: name at least one heuristic, or leave Scheduling out": {
            "heuristics": {"Scheduling": {}}
        },
        r"^heuristics\.Factory\.factory_ruls: not a heuristic \(did you mean factory_rules\?\)": {
            "heuristics": {"Factory": {"factory_ruls": {}}}
        },
        "scenarios: name at least one scenario": {"scenarios": []},
    }
    for message, change in refused.items():
        with pytest.raises(ConfigError, match=message):
            robustness(OmegaConf.create(grid | change))
    with pytest.raises(ConfigError, match=r"has no manifest\.json"):
        robustness(OmegaConf.create(grid | {"artifacts": [str(tmp_path / "nowhere")]}))
    # by default into the run's own folder: every run wrote into the repository's results/robustness/
    defaults = OmegaConf.create(grid | {"out": None, "plots": None})
    paths = robustness(defaults, tmp_path / "run")
    assert (paths["table"], paths["episodes"]) == (tmp_path / "run" / "table.md", tmp_path / "run" / "episodes.csv")
    assert "Not evaluated: Scheduling" in paths["table"].read_text()
    with pytest.raises(ConfigError, match=r"^plots: name where it goes"):
        robustness(defaults)


def test_a_parameter_refused_for_a_later_artifact_stops_the_run_before_any_artifact_runs(tmp_path):
    """The first artifact ran all its scenarios, then the second's refusal left a half-written episodes.csv."""
    first, second = (
        untrained_artifact(tmp_path / run / "artifact", (f"task={task}", "task.max_episode_steps=8"), warmup_steps=8)
        for run, task in (("a", "speed"), ("b", "energy"))
    )
    grid = {
        "artifacts": [str(first), str(second)],
        "scenarios": ["price_spike"],
        "episodes": 1,
        "seed": 20_000,
        "continuing_days": 7,
        "continuing_seeds": 0,
        "heuristics": {"Energy": {"tou_energy": {"speed_rato": 0.8}}},
        "out": str(tmp_path / "out" / "table.md"),
        "plots": str(tmp_path / "out"),
    }
    with pytest.raises(ConfigError, match=r"^heuristics\.Energy\.tou_energy\.speed_rato: "):
        robustness(OmegaConf.create(grid))
    assert not (tmp_path / "out").exists()
