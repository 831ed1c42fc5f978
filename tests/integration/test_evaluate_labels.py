"""`evaluate` keeps every policy it names apart, also two artifacts whose runs share a folder name."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from experiments.errors import ConfigError
from experiments.evaluate import evaluate, seen_seeds
from experiments.report import EPISODE
from tests.artifacts import speed_artifact


def test_two_artifacts_of_runs_with_one_name_are_two_policies_each_over_its_own_seeds(tmp_path: Path):
    first = speed_artifact(tmp_path / "x" / "Speed" / "run0" / "artifact", warmup_steps=10)
    second = speed_artifact(tmp_path / "y" / "Speed" / "run0" / "artifact", warmup_steps=10)
    overrides = [
        f"policies=[{first},{second},nominal_speed]",
        "episodes=2",
        "continuing_seeds=0",
        "max_episode_steps=50",
    ]
    with initialize_config_module("configs", version_base="1.3"):
        cfg = compose("evaluate", overrides=overrides)
    rows = evaluate(cfg, tmp_path / "out")
    labels = sorted({r.policy for r in rows if r.mode == EPISODE})
    assert labels == sorted([f"PPO Speed/run0 ({first})", f"PPO Speed/run0 ({second})", "nominal_speed"])
    for label in labels:
        assert sorted(r.seed for r in rows if r.policy == label) == [30000, 30001]
    assert (tmp_path / "out" / "kpi_table.md").read_text().count("paired over 2 seeds") == 2


def test_a_continuing_run_on_fewer_seeds_than_asked_says_so(tmp_path: Path):
    """It takes the episodes' seeds: with one episode, `continuing_seeds=3` runs one week, and the table says it."""
    overrides = ["policies=[nominal_speed]", "episodes=1", "continuing_seeds=3", "continuing_days=0.05"]
    with initialize_config_module("configs", version_base="1.3"):
        cfg = compose("evaluate", overrides=[*overrides, "task=speed", "task.max_episode_steps=20"])
    rows = evaluate(cfg, tmp_path)
    assert [r.seed for r in rows if r.mode != EPISODE] == [30000]
    assert "continuing run on 1 of the 3 seeds asked" in (tmp_path / "kpi_table.md").read_text()


def test_an_out_dir_that_holds_files_is_refused_before_any_episode(tmp_path: Path):
    """`out_dir` bypassed the check of the run folder: a second evaluation mixed its tables into the first's."""
    occupied = tmp_path / "first"
    occupied.mkdir()
    (occupied / "kpi_table.md").write_text("the first run's table")
    overrides = ["policies=[nominal_speed]", "episodes=1", "continuing_seeds=0", "max_episode_steps=5"]
    with initialize_config_module("configs", version_base="1.3"):
        cfg = compose("evaluate", overrides=[*overrides, f"out_dir={occupied}"])
        mine = compose("evaluate", overrides=[*overrides, f"out_dir={tmp_path / 'run'}"])
    with pytest.raises(ConfigError, match=rf"^out_dir: {occupied} already holds files \(kpi_table\.md\)"):
        evaluate(cfg, tmp_path / "run")
    assert sorted(p.name for p in occupied.iterdir()) == ["kpi_table.md"]
    (tmp_path / "run" / ".hydra").mkdir(parents=True)  # the run's own folder, as Hydra made it: its own to fill
    evaluate(mine, tmp_path / "run")
    assert (tmp_path / "run" / "kpi_table.md").is_file()


def test_a_heuristics_entry_names_a_heuristic_of_policies_and_a_refused_parameter_by_its_key(tmp_path: Path):
    """An entry for a heuristic not in `policies` was ignored, bad values and all; a bad parameter named `policies`."""
    base = ["task=speed", "episodes=1", "continuing_seeds=0", "max_episode_steps=5"]
    refused = {
        "heuristics={fixed_interval:{interval_h:-5}}": (
            r"^heuristics\.fixed_interval: fixed_interval is not in policies, so nothing would run with it; "
            r"the heuristics in policies are nominal_speed, fixed_speed$"
        ),
        "heuristics={fixed_speed:{speed_rato:0.9}}": r"^heuristics\.fixed_speed\.speed_rato: .*unknown parameter",
        "heuristics={fixed_speed:{speed_ratio:-1}}": r"^heuristics\.fixed_speed\.speed_ratio: speed_ratio must be",
    }
    for override, message in refused.items():
        with initialize_config_module("configs", version_base="1.3"):
            cfg = compose("evaluate", overrides=[*base, "policies=[nominal_speed,fixed_speed]", override])
        with pytest.raises(ConfigError, match=message):
            evaluate(cfg, tmp_path / "run")


def test_seeds_the_artifacts_run_evaluated_or_trained_on_are_named_in_a_warning(tmp_path: Path):
    """The mirror of tune's warning: a policy kept for its return on the evaluation seeds was scored there silently."""
    artifact = speed_artifact(tmp_path / "train" / "Speed" / "run0" / "artifact", warmup_steps=10)
    overrides = [f"policies=[{artifact},nominal_speed]", "episodes=2", "continuing_seeds=0", "max_episode_steps=5"]
    with initialize_config_module("configs", version_base="1.3"):
        cfg = compose("evaluate", overrides=[*overrides, "seed=10002"])
    evaluate(cfg, tmp_path / "run")
    assert (
        f"{artifact}: seed 10002 used by the artifact's run too (evaluation.seed 10000, evaluation.episodes 3): "
        "a policy picked or trained on them is favoured there"
    ) in (tmp_path / "run" / "kpi_table.md").read_text()
    trained = {"seed": 0, "n_envs": 2, "agent": {"_target_": "stable_baselines3.PPO"}}
    assert seen_seeds(OmegaConf.create(trained), [1, 2]) == (
        "seed 1 used by the artifact's run too (training envs' seed 0, n_envs 2): a policy picked or trained on "
        "them is favoured there"
    )
    evaluated = OmegaConf.create(trained | {"evaluation": {"seed": 10000, "episodes": 3}})
    assert seen_seeds(evaluated, [30000, 30001]) is None
