"""The shipped configuration: Hydra config groups, line definitions and scenarios, found through the package.

Installed or not, the files are read from this package's own folder, never from the current
directory or a source tree, so `pip install .` runs from anywhere.
"""

from __future__ import annotations

from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent


def config_file(group: str, name: str) -> Path:
    """The shipped file `<group>/<name>.yaml` (it may not exist: check with `is_file`)."""
    return CONFIG_DIR / group / f"{name}.yaml"


def options(group: str) -> tuple[str, ...]:
    """Names of the options of config group `group`, sorted: the shipped files, and Hydra's own and its plugins'.

    A `hydra/` group's options are mostly Hydra's and its plugins' (`hydra/launcher=joblib`, the
    Optuna sweeper), which only Hydra's config loader lists; ours (`cluster`) are among them.
    """
    if group.split("/")[0] == "hydra":
        from hydra._internal.config_loader_impl import ConfigLoaderImpl  # Hydra's plugins load with it
        from hydra._internal.utils import create_config_search_path

        loader = ConfigLoaderImpl(config_search_path=create_config_search_path(f"file://{CONFIG_DIR}"))
        return tuple(sorted(loader.get_group_options(group)))
    return tuple(sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml")))
