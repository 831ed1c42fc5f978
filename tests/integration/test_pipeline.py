"""The experiment pipeline for real: Hydra configs, a tiny training run, TensorBoard, multirun, evaluation."""

from __future__ import annotations

import csv
import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from scipy import stats
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from agents.rollout import run_episode
from experiments.build import ConfigError, check, episode_steps, heuristic_agent, make_env
from experiments.evaluate import evaluate, evaluation_config
from experiments.report import EPISODE, continuing_mode
from experiments.train import train
from tests.lines import REPO
from tests.presets import CONFIGS, compose_train

EXPERIMENTS = sorted(p.stem for p in (REPO / "configs" / "experiment").glob("*.yaml"))
AGENTS = sorted(p.stem for p in (REPO / "configs" / "agent").glob("*.yaml"))
TINY = [
    "total_timesteps=512",
    "n_envs=1",
    "agent.n_steps=256",
    "agent.batch_size=64",
    "evaluation.every_steps=256",
    "evaluation.episodes=1",
    "final.episodes=3",
    "final.continuing_days=0.125",  # 3 h without reset instead of a week
    "final.continuing_seeds=2",
    "checkpoint_every_steps=256",
    "progress_bar=false",
    "warm_start.steps=64",  # a preset that warm-starts clones from a short rollout
    "task.max_episode_steps=60",  # last: a test that runs whole episodes drops it (TINY[:-1])
]


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_preset_composes_and_checks(experiment):
    cfg = compose_train([f"experiment={experiment}"])
    check(cfg)
    assert cfg.task.baseline in AGENTS


def test_the_tasks_baseline_is_checked_with_the_parameters_heuristics_gives_it(flow5_definition):
    stations = [{"name": f"m{k}", "machine": "cnc"} for k in (1, 2, 3)]
    three = {k: v for k, v in flow5_definition.items() if not k.startswith("_")} | {
        "name": "three",
        "stations": stations,
        "variants": [{"name": "A", "processing_time_s": [40, 45, 30]}],
        "changeover_time_s": [[0.0]],
    }
    cfg = compose_train(["experiment=maintenance"])
    cfg.line = OmegaConf.create(three)  # the shipped thresholds name flow5's five stations
    with pytest.raises(
        ConfigError, match=r"^task\.baseline=condition_based: heuristics\.condition_based: threshold_mm_s"
    ):
        check(cfg)
    cfg.heuristics.condition_based = {"threshold_mm_s": 3.5}  # one number for every station of this line
    check(cfg)


def test_a_heuristic_agent_takes_its_parameters_from_the_config_and_names_a_bad_one():
    cfg = compose_train(["experiment=maintenance", "agent=fixed_interval", "agent.interval_h=50"])
    env = make_env(cfg)
    try:
        assert heuristic_agent(cfg, env).interval_h == 50.0
    finally:
        env.close()
    typo = compose_train(["experiment=maintenance", "agent=fixed_interval", "+agent.intervl_h=50"])
    with pytest.raises(ConfigError, match=r"^agent\.intervl_h: .*did you mean 'interval_h'"):
        check(typo)
    negative = compose_train(["experiment=maintenance", "agent=fixed_interval", "agent.interval_h=-5"])
    with pytest.raises(ConfigError, match=r"^agent\.interval_h: interval_h must be"):
        check(negative)


TASK_OF_AGENT = {
    **dict.fromkeys(("maskable_ppo", "fifo", "spt", "lpt", "mwkr", "mopnr", "edd"), "scheduling"),
    **dict.fromkeys(("cpsat", "self_labelling"), "scheduling"),
    **dict.fromkeys(("reactive", "fixed_interval", "condition_based", "ppo_maintenance"), "maintenance"),
    **dict.fromkeys(("dqn", "ss_reorder", "ppo_inventory"), "inventory"),
    "tou_energy": "energy",
    "factory_rules": "factory",
}


