"""A run writes into a folder of its own: an entry point refuses a run or sweep folder that already holds files.

Hydra writes the new run's `.hydra/` config into the folder before the job starts, so a second run
told to use an existing folder (`hydra.run.dir=outputs/same`) overwrote the first one's config and
mixed its checkpoints, TensorBoard runs, model and tables with the first one's. `FreshRunDir`, a
Hydra callback every entry point's config names, checks before Hydra writes anything, and ends the
process with one line on stderr and status 1 (Hydra turns a callback's exception into a warning;
only an exit stops the run). The default folders are named to the microsecond and never exist yet;
an empty folder is accepted.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from experiments.errors import ConfigError

_SHOWN = 5  # entries of an occupied folder named in the error


class FreshRunDir(Callback):
    """Refuse a run (`hydra.run.dir`) or sweep (`hydra.sweep.dir`) folder that is not empty."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Before a single run: its folder must be new or empty, else the process exits."""
        _exit_unless_fresh(config, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Before a sweep: its folder (one subfolder per job) must be new or empty, else the process exits."""
        _exit_unless_fresh(config, "hydra.sweep.dir")


def _exit_unless_fresh(config: DictConfig, key: str) -> None:
    """Exit with one line unless the folder at `key` of `config` is fresh, or if it cannot be told."""
    try:
        HydraConfig.instance().set_config(config)  # as the run will: `${hydra:...}` in the folder resolves
        folder = Path(str(OmegaConf.select(config, key, throw_on_missing=True)))
        check_fresh(key, folder)
    except ConfigError as exc:
        sys.exit(f"config error: {exc}")
    except Exception as exc:  # Hydra would only warn and run on into a folder nobody checked
        sys.exit(f"config error: {key}: cannot be resolved before the run to check it is a new folder ({exc})")


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
            "its config, checkpoints and tables are not mixed with another run's (leave it to its default, "
            "named to the microsecond, or name a new folder)"
        )
