"""Train an agent on a task of the twin, compare it with the task's heuristic, export the policy.

    python -m experiments.train                                    # the default experiment
    python -m experiments.train experiment=scheduling total_timesteps=50000
    python -m experiments.train -m agent.learning_rate=1e-4,3e-4   # multirun through joblib

Everything a run makes lands in its Hydra output folder: the composed config, TensorBoard events
(`tb/`), checkpoints, the policy artifact (`artifact/`: ONNX network and manifest) and the final
KPI table (`final/`) of the artifact against the heuristic on held-out seeds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from stable_baselines3.common.callbacks import CallbackList, CheckpointCallback
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from agents.artifact import PolicyArtifact
from agents.baselines import make_baseline
from agents.callbacks import HeuristicComparison, HParamLogger, KpiLogger
from agents.export import export_policy
from agents.rollout import Policy, run_episode
from experiments.build import check, is_learner, make_agent, make_env, make_vec_env
from experiments.report import Row, episode_row, markdown_table, verdict, write_reports


def train(cfg: DictConfig, out_dir: Path) -> float:
    """Run one experiment into `out_dir`; return the policy's mean held-out episode return."""
    check(cfg)
    torch.set_num_threads(cfg.torch_threads)
    out_dir.mkdir(parents=True, exist_ok=True)
    heuristic_env = make_env(cfg)
    heuristic = make_baseline(heuristic_env, cfg.task.baseline)
    if not is_learner(cfg):
        policy: Policy = make_baseline(heuristic_env, cfg.agent.name)
        return _final_comparison(cfg, out_dir, str(cfg.agent.name), policy, heuristic)
    venv = make_vec_env(cfg)
    try:
        model = make_agent(cfg, venv, out_dir / "tb")
        normalizer = venv if isinstance(venv, VecNormalize) else None
        callbacks = _callbacks(cfg, out_dir, heuristic, normalizer)
        model.learn(cfg.total_timesteps, callback=callbacks, progress_bar=cfg.progress_bar, tb_log_name="run")
        if normalizer is not None:
            normalizer.save(str(out_dir / "vecnormalize.pkl"))
        artifact_dir = export_policy(
            model,
            out_dir / "artifact",
            vec_normalize=normalizer,
            config=OmegaConf.to_container(cfg, resolve=True),  # type: ignore[arg-type]
            metadata={"task": cfg.task.name, "task_id": cfg.task.id},
        )
        return _final_comparison(cfg, out_dir, "learned", PolicyArtifact.load(artifact_dir), heuristic)
    finally:
        venv.close()
        heuristic_env.close()


def _callbacks(cfg: DictConfig, out_dir: Path, heuristic: Policy, normalizer: VecEnv | None) -> CallbackList:
    ev = cfg.evaluation
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
            HeuristicComparison(
                lambda: make_env(cfg),
                heuristic,
                every_steps=ev.every_steps,
                seeds=[ev.seed + i for i in range(ev.episodes)],
                normalizer=normalizer,
                figures=ev.figures,
            ),
            CheckpointCallback(
                max(cfg.checkpoint_every_steps // cfg.n_envs, 1),
                str(out_dir / "checkpoints"),
                save_vecnormalize=normalizer is not None,
            ),
        ]
    )


def _final_comparison(cfg: DictConfig, out_dir: Path, name: str, policy: Policy, heuristic: Policy) -> float:
    """Evaluate the policy and the heuristic on held-out seeds; print and write the KPI table."""
    env = make_env(cfg)
    seeds = [cfg.final.seed + i for i in range(cfg.final.episodes)]
    baseline_label = f"{cfg.task.baseline} (heuristic)"
    rows: list[Row] = []
    try:
        for label, p in ((name, policy), (baseline_label, heuristic)):
            rows.extend(episode_row(label, str(cfg.scenario.name), run_episode(env, p, s)) for s in seeds)
    finally:
        env.close()
    title = f"{cfg.task.name} on {cfg.line.name}: {name} against {cfg.task.baseline}, {len(seeds)} held-out seeds"
    summary = verdict(rows, name, baseline_label)
    write_reports(rows, out_dir / "final", f"{title}\n\n{summary}")
    print(f"\n{title}\n\n{markdown_table(rows)}\n\n{summary}\nresults in {out_dir}")
    return float(np.mean([r.values["return"] for r in rows if r.policy == name]))


@hydra.main(config_path="../configs", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float:
    """Entry point; returns the objective (mean held-out return) for sweepers."""
    return train(cfg, Path(HydraConfig.get().runtime.output_dir))


if __name__ == "__main__":
    main()