@pytest.mark.parametrize("agent", AGENTS)
def test_every_agent_option_checks_on_its_task(agent):
    task = TASK_OF_AGENT.get(agent, "speed")
    line = "line=flow5_orders" if task == "scheduling" else "line=flow5"
    check(compose_train([f"agent={agent}", f"task={task}", line]))


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        (["agent=ppo2"], ConfigCompositionException, "agent/ppo2"),
        (["total_timesteps=lots"], ConfigError, "total_timesteps: must be a positive whole number"),
        (["n_envs=0"], ConfigError, "n_envs"),
        (["n_envs=true"], ConfigError, "n_envs: must be a positive whole number, got True"),
        (["task.max_episode_steps=true"], ConfigError, "task.max_episode_steps: must be a positive whole number"),
        (["vec_env=threads"], ConfigError, "vec_env"),
        (["agent=maskable_ppo"], ConfigError, "agent._target_: MaskablePPO needs a task with action masks"),
        (["++task.kwargs.control_period_s=-1"], ConfigError, "task.kwargs.control_period_s: .*must be > 0"),
        (["+task.kwargs.control_period=30"], ConfigError, r"did you mean task\.kwargs\.control_period_s\?"),
        (["+unknown_key=1", "task.id=smartline/Nothing-v0"], ConfigError, "task.id"),
        (["agent=spt"], ConfigError, "agent.name: env: DispatchRule drives SchedulingTask, not SpeedTask"),
        (["task.baseline=reactive"], ConfigError, "task.baseline"),
        (
            ["agent=sac", "agent._target_=stable_baselines3.TD3"],
            ConfigError,
            "TD3 cannot run task Speed: cannot export",
        ),
        (["warm_start.noise=inf"], ConfigError, "^warm_start.noise: must be JSON-serialisable"),
        (["normalize.clip_obs=inf"], ConfigError, "^normalize.clip_obs: must be a positive number, got inf"),
        (["normalize.clip_obs=0"], ConfigError, "^normalize.clip_obs: must be a positive number, got 0"),
        (["final.continuing_days=nan"], ConfigError, "^final.continuing_days: must be a positive number, got nan"),
        (["final.episodes=0"], ConfigError, "^final.episodes: must be a positive whole number, got 0"),
        (
            ["heuristics={fixed_sped: {}}"],
            ConfigError,
            r"^heuristics\.fixed_sped: not a heuristic \(did you mean fixed_speed\?\)$",
        ),
        (["normalize.gamma=1.5"], ConfigError, r"^normalize.gamma: must be in \[0, 1\], got 1.5"),
        (["normalize.gamma=abc"], ConfigError, "^normalize.gamma: must be in"),
        (["task=scheduling"], ConfigError, r"'flow5' is not \(flow5_orders is one; or give a job-shop instance"),
    ],
)
def test_config_errors_stop_before_work_and_name_the_key(overrides, error, message):
    with pytest.raises(error, match=message):
        check(compose_train(overrides))


def test_sac_on_a_discrete_task_is_refused_naming_the_agent(tmp_path):
    cfg = compose_train(["agent=sac", "task=inventory", *TINY[:2]])
    with pytest.raises(ConfigError, match=r"agent._target_: stable_baselines3\.SAC cannot run task Inventory"):
        train(cfg, tmp_path)


WEEK = continuing_mode(0.125)
VERDICT = re.compile(
    r"^(?:(?P<scenario>[^,:]+), )?(?P<mode>[^:]+): "
    r"(?P<policy>.+?) (?P<outcome>beats|is beaten by|cannot be told apart from) (?P<base>.+?): "
    r"return difference (?P<mean>[-+0-9.,]+) ± (?P<half>[0-9.,]+) \(95%, paired over (?P<n>\d+) seeds\)$"
)


