"""Composing the shipped configs and the overrides of a tiny training run, shared by the preset tests."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from agents.artifact import PolicyArtifact
from experiments.build import make_env
from experiments.report import EPISODE
from experiments.train import train
from tests.lines import REPO

CONFIGS = str(REPO / "configs")
# A few hundred PPO steps, one final episode, no continuing run: enough to run a preset end to end.
TINY_RUN = (
    "total_timesteps=256",
    "n_envs=1",
    "agent.n_steps=128",
    "agent.batch_size=64",
    "agent.n_epochs=1",
    "evaluation.every_steps=128",
    "evaluation.episodes=1",
    "evaluation.figures=false",
    "checkpoint_every_steps=256",
    "final.episodes=1",
    "final.continuing_seeds=0",
    "progress_bar=false",
    "warm_start.steps=64",
    "warm_start.epochs=1",
)


def compose_train(overrides: Sequence[str]) -> DictConfig:
    """The `train` config composed with `overrides`, as `python -m experiments.train` would."""
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        return compose("train", overrides=list(overrides))


def train_tiny_preset(preset: str, run: Path, overrides: Sequence[str]) -> list[dict[str, str]]:
    """Train `experiment=<preset>` with `overrides` into `run`; check its artifact acts in the env's action space.

    Returns the final table's per-episode rows (`final/episodes.csv`).
    """
    cfg = compose_train([f"experiment={preset}", *overrides])
    train(cfg, run)
    artifact = PolicyArtifact.load(run / "artifact")
    env = make_env(cfg)
    try:
        obs, _ = env.reset(seed=20_000)
        for _ in range(5):
            action, _ = artifact.predict(obs, deterministic=True)
            assert env.action_space.contains(np.asarray(action, dtype=env.action_space.dtype))
            obs, *_ = env.step(action)
    finally:
        env.close()
    with (run / "final" / "episodes.csv").open() as f:
        return [r for r in csv.DictReader(f) if r["mode"] == EPISODE]
