"""The experiment pipeline for real: Hydra configs, a tiny training run, TensorBoard, multirun, evaluation."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import DictConfig
from scipy import stats
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from experiments.build import ConfigError, check
from experiments.evaluate import evaluate
from experiments.train import train
from tests.lines import REPO

CONFIGS = str(REPO / "configs")
EXPERIMENTS = sorted(p.stem for p in (REPO / "configs" / "experiment").glob("*.yaml"))
AGENTS = sorted(p.stem for p in (REPO / "configs" / "agent").glob("*.yaml"))
TINY = [
    "total_timesteps=512",
    "n_envs=1",
    "agent.n_steps=256",
    "agent.batch_size=64",
    "evaluation.every_steps=256",
    "evaluation.episodes=1",
    "final.episodes=2",
    "checkpoint_every_steps=256",
    "progress_bar=false",
    "task.max_episode_steps=60",
]


def compose_train(overrides: list[str]) -> DictConfig:
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        return compose("train", overrides=overrides)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_preset_composes_and_checks(experiment):
    cfg = compose_train([f"experiment={experiment}"])
    check(cfg)
    assert cfg.task.baseline in AGENTS


TASK_OF_AGENT = {
    **dict.fromkeys(("maskable_ppo", "fifo", "spt", "lpt", "mwkr", "mopnr", "edd"), "scheduling"),
    **dict.fromkeys(("reactive", "fixed_interval", "condition_based"), "maintenance"),
    "dqn": "inventory",
    "ss_reorder": "inventory",
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
        (["vec_env=threads"], ConfigError, "vec_env"),
        (["agent=maskable_ppo"], ConfigError, "needs a task with action masks"),
        (["+unknown_key=1", "task.id=smartline/Nothing-v0"], ConfigError, "task.id"),
        (["agent=spt"], ConfigError, "agent.name: env: DispatchRule drives SchedulingTask, not SpeedTask"),
        (["task.baseline=reactive"], ConfigError, "task.baseline"),
    ],
)
def test_config_errors_stop_before_work_and_name_the_key(overrides, error, message):
    with pytest.raises(error, match=message):
        check(compose_train(overrides))


def test_sac_on_a_discrete_task_is_refused_naming_the_agent(tmp_path):
    cfg = compose_train(["agent=sac", "task=inventory", *TINY[:2]])
    with pytest.raises(ConfigError, match=r"agent: stable_baselines3\.SAC cannot run task Inventory"):
        train(cfg, tmp_path)


def test_tiny_training_run_logs_kpis_exports_and_compares(tmp_path, capsys):
    cfg = compose_train(TINY)
    objective = train(cfg, tmp_path)
    events = list((tmp_path / "tb").rglob("events.out.tfevents.*"))
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
    assert "hparams" in acc.PluginTagToContent("hparams") or acc.PluginTagToContent("hparams")
    manifest = json.loads((tmp_path / "artifact" / "manifest.json").read_text())
    assert manifest["config"]["task"]["name"] == "Speed"
    assert manifest["vec_normalize"] is not None
    assert list((tmp_path / "checkpoints").glob("*.zip"))
    table = (tmp_path / "final" / "kpi_table.md").read_text()
    assert "| learned |" in table
    assert "| nominal_speed (heuristic) |" in table
    assert "learned against nominal_speed" in capsys.readouterr().out
    # the sweep objective is the last evaluation on evaluation seeds, not the held-out final table
    assert objective == pytest.approx(acc.Scalars("eval/mean_reward")[-1].value, rel=1e-6)
    final = list(csv.DictReader((tmp_path / "final" / "episodes.csv").open()))
    assert sum(r["policy"] == "learned" for r in final) == 2


def test_a_heuristic_agent_runs_the_final_comparison_on_its_own_env(tmp_path, capsys):
    cfg = compose_train(["experiment=scheduling", "agent=fifo", "final.episodes=2"])
    objective = train(cfg, tmp_path)
    rows = list(csv.DictReader((tmp_path / "final" / "episodes.csv").open()))
    assert {r["policy"] for r in rows} == {"fifo", "spt (heuristic)"}
    assert objective == pytest.approx(np.mean([float(r["return"]) for r in rows if r["policy"] == "fifo"]))
    assert "fifo" in capsys.readouterr().out


def test_scheduling_run_logs_a_gantt_chart(tmp_path):
    cfg = compose_train(["experiment=scheduling", *TINY[:-1], "task.kwargs.objective=makespan"])
    train(cfg, tmp_path)
    events = next((tmp_path / "tb").rglob("events.out.tfevents.*"))
    acc = EventAccumulator(str(events.parent), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    assert "figures/gantt" in acc.Tags()["images"]
    assert acc.Scalars("kpi/makespan_s")


def test_evaluate_table_equals_a_recomputation_from_the_raw_episodes(tmp_path):
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        cfg = compose(
            "evaluate",
            overrides=[
                "task=scheduling",
                "line=flow5_orders",
                "policies=[fifo,spt]",
                "episodes=4",
                "scenarios=[none,breakdown_wave]",
            ],
        )
    rows = evaluate(cfg, tmp_path)
    assert len(rows) == 2 * 2 * 4
    raw = list(csv.DictReader((tmp_path / "episodes.csv").open()))
    summary = list(csv.DictReader((tmp_path / "summary.csv").open()))
    assert len(raw) == 16
    for s in summary:
        sample = [float(r[s["metric"]]) for r in raw if r["policy"] == s["policy"] and r["scenario"] == s["scenario"]]
        assert len(sample) == int(s["episodes"]) == 4
        mean = np.mean(sample)
        half = stats.t.ppf(0.975, len(sample) - 1) * np.std(sample, ddof=1) / np.sqrt(len(sample))
        assert float(s["mean"]) == pytest.approx(mean, rel=1e-12, abs=1e-12)
        assert float(s["ci95_half_width"]) == pytest.approx(half, rel=1e-9, abs=1e-12)
    assert (tmp_path / "makespan_s.png").stat().st_size > 0
    assert "| spt | breakdown_wave | 4 |" in (tmp_path / "kpi_table.md").read_text()


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


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_two_job_multirun(tmp_path, launcher):
    runs = multirun(tmp_path, launcher, ["agent.learning_rate=1e-4,3e-4"])
    assert len(runs) == 2
    rates = sorted(
        json.loads((r / "artifact" / "manifest.json").read_text())["config"]["agent"]["learning_rate"] for r in runs
    )
    assert rates == [1e-4, 3e-4]


@pytest.mark.slow
def test_optuna_sweep_over_a_preset(tmp_path):
    multirun(tmp_path, "joblib", ["experiment=speed_tune", "hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=1"])
    result = (tmp_path / "optimization_results.yaml").read_text()
    assert "best_params" in result
    assert "agent.learning_rate" in result