def assert_statistics_match_scipy(folder: Path, text: str) -> None:
    """The summary and every printed verdict agree with scipy.stats computed from episodes.csv."""
    raw = list(csv.DictReader((folder / "episodes.csv").open()))
    for s in csv.DictReader((folder / "summary.csv").open()):
        sample = [
            float(r[s["metric"]])
            for r in raw
            if (r["policy"], r["scenario"], r["mode"]) == (s["policy"], s["scenario"], s["mode"])
        ]
        assert len(sample) == int(s["episodes"])
        assert float(s["mean"]) == pytest.approx(np.mean(sample), rel=1e-12, abs=1e-12)
        if len(sample) > 1 and np.std(sample) > 0:
            low, high = stats.t.interval(0.95, len(sample) - 1, loc=np.mean(sample), scale=stats.sem(sample))
            assert float(s["ci95_half_width"]) == pytest.approx((high - low) / 2, rel=1e-9)
    verdicts = [m for m in map(VERDICT.match, text.splitlines()) if m]
    assert verdicts
    for v in verdicts:
        cell = [r for r in raw if r["mode"] == v["mode"] and v["scenario"] in (None, r["scenario"])]
        theirs = {(r["scenario"], r["seed"]): float(r["return"]) for r in cell if r["policy"] == v["base"]}
        ours = {(r["scenario"], r["seed"]): float(r["return"]) for r in cell if r["policy"] == v["policy"]}
        keys = sorted(ours)
        a, b = np.array([ours[k] for k in keys]), np.array([theirs[k] for k in keys])
        assert int(v["n"]) == len(keys)
        diff = a - b
        assert float(v["mean"].replace(",", "")) == pytest.approx(diff.mean(), abs=0.051)
        if len(keys) > 1 and np.std(diff) > 0:
            low, high = stats.t.interval(0.95, len(diff) - 1, loc=diff.mean(), scale=stats.sem(diff))
            assert float(v["half"].replace(",", "")) == pytest.approx((high - low) / 2, abs=0.051)
            significant = stats.ttest_rel(a, b).pvalue < 0.05
            expected = ("beats" if diff.mean() > 0 else "is beaten by") if significant else "cannot be told apart from"
            assert v["outcome"] == expected


