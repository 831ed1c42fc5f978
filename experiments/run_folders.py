"""A run writes into a folder of its own: an entry point refuses a run or sweep folder that already holds files.

Hydra writes the new run's `.hydra/` config into the folder before the job starts, so a second run
told to use an existing folder (`hydra.run.dir=outputs/same`) overwrote the first one's config and
mixed its checkpoints, TensorBoard runs, model and tables with the first one's. `FreshRunDir`, a
Hydra callback every entry point's config names, checks before Hydra writes anything, and ends the
process with one line on stderr and status 1 (Hydra turns a callback's exception into a warning;
only an exit stops the run). The default folders are named to the microsecond and never exist yet;
an empty folder is accepted.

In a sweep each job claims its folder when it starts (`JOB_CLAIM`, written whole or not at all), so
that a `hydra.sweep.subdir` that names two jobs alike (`seed${seed}` over a sweep of learning rates)
is found: the second job puts back the first one's `.hydra/` config, which Hydra had just
overwritten, and ends the sweep with one line naming both jobs. The sweep's folder is the one
checked when it starts, claimed by that sweep alone (`SWEEP_CLAIM`) and named to every job as it
resolved then, whatever a job's own config would resolve it to.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from experiments.errors import JOB_CLAIM, SWEEP_CLAIM, ConfigError, sweep_claimed

_SHOWN = 5  # entries of an occupied folder named in the error
_SLURM_LAUNCHER = ".SlurmLauncher"  # the class name of hydra-submitit-launcher's SLURM launcher


class FreshRunDir(Callback):
    """Refuse a run (`hydra.run.dir`) or sweep (`hydra.sweep.dir`) folder that is not empty."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Before a single run: its folder must be new or empty, else the process exits."""
        _exit_unless_fresh(config, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Before a sweep: its folder (one subfolder per job) must be new or empty, else the process exits.

        So too when an optimising sweeper (Optuna's) would minimise, what a job returns being a mean
        return, or sweeps `experiments.tune`, which returns nothing to optimise. The sweep then claims
        the folder (`SWEEP_CLAIM`), and every job is kept in it: Hydra composes each job's config
        anew, so `${task.name}` in `hydra.sweep.dir` resolved to each job's task and a sweep over
        tasks wrote outside the folder checked, into one another sweep had claimed.
        """
        _exit_unless_maximised(config)
        _exit_unless_launchable(config)
        folder = _exit_unless_fresh(config, "hydra.sweep.dir")
        _claim_sweep(config, folder)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        """A sweep's job claims its folder; one whose folder another job has puts that job's config back and exits.

        A job started again in its own folder (requeued after a preemption or a timeout) finds its
        own claim and goes on.
        """
        if config.hydra.mode != RunMode.MULTIRUN:
            return
        folder = Path(config.hydra.runtime.output_dir)
        mine: dict[str, Any] = {"job": int(config.hydra.job.num), "overrides": list(config.hydra.overrides.task)}
        claim = folder / JOB_CLAIM
        draft = folder / f"{JOB_CLAIM}.{os.getpid()}"
        draft.write_text(json.dumps({**mine, "files": _hydra_files(config)}))
        try:
            os.link(draft, claim)  # atomic, and refused if the claim exists: it is read whole or not at all
        except FileExistsError:
            first = json.loads(claim.read_text())
            if (first["job"], first["overrides"]) == (mine["job"], mine["overrides"]):
                return  # this job, started again (a cluster launcher requeues a preempted job into its folder)
            _put_back(config, first["files"])
            sys.exit(
                f"config error: hydra.sweep.subdir: jobs {first['job']} and {mine['job']} "
                f"({_apart(first['overrides'], mine['overrides'])}) resolve to one folder, {folder}; each job "
                "needs a folder of its own, so that its config, checkpoints and tables are not mixed with "
                "another's (the default `${hydra.job.num}` gives one)"
            )
        finally:
            draft.unlink()


def _exit_unless_maximised(config: DictConfig) -> None:
    """Exit with one line if the sweeper has a direction (Optuna's) other than `maximize`, or sweeps tune.

    The Optuna plugin minimises unless told otherwise, and a primary config cannot change its
    default (Hydra refuses a file named like a plugin's config that has a defaults list), so the
    best setting it reported was the worst.
    """
    direction = OmegaConf.select(config, "hydra.sweeper.direction")
    if direction is None:
        return
    if config.hydra.job.name == "tune":  # it returns nothing to optimise: every trial ran, then a traceback
        sys.exit(
            "config error: hydra/sweeper: experiments.tune ranks its grid itself (tune.grid) and returns no "
            "objective; sweep it with the default sweeper (-m over tune.seed, task settings, ...)"
        )
    named = getattr(direction, "name", direction)
    if named != "maximize":
        sys.exit(
            f"config error: hydra.sweeper.direction: {named}, but a job returns a mean return, the higher the "
            "better; add hydra.sweeper.direction=maximize (the Optuna sweeper minimises unless told)"
        )


def _exit_unless_launchable(config: DictConfig) -> None:
    """Exit with one line if the launcher submits to SLURM and this machine cannot: no `srun` on the PATH.

    submitit's SLURM executor refuses such a machine only once the sweep is launched, with a
    traceback that does not say which option chose SLURM or what to run instead.
    """
    target = str(OmegaConf.select(config, "hydra.launcher._target_", default=""))
    if target.endswith(_SLURM_LAUNCHER) and shutil.which("srun") is None:
        sys.exit(
            "config error: hydra/launcher: submits the sweep's jobs to SLURM, but this machine has no `srun` "
            "(it is not a SLURM login node); run it from one, or sweep here with hydra/launcher=joblib "
            "or hydra/launcher=submitit_local"
        )


def _apart(first: list[str], second: list[str]) -> str:
    """What tells two jobs' overrides apart, e.g. `lr=0.1` against `lr=0.2`."""
    a, b = [o for o in first if o not in second], [o for o in second if o not in first]
    return f"{' '.join(a) or 'nothing'} against {' '.join(b) or 'nothing'}" if a or b else "the same overrides"


def _hydra_files(config: DictConfig) -> dict[str, str]:
    """The files Hydra writes into a job's `.hydra/` folder, by name, as it writes them (none without one)."""
    if config.hydra.output_subdir is None:
        return {}
    task = copy.deepcopy(config)
    with read_write(task), open_dict(task):
        del task["hydra"]
    return {
        "config.yaml": OmegaConf.to_yaml(task),
        "hydra.yaml": OmegaConf.to_yaml(HydraConfig.instance().cfg),
        "overrides.yaml": OmegaConf.to_yaml(config.hydra.overrides.task),
    }


def _put_back(config: DictConfig, files: dict[str, str]) -> None:
    """Write `files` (`_hydra_files` of the job that claimed the folder) over the `.hydra/` Hydra wrote for this one."""
    if config.hydra.output_subdir is None:
        return
    folder = Path(config.hydra.runtime.output_dir) / str(config.hydra.output_subdir)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")


def _exit_unless_fresh(config: DictConfig, key: str) -> Path:
    """The folder at `key` of `config`; exit with one line unless it is fresh, or if it cannot be told."""
    try:
        HydraConfig.instance().set_config(config)  # as the run will: `${hydra:...}` in the folder resolves
        folder = Path(str(OmegaConf.select(config, key, throw_on_missing=True)))
        check_fresh(key, folder)
    except ConfigError as exc:
        sys.exit(f"config error: {exc}")
    except Exception as exc:  # Hydra would only warn and run on into a folder nobody checked
        sys.exit(f"config error: {key}: cannot be resolved before the run to check it is a new folder ({exc})")
    return folder


def _claim_sweep(config: DictConfig, folder: Path) -> None:
    """Claim the sweep's folder, checked fresh, and keep every job of the sweep in it.

    The claim is created only if no other sweep made one since the check, so two sweeps started
    together into one folder never take each other's jobs for their own started again. The folder
    goes into Hydra's own overrides, from which each job's config is composed (`hydra.sweep.dir`
    named literally, as it resolved here), by every launcher, in this process or another.
    """
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with (folder / SWEEP_CLAIM).open("x", encoding="utf-8") as claim:
            json.dump({"pid": os.getpid(), "overrides": list(config.hydra.overrides.task)}, claim)
    except FileExistsError:
        sys.exit(f"config error: hydra.sweep.dir: {folder} was claimed by another sweep started at the same time")
    sweep_claimed(folder)
    quoted = str(folder).replace("\\", "\\\\").replace("'", "\\'")
    hydra_overrides = [o for o in config.hydra.overrides.hydra if not str(o).startswith("hydra.sweep.dir=")]
    with read_write(config.hydra.overrides):
        config.hydra.overrides.hydra = [*hydra_overrides, f"hydra.sweep.dir='{quoted}'"]


def check_output(key: str, folder: Path, run_dir: Path | None) -> None:
    """Nothing if `folder` is the run's own folder `run_dir` (checked before Hydra wrote into it), new or empty.

    An output folder named on the command line (`out_dir=`, `out=`) is not the run folder that
    `FreshRunDir` checks: one that held another run's tables got this run's mixed in.

    Raises:
        ConfigError: as `check_fresh`.
    """
    if run_dir is None or folder.resolve() != run_dir.resolve():
        check_fresh(key, folder)


def check_fresh(key: str, folder: Path) -> None:
    """Nothing, if `folder` does not exist or is empty.

    Raises:
        ConfigError: `folder` is a file, or a folder that holds files (named, `key` first).
    """
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{key}: {folder} is a file; a run needs a folder of its own")
    entries = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    if entries:
        shown = ", ".join(entries[:_SHOWN]) + (", ..." if len(entries) > _SHOWN else "")
        raise ConfigError(
            f"{key}: {folder} already holds files ({shown}); a run needs a folder of its own, so that "
            "its config, checkpoints and tables are not mixed with another run's (name a new folder; a run's "
            "own folder, left to its default, is named to the microsecond)"
        )
