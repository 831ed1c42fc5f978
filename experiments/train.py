"""Train an agent on a task of the twin, compare it with the task's heuristic, export the policy.

    python -m experiments.train                                    # the default experiment
    python -m experiments.train experiment=scheduling total_timesteps=50000
    python -m experiments.train -m agent.learning_rate=1e-4,3e-4   # multirun through joblib

Everything a run makes lands in its Hydra output folder: the composed config, TensorBoard events
(`tb/`), checkpoints, the policy artifact (`artifact/`: ONNX network and manifest) and the final
KPI table (`final/`) of the artifact against the heuristic on held-out seeds, per episode and over
`final.continuing_days` of continuing operation without reset. What the run prints also goes to
its log, `train.log`. A run stopped by a config error before training leaves no folder behind.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import CallbackList, CheckpointCallback
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from agents.artifact import MANIFEST_FILE, PolicyArtifact
from agents.callbacks import HeuristicComparison, HParamLogger, KpiLogger
from agents.export import export_policy
from agents.rollout import Policy
from agents.warm_start import clone, collect
from experiments.build import (
    check,
    heuristic_agent,
    heuristics,
    is_learner,
    is_trainer,
    make_agent,
    make_env,
    make_vec_env,
    tuned_baseline,
    warm_start_heuristic,
)
from experiments.comparison import compare, run_rows, runs_on
from experiments.errors import one_line_errors, run
from experiments.report import kpi_table, verdict, write_reports
from experiments.run_settings import check_overrides

log = logging.getLogger(__name__)


def train(cfg: DictConfig, out_dir: Path) -> float:
    """Run one experiment into `out_dir`; return the objective a sweeper maximises.

    The objective is the policy's mean return on the evaluation seeds (`evaluation.seed`), never
    on the held-out seeds of the final table, so a sweep does not tune on what it reports. A
    heuristic agent (a sweep tunes its parameters, `agent.interval_h=...`) returns its mean return
    on `evaluation.episodes` of those seeds; a trainer of its own (an
    `agent` class with `fit(cfg, out_dir)`, such as self-labelling) runs the whole experiment and
    returns its own objective; if it exported a policy artifact (`out_dir / "artifact"`, as random
    search does), the final table compares that artifact with the heuristics.
    """
    check(cfg)
    torch.set_num_threads(cfg.torch_threads)
    out_dir.mkdir(parents=True, exist_ok=True)
    if is_trainer(cfg):
        objective = float(instantiate(cfg.agent, _convert_="all").fit(cfg, out_dir))
        if (out_dir / "artifact" / MANIFEST_FILE).is_file():  # a trainer that exports a policy artifact
            exported = PolicyArtifact.load(out_dir / "artifact")
            _final_comparison(cfg, out_dir, "learned", lambda env: exported)
        return objective
    if not is_learner(cfg):
        name = str(cfg.agent.name)
        _final_comparison(cfg, out_dir, name, lambda env: heuristic_agent(cfg, env))
        ev = cfg.evaluation
        seeds = [ev.seed + i for i in range(ev.episodes)]
        rows = run_rows(cfg, lambda env: [(name, heuristic_agent(cfg, env))], None, str(cfg.scenario.name), seeds)
        return float(np.mean([r.values["return"] for r in rows]))
    venv = make_vec_env(cfg)
    try:
        model = make_agent(cfg, venv, out_dir / "tb")
        _warm_start(cfg, model, venv)
        normalizer = venv if isinstance(venv, VecNormalize) else None
        comparison = _comparison(cfg, normalizer)
        callbacks = _callbacks(cfg, out_dir, comparison, normalizer)
        model.learn(cfg.total_timesteps, callback=callbacks, progress_bar=cfg.progress_bar, tb_log_name="run")
        model.save(out_dir / "model.zip")  # SB3's own save of the trained model, beside its artifact
        if normalizer is not None:
            normalizer.save(str(out_dir / "vecnormalize.pkl"))
        artifact_dir = export_policy(
            model,
            out_dir / "artifact",
            vec_normalize=normalizer,
            config=OmegaConf.to_container(cfg, resolve=True),  # type: ignore[arg-type]
            metadata={"task": cfg.task.name, "task_id": cfg.task.id},
        )
        artifact = PolicyArtifact.load(artifact_dir)
        _final_comparison(cfg, out_dir, "learned", lambda env: artifact)
        return comparison.last_mean_reward
    finally:
        venv.close()


def _warm_start(cfg: DictConfig, model: BaseAlgorithm, venv: VecEnv) -> None:
    """Clone `cfg.warm_start.heuristic` (tuned as `cfg.heuristics` says) into the policy, if configured."""
    name = warm_start_heuristic(cfg)
    if name is None:
        return
    ws = cfg.warm_start
    env = make_env(cfg)
    try:
        gamma = float(getattr(model, "gamma", 0.99))
        demos = collect(venv, tuned_baseline(cfg, env, name), ws.steps, gamma, float(ws.noise), seed=cfg.seed)
    finally:
        env.close()
    result = clone(model, demos, ws.epochs, ws.batch_size, float(ws.learning_rate), seed=cfg.seed)
    log.info(
        "warm start from %s: %d env steps, action loss %.4g, value loss %.4g",
        name,
        result.steps,
        result.action_loss,
        result.value_loss,
    )


def _comparison(cfg: DictConfig, normalizer: VecEnv | None) -> HeuristicComparison:
    ev = cfg.evaluation
    return HeuristicComparison(
        lambda: make_env(cfg),
        lambda env: tuned_baseline(cfg, env, cfg.task.baseline),
        every_steps=ev.every_steps,
        seeds=[ev.seed + i for i in range(ev.episodes)],
        normalizer=normalizer,
        figures=ev.figures,
    )


def _callbacks(
    cfg: DictConfig, out_dir: Path, comparison: HeuristicComparison, normalizer: VecEnv | None
) -> CallbackList:
    hparams: dict[str, Any] = {
        "task": cfg.task.name,
        "agent": str(cfg.agent._target_).rsplit(".", 1)[-1],
        "line": str(cfg.line.name),
        "seed": cfg.seed,
        "total_timesteps": cfg.total_timesteps,
        "n_envs": cfg.n_envs,
        "normalize": bool(cfg.normalize.enabled),
    }
    for key, value in cfg.agent.items():
        if isinstance(value, int | float | str | bool) and not str(key).startswith("_"):
            hparams[f"agent.{key}"] = value
    return CallbackList(
        [
            KpiLogger(),
            HParamLogger(hparams),
            comparison,
            CheckpointCallback(
                max(cfg.checkpoint_every_steps // cfg.n_envs, 1),
                str(out_dir / "checkpoints"),
                save_vecnormalize=normalizer is not None,
            ),
        ]
    )


def _final_comparison(
    cfg: DictConfig, out_dir: Path, name: str, make_policy: Callable[[gym.Env[Any, Any]], Policy]
) -> None:
    """Evaluate the policy and every heuristic (`cfg.heuristics`) on held-out seeds; log and write the KPI table."""
    labels = {h: f"{h} (heuristic)" for h in heuristics(cfg)}
    final = cfg.final
    rows, note = compare(
        cfg,
        lambda env: [(name, make_policy(env)), *((labels[h], tuned_baseline(cfg, env, h)) for h in labels)],
        None,
        str(cfg.scenario.name),
        [final.seed + i for i in range(final.episodes)],
        final.continuing_days,
        final.continuing_seeds,
    )
    title = f"{cfg.task.name} on {runs_on(cfg)}: {name} against {', '.join(labels)}, {final.episodes} held-out seeds"
    pairs = [(name, label) for label in labels.values()]
    summary = "\n".join(verdict(rows, name, label) for label in labels.values()) + (f"\n{note}" if note else "")
    write_reports(rows, out_dir / "final", f"{title}\n\n{summary}", pairs=pairs)
    log.info("\n%s\n\n%s\n\n%s\nresults in %s", title, kpi_table(rows), summary, out_dir)


@hydra.main(config_path="pkg://configs", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float:
    """Entry point; returns the objective (see `train`: the evaluation seeds' mean return) for sweepers."""
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    with one_line_errors(out_dir):
        check_overrides(cfg, HydraConfig.get().overrides.task)
        return train(cfg, out_dir)


if __name__ == "__main__":
    run(main)