@pytest.mark.slow
def test_tiny_training_run_logs_kpis_exports_and_compares(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    cfg = compose_train(TINY)
    objective = train(cfg, tmp_path / "run")
    run = tmp_path / "run"
    events = list((run / "tb").rglob("events.out.tfevents.*"))
    assert events
    acc = EventAccumulator(str(events[0].parent), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    tags = acc.Tags()
    for kpi in ("throughput_per_h", "oee", "energy_cost", "co2_kg_per_part", "downtime_h", "tardiness_h"):
        values = [e.value for e in acc.Scalars(f"kpi/{kpi}")]
        assert values
        assert all(np.isfinite(values))
    assert acc.Scalars("kpi/throughput_per_h")[-1].value > 0
    assert {"eval/mean_reward", "eval/heuristic_mean_reward", "eval/advantage_over_heuristic"} <= set(tags["scalars"])
    assert {"figures/power_and_tariff", "figures/health_and_maintenance"} <= set(tags["images"])
    assert acc.PluginTagToContent("hparams")
    manifest = json.loads((run / "artifact" / "manifest.json").read_text())
    assert manifest["config"]["task"]["name"] == "Speed"
    assert manifest["vec_normalize"] is not None
    assert list((run / "checkpoints").glob("*.zip"))
    table = (run / "final" / "kpi_table.md").read_text()
    assert "| learned | none | episode | 3 |" in table
    assert f"| nominal_speed (heuristic) | none | {WEEK} | 2 |" in table
    assert "learned against nominal_speed" in caplog.text
    assert (run / "final" / "return_difference.png").stat().st_size > 0
    # the sweep objective is the last evaluation on evaluation seeds, not the held-out final table
    assert objective == pytest.approx(acc.Scalars("eval/mean_reward")[-1].value, rel=1e-6)
    assert [e.step for e in acc.Scalars("eval/mean_reward")] == [256, 512]  # the end evaluated once, not twice
    final = list(csv.DictReader((run / "final" / "episodes.csv").open()))
    assert sum(r["policy"] == "learned" and r["mode"] == EPISODE for r in final) == 3
    week = [r for r in final if r["mode"] == WEEK]
    assert len(week) == 4
    # 3 h without reset at 60 s per decision: 180 steps, three times the 60-step episode
    for r in week:
        assert float(r["good_parts"]) > max(float(e["good_parts"]) for e in final if e["mode"] == EPISODE)
    assert_statistics_match_scipy(run / "final", table)

    # the exported artifact, evaluated against the heuristic: labelled by algorithm and run
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        ecfg = compose(
            "evaluate",
            overrides=[
                f"policies=[{run / 'artifact'},nominal_speed]",
                "episodes=2",
                "continuing_days=0.125",
                "continuing_seeds=1",
            ],
        )
    caplog.clear()
    rows = evaluate(ecfg, tmp_path / "eval")
    label = f"PPO {tmp_path.name}/run"
    assert {r.policy for r in rows} == {label, "nominal_speed"}
    assert {(r.mode, r.policy) for r in rows if r.mode == WEEK} == {(WEEK, label), (WEEK, "nominal_speed")}
    assert f"episode: {label} " in caplog.text
    assert f"{WEEK}: {label} " in caplog.text
    assert_statistics_match_scipy(tmp_path / "eval", caplog.text)


def test_a_heuristic_agent_runs_the_final_comparison_on_its_own_env(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    cfg = compose_train(["experiment=scheduling", "agent=fifo", "final.episodes=2", "evaluation.episodes=2"])
    objective = train(cfg, tmp_path)
    rows = list(csv.DictReader((tmp_path / "final" / "episodes.csv").open()))
    assert {r["policy"] for r in rows} == {"fifo", "spt (heuristic)"}
    assert {r["mode"] for r in rows} == {EPISODE}
    assert "no continuing run: task Scheduling runs a fixed job set" in caplog.text
    # a sweep over a heuristic's parameters tunes on the evaluation seeds, never on the held-out ones
    env = make_env(cfg)
    tuning = [run_episode(env, heuristic_agent(cfg, env), seed).total_reward for seed in (10000, 10001)]
    held_out = [float(r["return"]) for r in rows if r["policy"] == "fifo"]
    assert objective == pytest.approx(np.mean(tuning))
    assert objective != pytest.approx(np.mean(held_out))


def test_scheduling_run_logs_a_gantt_chart(tmp_path):
    ppo = ["task=scheduling", "line=flow5_orders", "agent=maskable_ppo"]  # the preset trains by self-labelling
    cfg = compose_train([*ppo, *TINY[:-1], "task.kwargs.objective=makespan"])
    train(cfg, tmp_path)
    events = next((tmp_path / "tb").rglob("events.out.tfevents.*"))
    acc = EventAccumulator(str(events.parent), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    assert "figures/gantt" in acc.Tags()["images"]
    assert acc.Scalars("kpi/makespan_s")


def test_evaluate_statistics_agree_with_scipy(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        cfg = compose(
            "evaluate",
            overrides=[
                "task=scheduling",
                "line=flow5_orders",
                "policies=[fifo,spt,mwkr]",
                "episodes=4",
                "scenarios=[none,breakdown_wave]",
            ],
        )
    rows = evaluate(cfg, tmp_path)
    assert len(rows) == 3 * 2 * 4
    assert "| spt | breakdown_wave | episode | 4 |" in (tmp_path / "kpi_table.md").read_text()
    assert "episode: fifo " in caplog.text
    assert "fifo - mwkr" not in caplog.text  # heuristics only: the first against each of the others
    assert_statistics_match_scipy(tmp_path, caplog.text)
    assert (tmp_path / "makespan_s.png").stat().st_size > 0
    assert (tmp_path / "return_difference.png").stat().st_size > 0


def test_evaluate_replaces_an_artifacts_episode_length_and_names_a_bad_one(tmp_path):
    artifact = tmp_path / "artifact"
    artifact.mkdir()
    trained = compose_train(["experiment=energy_ars", "task.max_episode_steps=2160"])
    (artifact / "manifest.json").write_text(json.dumps({"config": OmegaConf.to_container(trained, resolve=True)}))
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        per_day = compose("evaluate", overrides=[f"policies=[{artifact}]", "max_episode_steps=720"])
        as_trained = compose("evaluate", overrides=[f"policies=[{artifact}]"])
        bad = compose("evaluate", overrides=[f"policies=[{artifact}]", "max_episode_steps=0"])
    run_cfg = evaluation_config(per_day)
    assert run_cfg.task.name == "Energy"
    assert episode_steps(run_cfg) == 720
    assert episode_steps(evaluation_config(as_trained)) == 2160
    assert per_day.task.max_episode_steps is None  # the composed config is left as it was
    with pytest.raises(ConfigError, match=r"^max_episode_steps: must be a positive whole number, got 0"):
        evaluation_config(bad)


def test_evaluate_carries_the_command_lines_line_and_task_keys_into_an_artifacts_config(tmp_path):
    """`line=flow5_busy` and a reward weight were dropped without a word: the table was the artifact's line."""
    artifact = tmp_path / "artifact"
    artifact.mkdir()
    trained = compose_train(["experiment=energy_ars", "+task.kwargs.weights.wear=3.0"])
    (artifact / "manifest.json").write_text(json.dumps({"config": OmegaConf.to_container(trained, resolve=True)}))
    given = [
        f"policies=[{artifact}]",
        "task=energy",  # the artifact's task: its config stays as trained, and keys can be set
        "+task.kwargs.weights.energy=55.0",
        "line=flow5_busy",
        "line.demand.due_date_allowance_s=7200",
        "~line.scenarios",
    ]
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        cfg = compose("evaluate", overrides=given)
        other_task = compose("evaluate", overrides=[f"policies=[{artifact}]", "task=maintenance"])
    run_cfg = evaluation_config(cfg, given)
    assert (run_cfg.task.name, run_cfg.line.name) == ("Energy", "flow5_busy")
    assert run_cfg.line.demand.due_date_allowance_s == 7200
    assert dict(run_cfg.task.kwargs.weights) == {"energy": 55.0, "maintenance_cost": 0.0, "wear": 3.0}
    assert "scenarios" not in run_cfg.line
    assert (run_cfg.agent, run_cfg.seed) == (trained.agent, trained.seed)  # the rest as trained
    assert run_cfg.heuristics == trained.heuristics
    assert evaluation_config(cfg).line.name == "flow5"  # no overrides given: the artifact's own
    with pytest.raises(ConfigError, match=r"^task: the artifacts were trained on task Energy, not Maintenance"):
        evaluation_config(other_task, [f"policies=[{artifact}]", "task=maintenance"])
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        no_line = compose("evaluate", overrides=[f"policies=[{artifact}]", "~line"])
    with pytest.raises(ConfigError, match=r"^~line: the artifacts run with a line; name another \(line=<option>\)"):
        evaluation_config(no_line, [f"policies=[{artifact}]", "~line"])


def test_a_table_names_the_instance_that_replaces_the_line(tmp_path):
    """Scheduling on ft06 was titled 'Scheduling on flow5', the line it never ran on."""
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        cfg = compose("evaluate", overrides=["task=scheduling", "+task.kwargs.instance=ft06", "policies=[fifo,spt]"])
    cfg.episodes = 1
    evaluate(cfg, tmp_path)
    assert (tmp_path / "kpi_table.md").read_text().startswith("# Scheduling on instance ft06, 1 seeds from 30000")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["policies=[fixed_speed,fixed_speed,nominal_speed]"], "policies: 'fixed_speed' is named twice"),
        (["policies=[fixed_speed]", "scenarios=[none,none]"], "scenarios: 'none' is named twice"),
        (["policies=[fixed_speed]", "scenarios=[none,price_spik]"], r"scenarios: 'price_spik' .*\(did you mean"),
        (["policies=[fixed_speed]", "scenarios=[]"], "scenarios: name at least one scenario"),
        (["policies=[fixed_speed]", "episodes=0"], "episodes: must be a positive whole number, got 0"),
        (["policies=[fixed_speed]", "continuing_seeds=-1"], "continuing_seeds: must be a whole number >= 0"),
        (["policies=[fixed_speed]", "seed=-1"], "seed: must be a whole number >= 0, got -1"),
        (["policies=[fixed_speed]", "continuing_days=0"], "continuing_days: must be a positive number, got 0"),
    ],
)
def test_evaluate_refuses_what_would_pool_or_lose_its_rows_before_any_run(tmp_path, overrides, message):
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        cfg = compose("evaluate", overrides=overrides)
    with pytest.raises(ConfigError, match=message):
        evaluate(cfg, tmp_path)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ("outputs/train/Speed/nowhere/artifact", "artifact folder outputs/train/Speed/nowhere/artifact does not exist"),
        ("nominal_sped", r"neither an artifact folder nor a heuristic \(did you mean nominal_speed\?\)"),
        ("{tmp_path}", "has no manifest.json"),
        ("{tmp_path}/broken", r"broken/manifest\.json is not a readable policy manifest: Expecting"),
        ("{tmp_path}/bare", r"bare/manifest\.json records no training config"),
    ],
)
def test_evaluate_names_a_policy_it_cannot_find(tmp_path, policy, message):
    for name, text in (("broken", "{'config': "), ("bare", '{"config": null}')):
        (tmp_path / name).mkdir()
        (tmp_path / name / "manifest.json").write_text(text)
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        policy = policy.format(tmp_path=tmp_path)
        cfg = compose("evaluate", overrides=[f"policies=[{policy}]", "episodes=1", "continuing_seeds=0"])
    with pytest.raises(ConfigError, match=message):
        evaluate(cfg, tmp_path)


