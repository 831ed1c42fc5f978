"""What a newcomer sees at the command line: one-line config errors, the run log, no empty run folders."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.lines import REPO


def start_module(module: str, *overrides: str, full_error: bool = False) -> subprocess.Popen[str]:
    """`python -m module overrides...` started from the repository, HYDRA_FULL_ERROR set only if asked."""
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    if full_error:
        env["HYDRA_FULL_ERROR"] = "1"
    command = [sys.executable, "-m", module, *overrides]
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen[str], timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
    """Wait for a started process and collect its output; one still running after `timeout_s` is killed."""
    try:
        stdout, stderr = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def run_module(module: str, *overrides: str, full_error: bool = False) -> subprocess.CompletedProcess[str]:
    return finish(start_module(module, *overrides, full_error=full_error))


CONFIG_ERRORS = [
    ("agent.learnin_rate=1", "agent.learnin_rate: no such key (did you mean agent.learning_rate?)"),
    ("agent=ppo2", "agent=ppo2: no such option (did you mean ppo?)"),
    ("+agent.clip_rang=0.1", "agent.clip_rang: not a parameter here (did you mean agent.clip_range?)"),
    ("agent.batch_size=1", "agent.batch_size: `batch_size` must be greater than 1"),  # SB3 refuses it when built
]


def test_a_config_error_is_one_line_naming_the_full_key(tmp_path):
    """Each bad override in its own `train` process, all started at once (each is mostly interpreter start-up)."""
    runs = []
    for i, (override, expected) in enumerate(CONFIG_ERRORS):
        run_dir = tmp_path / f"run{i}"
        process = start_module("experiments.train", override, f"hydra.run.dir={run_dir}", "n_envs=1")
        runs.append((override, expected, run_dir, process))
    for override, expected, run_dir, process in runs:
        result = finish(process)
        stderr = result.stderr
        assert result.returncode == 1, override
        assert "Traceback" not in stderr, override
        lines = stderr.strip().splitlines()
        assert len(lines) == 1, f"{override}: {stderr}"
        assert lines[0].startswith(f"config error: {expected}"), lines[0]
        assert lines[0].endswith("(set HYDRA_FULL_ERROR=1 for the full traceback)"), lines[0]
        assert not run_dir.exists(), override  # failed before training: no run folder left behind


def test_full_error_keeps_the_traceback(tmp_path):
    result = run_module("experiments.train", "agent.learnin_rate=1", f"hydra.run.dir={tmp_path}", full_error=True)
    assert result.returncode == 1
    assert "Traceback" in result.stderr
    assert "Could not override 'agent.learnin_rate'" in result.stderr


def test_the_run_log_holds_what_was_printed(tmp_path):
    result = run_module(
        "experiments.train",
        "experiment=scheduling",
        "agent=fifo",
        "final.episodes=2",
        f"hydra.run.dir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr
    log = (tmp_path / "train.log").read_text()
    printed = [line for line in result.stdout.splitlines() if line.strip()]
    assert any(line.startswith("| fifo | none | episode | 2 |") for line in printed)
    for line in printed:
        assert line in log
    assert (tmp_path / "final" / "kpi_table.md").is_file()


def test_simulate_names_its_scenario_and_where_it_wrote(tmp_path):
    result = run_module("experiments.simulate", "scenario=breakdown_wave", "duration_h=2", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("| flow5, scenario breakdown_wave, 2 h, seed 0 | value |")
    written = Path(result.stdout.strip().splitlines()[-1].removeprefix("written: "))
    assert written == tmp_path / "kpi_table.md"
    assert written.read_text().splitlines()[0] == "| flow5, scenario breakdown_wave, 2 h, seed 0 | value |"
    assert "written:" in (tmp_path / "simulate.log").read_text()


def test_evaluate_says_a_missing_artifact_folder_does_not_exist(tmp_path):
    missing = tmp_path / "nowhere" / "artifact"
    run_dir = tmp_path / "run"
    result = run_module("experiments.evaluate", f"policies=[{missing},nominal_speed]", f"hydra.run.dir={run_dir}")
    assert result.returncode == 1
    assert not run_dir.exists()
    assert result.stderr.strip().splitlines() == [
        f"config error: policies: artifact folder {missing} does not exist"
        " (set HYDRA_FULL_ERROR=1 for the full traceback)"
    ]


def test_every_failing_job_of_a_sweep_is_named(tmp_path):
    """The launcher reports the first failure it collects: job 2's (gamma 3) left no trace, its folder discarded."""
    tiny = ("total_timesteps=64", "n_envs=1", "agent.n_steps=32", "agent.batch_size=16", "agent.n_epochs=1",
            "task.max_episode_steps=8", "evaluation.episodes=1", "evaluation.every_steps=1000",
            "evaluation.figures=false", "final.episodes=2", "final.continuing_seeds=0",
            "progress_bar=false")  # fmt: skip
    done = run_module("experiments.train", "-m", "agent.gamma=2,0.9,3", *tiny, f"hydra.sweep.dir={tmp_path}")
    assert done.returncode == 1
    failed = [line.split(" failed: ") for line in done.stderr.splitlines() if " failed: " in line]
    assert [(job.split(" (")[0], why) for job, why in failed] == [
        ("job 0", "agent.gamma: must be in [0, 1], got 2"),
        ("job 2", "agent.gamma: must be in [0, 1], got 3"),
    ]
    assert (tmp_path / "1" / "artifact").is_dir()  # the job between them ran
