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
    """Names of the shipped options of config group `group`, sorted."""
    return tuple(sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml")))
