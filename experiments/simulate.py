"""Simulate a line on the twin with its own rules, print its KPI table and write it to the run folder.

Every decision follows the line's own rule (FIFO dispatch, nominal speed, always run, repair on
failure, its reorder point), whatever levers the line's `control.levers` hands an agent: there is
no agent here to take them.

python -m experiments.simulate                                  # flow5, one week, seed 0
python -m experiments.simulate line=jobshop scenario=breakdown_wave duration_h=48
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from envs.lines import scenario_field
from experiments.errors import ConfigError, one_line_errors, positive_number, run, whole_number
from experiments.line_config import line_definition
from experiments.tables import markdown_table
from hardware import Kpis, Line
from hardware.twin import LineDefinitionError, TwinLine

log = logging.getLogger(__name__)

_UNITS = {
    "throughput_per_h": "parts/h",
    "wip_parts": "parts",
    "wip_mean_parts": "parts",
    "flow_time_mean_s": "s",
    "energy_kwh": "kWh",
    "co2_kg": "kg",
    "co2_kg_per_good_part": "kg",
    "busy_time_s": "s",
    "changeover_time_s": "s",
    "planned_downtime_s": "s",
    "unplanned_downtime_s": "s",
    "stockout_time_s": "s",
    "material_ordered": "units",
    "material_received": "units",
    "tardiness_s": "s",
    "last_completion_s": "s",
}


def kpi_table(kpis: Kpis, title: str) -> str:
    """Format KPI counters as a two-column Markdown table headed by `title`, values with their units."""
    rows = []
    for name in Kpis.names():
        value = getattr(kpis, name)
        if isinstance(value, float) and math.isnan(value):  # a cost per part over a window without a part
            rows.append([name, "n/a (no good part)"])
            continue
        shown = f"{value:,}" if isinstance(value, int) else f"{value:,.3f}"
        rows.append([name, f"{shown} {_UNITS.get(name, '')}".rstrip()])
    return markdown_table([title, "value"], rows)


def title_of(cfg: DictConfig) -> str:
    """The table's title: line, scenario, horizon and seed."""
    return f"{cfg.line.name}, scenario {cfg.scenario.name}, {cfg.duration_h:g} h, seed {cfg.seed}"


def simulate(cfg: DictConfig) -> Kpis:
    """Run the configured line by its own rules for `cfg.duration_h` hours from its episode's start; return its KPIs."""
    whole_number("seed", cfg.seed, least=0)
    positive_number("duration_h", cfg.duration_h)
    scenarios = OmegaConf.to_container(cfg.scenario.events, resolve=True)
    try:
        line: Line = TwinLine.from_definition(
            line_definition(cfg.line), seed=cfg.seed, scenarios=scenarios, control={"levers": []}
        )
    except LineDefinitionError as exc:  # the message names the line file, or the scenario event, and the field
        field = scenario_field(exc)  # of the scenario group's events, put in place of the line's own
        where = str(exc) if field is None else f"scenario.events{field} (scenario={cfg.scenario.name})"
        raise ConfigError(where) from exc
    try:
        frame = line.reset()  # the start of the episode: time 0, or after the line's warm-up
        horizon_s = frame.time + cfg.duration_h * 3600.0
        while frame.time < horizon_s:
            frame = line.advance(horizon_s - frame.time)
        return frame.kpis
    finally:
        line.close()


@hydra.main(config_path="pkg://configs", config_name="simulate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    """Entry point: simulate, print the KPI table and write it as `kpi_table.md` into the run folder."""
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    with one_line_errors(run_dir):
        kpis = simulate(cfg)
    table = kpi_table(kpis, title_of(cfg))
    path = run_dir / "kpi_table.md"
    path.write_text(f"{table}\n")
    log.info("%s\n\nwritten: %s", table, path)


if __name__ == "__main__":
    run(main)
