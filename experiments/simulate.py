"""Simulate a line on the twin with its own rules and print its KPI table.

python -m experiments.simulate                                  # flow5, one week, seed 0
python -m experiments.simulate line=jobshop scenario=breakdown_wave duration_h=48
"""

from __future__ import annotations

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from hardware import Kpis, Line

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
    """Format KPI counters as a two-column Markdown table."""
    rows = [f"| {title} | value |", "|---|---:|"]
    for name in Kpis.names():
        value = getattr(kpis, name)
        shown = f"{value:,}" if isinstance(value, int) else f"{value:,.3f}"
        unit = _UNITS.get(name, "")
        rows.append(f"| {name} | {shown} {unit} |".replace("  |", " |"))
    return "\n".join(rows)


def simulate(cfg: DictConfig) -> Kpis:
    """Run the configured line for `cfg.duration_h` hours of line clock and return its KPIs."""
    scenarios = OmegaConf.to_container(cfg.scenario.events, resolve=True)
    line: Line = instantiate(cfg.line, seed=cfg.seed, scenarios=scenarios)
    try:
        line.reset()
        horizon_s = cfg.duration_h * 3600.0
        frame = line.read()
        while frame.time < horizon_s:
            frame = line.advance(horizon_s - frame.time)
        return frame.kpis
    finally:
        line.close()


@hydra.main(config_path="../configs", config_name="simulate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    """Entry point: simulate and print the KPI table."""
    kpis = simulate(cfg)
    print(kpi_table(kpis, f"{cfg.line.name}, {cfg.duration_h:g} h, seed {cfg.seed}"))


if __name__ == "__main__":
    main()
