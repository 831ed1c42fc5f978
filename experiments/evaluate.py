"""Evaluate exported artifacts and heuristics side by side over seeds and scenarios.

    python -m experiments.evaluate 'policies=[outputs/train/Speed/<run>/artifact,nominal_speed]'
    python -m experiments.evaluate task=scheduling line=flow5_orders 'policies=[fifo,spt,mwkr]' episodes=20
    python -m experiments.evaluate 'policies=[<artifact>,nominal_speed]' 'scenarios=[none,price_spike]'

Prints the KPI table (mean and 95% interval per policy and scenario) and writes it as Markdown,
the raw episodes and the summary as CSV, and one PNG plot per metric into the run's folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from agents.rollout import run_episode
from experiments.build import ConfigError, load_policy, make_env
from experiments.report import Row, episode_row, markdown_table, write_reports


def evaluation_config(cfg: DictConfig) -> DictConfig:
    """The config to build envs from: the first artifact's own, else the composed one."""
    manifests = [Path(p) / "manifest.json" for p in cfg.policies if (Path(p) / "manifest.json").is_file()]
    if not manifests:
        return cfg
    configs = [OmegaConf.create(json.loads(m.read_text())["config"]) for m in manifests]
    tasks = {c.task.name for c in configs}
    if len(tasks) > 1:
        raise ConfigError(f"policies: the artifacts were trained on different tasks {sorted(tasks)}")
    return configs[0]


def evaluate(cfg: DictConfig, out_dir: Path) -> list[Row]:
    """Run every policy on every scenario for `cfg.episodes` seeds; write and return the rows."""
    if not cfg.policies:
        raise ConfigError("policies: name at least one artifact folder or heuristic, e.g. 'policies=[fifo,spt]'")
    run_cfg = evaluation_config(cfg)
    seeds = [cfg.seed + i for i in range(cfg.episodes)]
    rows: list[Row] = []
    for scenario in cfg.scenarios:
        env = make_env(run_cfg, scenario=scenario)
        try:
            policies = [load_policy(str(spec), env) for spec in cfg.policies]
            for name, policy in policies:
                rows.extend(episode_row(name, scenario, run_episode(env, policy, s)) for s in seeds)
        finally:
            env.close()
    title = f"{run_cfg.task.name} on {run_cfg.line.name}, {len(seeds)} seeds from {cfg.seed}"
    paths = write_reports(rows, out_dir, title)
    print(f"{title}\n\n{markdown_table(rows)}\n\nwritten: {', '.join(str(p) for p in paths.values())}")
    return rows


@hydra.main(config_path="../configs", config_name="evaluate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    """Entry point."""
    evaluate(cfg, Path(cfg.out_dir) if cfg.out_dir else Path(HydraConfig.get().runtime.output_dir))


if __name__ == "__main__":
    main()