def multirun(tmp_path: Path, launcher: str, extra: list[str]) -> list[Path]:
    cmd = [
        sys.executable,
        "-m",
        "experiments.train",
        "-m",
        f"hydra/launcher={launcher}",
        f"hydra.sweep.dir={tmp_path}",
        *TINY,
        *extra,
    ]
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, text=True, timeout=300)
    return sorted(p.parent.parent for p in tmp_path.rglob("artifact/manifest.json"))


def learning_rates(runs: list[Path]) -> list[float]:
    """The learning rate each run of a sweep trained with, read back from its artifact's manifest."""
    manifests = [json.loads((r / "artifact" / "manifest.json").read_text()) for r in runs]
    return sorted(m["config"]["agent"]["learning_rate"] for m in manifests)


@pytest.mark.slow
def test_two_job_multirun_on_the_submitit_launcher(tmp_path):
    runs = multirun(tmp_path, "submitit_local", ["agent.learning_rate=1e-4,3e-4"])
    assert learning_rates(runs) == [1e-4, 3e-4]


@pytest.mark.slow
def test_optuna_sweep_over_a_preset_on_the_joblib_launcher(tmp_path):
    """Two trials of the Optuna sweeper, each a job of the joblib launcher with its own sampled learning rate."""
    runs = multirun(tmp_path, "joblib", ["experiment=speed_tune", "hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=1"])
    rates = learning_rates(runs)
    assert len(rates) == 2
    assert rates[0] != rates[1]
    assert all(1e-5 <= r <= 3e-3 for r in rates)  # within the sweep's interval
    result = yaml.safe_load((tmp_path / "optimization_results.yaml").read_text())
    assert result["best_params"]["agent.learning_rate"] in rates
