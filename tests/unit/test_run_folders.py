"""Each run of an entry point gets a folder of its own, even when several start in the same second."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

STAMP = re.compile(r"\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}_\d{6}")  # date, time and microseconds


@pytest.mark.parametrize(
    ("entry", "folders"),
    [
        ("train", ("run", "sweep")),
        ("tune", ("run", "sweep")),
        ("evaluate", ("run",)),
        ("robustness", ("run",)),
        ("simulate", ("run",)),
        ("jssp_gaps", ("run",)),
    ],
)
def test_run_folders_are_named_to_the_microsecond(entry, folders):
    """Two seeds launched in the same second once wrote into one folder, each overwriting the other's checkpoint."""
    with initialize_config_module("configs", version_base="1.3"):
        cfg = compose(entry, return_hydra_config=True)
    for folder in folders:
        name = Path(cfg.hydra[folder].dir).name
        assert STAMP.fullmatch(name), f"{entry}: hydra.{folder}.dir ends in {name!r}"
