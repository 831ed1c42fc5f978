"""The config groups compose and instantiate; the main job runs through Hydra for real."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException, InstantiationException
from hydra.utils import instantiate
from omegaconf import OmegaConf

from configs import CONFIG_DIR, config_file, options
from experiments.errors import ConfigError
from experiments.simulate import kpi_table, simulate
from hardware import Kpis, Line
from hardware.twin import TwinLine

CONFIGS = str(CONFIG_DIR)


def compose_simulate(*overrides: str):
    """The `simulate` job's config, composed from the installed `configs` package."""
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        return compose("simulate", overrides=list(overrides))


def direct_kpis(line: str, seed: int, hours: float, scenario: str = "none") -> Kpis:
    """KPIs of a line file run by hand, without Hydra, for `hours` of line clock."""
    events = OmegaConf.to_container(compose_simulate(f"scenario={scenario}").scenario.events)
    twin = TwinLine.from_yaml(config_file("line", line), seed=seed, scenarios=events)
    frame = twin.reset()
    while frame.time < hours * 3600.0:
        frame = twin.advance(hours * 3600.0 - frame.time)
    return frame.kpis


def test_shipped_options_are_found_through_the_package():
    assert {"flow5", "jobshop"} <= set(options("line"))
    assert {"none", "price_spike", "breakdown_wave"} <= set(options("scenario"))
    assert config_file("line", "flow5").is_file()
    assert not config_file("line", "flow6").is_file()


@pytest.mark.parametrize("line", options("line"))
@pytest.mark.parametrize("scenario", options("scenario"))
def test_every_line_and_scenario_instantiates(line, scenario):
    cfg = compose_simulate(f"line={line}", f"scenario={scenario}")
    events = OmegaConf.to_container(cfg.scenario.events)
    if scenario == "demand_surge" and cfg.line.demand.arrival_rate_per_h == 0:
        with pytest.raises(InstantiationException, match=r"scenarios\[0\]\.kind: a demand_surge scales open arrivals"):
            instantiate(cfg.line, seed=0, scenarios=events)  # a fixed job set has no arrivals to scale
        return
    twin = instantiate(cfg.line, seed=0, scenarios=events)
    assert isinstance(twin, Line)
    assert [e.kind.value for e in twin.params.scenarios] == [e["kind"] for e in events]
    assert twin.spec.name == cfg.line.name
    frame = twin.reset()
    assert frame.time == 0.0


def test_simulate_reproduces_the_direct_run():
    cfg = compose_simulate("duration_h=24", "seed=3", "scenario=price_spike")
    kpis = simulate(cfg)
    assert kpis == direct_kpis("flow5", seed=3, hours=24.0, scenario="price_spike")
    assert kpis != direct_kpis("flow5", seed=3, hours=24.0), "the scenario must reach the twin"


def test_simulate_runs_every_lever_by_the_lines_own_rules():
    cfg = compose_simulate("duration_h=6", "seed=3", "line.control.levers=[dispatch,speed]")
    assert simulate(cfg) == direct_kpis("flow5", seed=3, hours=6.0)  # no agent: nothing to dispatch, nominal speed


def test_bad_override_names_the_key():
    with pytest.raises(ConfigCompositionException, match="line/flow6"):
        compose_simulate("line=flow6")
    cfg = compose_simulate("line.stations.1.buffer_capacity_parts=0")
    with pytest.raises(ConfigError, match=r"flow5'?: stations\[1\]\.buffer_capacity_parts: must be >= 1"):
        simulate(cfg)  # a config error, printed as one line (it was a 40-line traceback)
    spike = compose_simulate("scenario=price_spike", "scenario.events.0.factor=-2")
    with pytest.raises(ConfigError, match=r"^scenario\.events\[0\]\.factor: must be >= 0 .* \(scenario=price_spike\)$"):
        simulate(spike)  # the scenario's event, not the line file it replaces the list of
    with pytest.raises(ConfigError, match=r"^seed: must be a whole number >= 0, got -1"):
        simulate(compose_simulate("seed=-1"))
    with pytest.raises(ConfigError, match=r"^duration_h: must be a positive number, got -1"):
        simulate(compose_simulate("duration_h=-1"))


def test_simulate_runs_a_users_line_file_as_train_does_without_hydra_keys(flow5_definition):
    cfg = compose_simulate("duration_h=24", "seed=3")
    plain = {k: v for k, v in flow5_definition.items() if not k.startswith("_")}  # no `_target_`, `_convert_`
    cfg.line = OmegaConf.create(plain)  # a line file as `TwinLine.from_yaml` reads it
    assert simulate(cfg) == direct_kpis("flow5", seed=3, hours=24.0)


def printed_kpis(stdout: str) -> dict[str, float]:
    """The KPI table printed by `experiments.simulate`, as numbers by KPI name."""
    rows: dict[str, float] = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0] in Kpis.names():
            rows[cells[0]] = float(cells[1].split()[0].replace(",", ""))
    return rows


@pytest.mark.slow
def test_main_job_prints_the_direct_runs_kpis_from_any_folder(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "experiments.simulate", f"hydra.run.dir={tmp_path / 'run'}", "duration_h=48"],
        cwd=tmp_path,  # not the source tree: the configs must come from the package
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "flow5" in result.stdout
    assert "48 h" in result.stdout
    shown = printed_kpis(result.stdout)
    assert set(shown) == set(Kpis.names())
    expected = direct_kpis("flow5", seed=0, hours=48.0)
    for name in Kpis.names():
        assert shown[name] == pytest.approx(getattr(expected, name), abs=5e-4), name
    assert (tmp_path / "run" / ".hydra" / "config.yaml").exists()


def test_the_simulate_table_says_a_cost_per_part_is_undefined_without_a_part():
    table = kpi_table(Kpis(energy_kwh=1.5, energy_cost=0.3), "no part yet")
    assert "| energy_cost_per_good_part | n/a (no good part) |" in table  # it printed `nan`
    assert "| energy_cost | 0.300 |" in table
