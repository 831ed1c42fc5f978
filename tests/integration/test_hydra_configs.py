"""The config groups compose and instantiate; the main job runs through Hydra for real."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException, InstantiationException
from hydra.utils import instantiate
from omegaconf import OmegaConf

from experiments.simulate import simulate
from hardware import Line
from tests.lines import REPO

CONFIGS = str(REPO / "configs")
LINES = sorted(p.stem for p in (REPO / "configs" / "line").glob("*.yaml"))
SCENARIOS = sorted(p.stem for p in (REPO / "configs" / "scenario").glob("*.yaml"))


@pytest.mark.parametrize("line", LINES)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_line_and_scenario_instantiates(line, scenario):
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        cfg = compose("simulate", overrides=[f"line={line}", f"scenario={scenario}"])
    events = OmegaConf.to_container(cfg.scenario.events)
    twin = instantiate(cfg.line, seed=0, scenarios=events)
    assert isinstance(twin, Line)
    assert len(twin.params.scenarios) == len(events)
    frame = twin.reset()
    assert frame.time == 0.0


def test_simulate_reproduces_the_direct_run():
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        cfg = compose("simulate", overrides=["duration_h=24", "seed=3", "scenario=price_spike"])
    from hardware.twin import TwinLine

    direct = TwinLine.from_yaml(
        REPO / "configs/line/flow5.yaml", seed=3, scenarios=OmegaConf.to_container(cfg.scenario.events)
    )
    direct.reset()
    assert simulate(cfg) == direct.advance(24 * 3600.0).kpis


def test_bad_override_names_the_key():
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        with pytest.raises(ConfigCompositionException, match="line/flow6"):
            compose("simulate", overrides=["line=flow6"])
        cfg = compose("simulate", overrides=["line.stations.1.buffer_capacity_parts=0"])
    with pytest.raises(InstantiationException, match=r"flow5'?: stations\[1\]\.buffer_capacity_parts: must be >= 1"):
        simulate(cfg)


@pytest.mark.slow
def test_main_job_prints_the_kpi_table(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "experiments.simulate", f"hydra.run.dir={tmp_path}", "duration_h=48"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    rows = dict(
        (cells[1].strip(), cells[2].strip())
        for cells in (line.split("|") for line in result.stdout.splitlines()[2:])
        if len(cells) > 3
    )
    assert result.stdout.startswith("| flow5, 48 h, seed 0 |")
    assert int(rows["good_parts"].replace(",", "")) > 1000
    assert float(rows["oee"]) > 0.3
    assert (tmp_path / ".hydra" / "config.yaml").exists()
