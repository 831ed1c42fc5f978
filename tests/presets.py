"""Composing the shipped configs and the overrides of a tiny training run, shared by the preset tests."""

from __future__ import annotations

from collections.abc import Sequence

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

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
)


def compose_train(overrides: Sequence[str]) -> DictConfig:
    """The `train` config composed with `overrides`, as `python -m experiments.train` would."""
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        return compose("train", overrides=list(overrides))
