"""Each run of an entry point gets a folder of its own under its name, even when several start in one second."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import OmegaConf, open_dict

from experiments.run_folders import FreshRunDir

STAMP = re.compile(r"\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}_\d{6}")  # date, time and microseconds


ENTRIES = ("train", "tune", "evaluate", "robustness", "simulate", "jssp_gaps")


@pytest.mark.parametrize("entry", ENTRIES)
def test_run_folders_are_named_to_the_microsecond(entry):
    """Two seeds launched in the same second once wrote into one folder, each overwriting the other's checkpoint."""
    with initialize_config_module("configs", version_base="1.3"):
        cfg = compose(entry, return_hydra_config=True)
    for folder, root in (("run", "outputs"), ("sweep", "multirun")):
        path = Path(cfg.hydra[folder].dir)
        assert STAMP.fullmatch(path.name), f"{entry}: hydra.{folder}.dir ends in {path.name!r}"
        assert path.parts[:2] == (root, entry), f"{entry}: hydra.{folder}.dir is {path}, not under {root}/{entry}"


@pytest.mark.parametrize("folder_key", ["hydra.run.dir", "hydra.sweep.dir"])
def test_a_folder_that_holds_another_runs_files_is_refused_before_hydra_writes_into_it(tmp_path, folder_key):
    """A second run told to reuse a folder overwrote the first one's config and mixed their checkpoints."""
    occupied = tmp_path / "run"
    occupied.mkdir()
    (occupied / "model.zip").write_bytes(b"the first run's model")
    args = [sys.executable, "-m", "experiments.simulate", "duration_h=0.1", f"{folder_key}={occupied}"]
    done = subprocess.run(args + (["-m"] if folder_key == "hydra.sweep.dir" else []), capture_output=True, text=True)
    assert done.returncode == 1
    assert (
        f"config error: {folder_key}: {occupied} already holds files (model.zip); a run needs a folder" in done.stderr
    )
    assert sorted(p.name for p in occupied.iterdir()) == ["model.zip"]  # nothing written, nothing removed
    fresh = tmp_path / "empty"
    fresh.mkdir()
    assert subprocess.run([*args[:-1], f"hydra.run.dir={fresh}"], capture_output=True).returncode == 0
    assert (fresh / "kpi_table.md").exists()


def test_a_folder_named_through_a_hydra_interpolation_is_checked_too(tmp_path):
    """`${hydra:job.name}` resolved only once the run had started: the check was skipped with a warning."""
    (tmp_path / "simulate").mkdir()
    (tmp_path / "simulate" / "model.zip").write_bytes(b"the first run's model")
    folder = f"hydra.run.dir={tmp_path}/${{hydra:job.name}}"
    done = subprocess.run(
        [sys.executable, "-m", "experiments.simulate", "duration_h=0.1", folder], capture_output=True, text=True
    )
    assert done.returncode == 1
    assert f"config error: hydra.run.dir: {tmp_path}/simulate already holds files (model.zip)" in done.stderr
    assert sorted(p.name for p in (tmp_path / "simulate").iterdir()) == ["model.zip"]


def test_two_jobs_of_a_sweep_given_one_folder_are_refused_and_the_first_keeps_its_config(tmp_path):
    """`hydra.sweep.subdir=seed${seed}` over a sweep of learning rates put two jobs in one folder, files mixed."""
    sweep = tmp_path / "sweep"
    args = ["-m", "seed=1,2", "duration_h=0.1", f"hydra.sweep.dir={sweep}", "hydra.sweep.subdir=same"]
    done = subprocess.run(
        [sys.executable, "-m", "experiments.simulate", *args, "hydra/launcher=basic"], capture_output=True, text=True
    )
    assert done.returncode == 1
    assert (
        f"config error: hydra.sweep.subdir: jobs 0 and 1 (seed=1 against seed=2) resolve to one folder, {sweep}/same; "
        "each job needs a folder of its own" in done.stderr
    )
    overrides = (sweep / "same" / ".hydra" / "overrides.yaml").read_text()
    assert "seed=1" in overrides  # put back: Hydra had written job 1's config over it
    assert "seed=2" not in overrides
    assert "seed: 1" in (sweep / "same" / ".hydra" / "config.yaml").read_text()
    assert (sweep / "same" / "kpi_table.md").exists()  # job 0's work is kept


