"""Each run of an entry point gets a folder of its own under its name, even when several start in one second."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

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