def test_a_job_started_again_in_its_own_folder_goes_on_and_another_job_there_does_not(tmp_path):
    """A cluster launcher requeues a preempted job into its own folder: its claim is its own."""
    with initialize_config_module("configs", version_base="1.3"):
        composed = compose("simulate", overrides=["seed=1"], return_hydra_config=True)
    cfg = OmegaConf.create(OmegaConf.to_container(composed))  # without Hydra's read-only flags
    with open_dict(cfg):
        cfg.hydra.mode = RunMode.MULTIRUN
        cfg.hydra.runtime.output_dir = str(tmp_path / "0")
        cfg.hydra.job.num = 0
    (tmp_path / "0" / ".hydra").mkdir(parents=True)
    HydraConfig.instance().set_config(composed)  # what Hydra holds while the job runs
    FreshRunDir().on_job_start(cfg)
    FreshRunDir().on_job_start(cfg)  # started again: it goes on
    other = copy.deepcopy(cfg)
    with open_dict(other):
        other.hydra.job.num = 1
        other.hydra.overrides.task = ["seed=2"]
    with pytest.raises(SystemExit, match=r"jobs 0 and 1 \(seed=1 against seed=2\) resolve to one folder"):
        FreshRunDir().on_job_start(other)
    assert "seed=1" in (tmp_path / "0" / ".hydra" / "overrides.yaml").read_text()


def test_an_optuna_sweep_that_would_minimise_the_return_is_refused_before_any_job(tmp_path):
    """`hydra/sweeper=optuna` alone minimised the mean return and reported the worst interval as best."""
    sweep = tmp_path / "sweep"
    args = ["-m", "hydra/sweeper=optuna", "hydra.sweeper.n_trials=1", "task=maintenance", "agent=fixed_interval"]
    args += ["agent.interval_h=choice(5,500)", "task.max_episode_steps=8", "evaluation.episodes=1", "final.episodes=1"]
    done = subprocess.run(
        [sys.executable, "-m", "experiments.train", *args, f"hydra.sweep.dir={sweep}"], capture_output=True, text=True
    )
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "config error: hydra.sweeper.direction: minimize, but a job returns a mean return, the higher the better; "
        "add hydra.sweeper.direction=maximize (the Optuna sweeper minimises unless told)"
    )
    assert not sweep.exists()


def test_every_job_of_a_sweep_lies_in_the_folder_checked_when_it_started(tmp_path):
    """`hydra.sweep.dir` resolved per job: a sweep over lines put job 1 outside the folder checked, maybe another's."""
    args = ["-m", "line=flow5,flow5_busy", "duration_h=0.1", f"hydra.sweep.dir={tmp_path}/${{line.name}}"]
    done = subprocess.run(
        [sys.executable, "-m", "experiments.simulate", *args, "hydra/launcher=basic"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["flow5"]  # the master config's line, as checked
    assert (tmp_path / "flow5" / "1" / "kpi_table.md").exists()
    assert "line=flow5_busy" in (tmp_path / "flow5" / "1" / ".hydra" / "overrides.yaml").read_text()


def test_a_slurm_sweep_off_a_slurm_machine_is_refused_in_one_line_before_its_folder_is_made(tmp_path):
    """`hydra/launcher=cluster` without `srun` ended in submitit's traceback, not naming the option that chose SLURM."""
    sweep = tmp_path / "sweep"
    no_slurm = {"PATH": str(tmp_path / "bin"), "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "experiments.simulate", "-m", "hydra/launcher=cluster", f"hydra.sweep.dir={sweep}"],
        capture_output=True,
        text=True,
        env=no_slurm,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "config error: hydra/launcher: submits the sweep's jobs to SLURM, but this machine has no `srun` "
        "(it is not a SLURM login node); run it from one, or sweep here with hydra/launcher=joblib or "
        "hydra/launcher=submitit_local"
    )
    assert not sweep.exists()


def test_a_slurm_sweep_where_srun_is_found_passes_the_check(tmp_path, monkeypatch):
    srun = tmp_path / "bin" / "srun"
    srun.parent.mkdir()
    srun.write_text("#!/bin/sh\n")
    srun.chmod(0o755)
    monkeypatch.setenv("PATH", str(srun.parent))
    with initialize_config_module("configs", version_base="1.3"):
        cfg = compose(
            "simulate", ["hydra/launcher=cluster", f"hydra.sweep.dir={tmp_path / 'sweep'}"], return_hydra_config=True
        )
    FreshRunDir().on_multirun_start(cfg)
    assert (tmp_path / "sweep").is_dir()


@pytest.mark.parametrize("launcher", ["basic", "joblib"])
def test_a_sweep_whose_jobs_fail_before_any_work_leaves_no_folder_so_it_can_be_run_again(tmp_path, launcher):
    """Its multirun.yaml and claim stayed, and the corrected command, same folder, was refused as occupied."""
    sweep = tmp_path / "sweep"
    args = [sys.executable, "-m", "experiments.simulate", "-m", f"hydra/launcher={launcher}"]
    args.append(f"hydra.sweep.dir={sweep}")
    failed = subprocess.run([*args, "duration_h=-1,-2"], capture_output=True, text=True)
    assert failed.returncode == 1
    assert "config error: duration_h: must be a positive number, got -" in failed.stderr
    assert not sweep.exists()
    partly = subprocess.run([*args, "duration_h=0.1,-2"], capture_output=True, text=True)
    assert partly.returncode == 1
    assert sorted(p.name for p in sweep.iterdir()) == [".sweep.json", "0", "multirun.yaml"]  # job 0's work stays
    assert (sweep / "0" / "kpi_table.md").exists()
