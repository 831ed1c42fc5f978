"""A small exported policy artifact of the Speed task on flow5, as `experiments.train` writes one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hydra import compose, initialize_config_module
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from agents.export import export_policy
from experiments.build import make_env


def speed_artifact(folder: Path, warmup_steps: int = 120) -> Path:
    """An untrained PPO actor (seeded) behind observation statistics of `warmup_steps` random steps.

    Its manifest holds the composed train config (line flow5, task Speed), so `experiments.deploy`
    finds the line and the task in it, and `vec_normalize` statistics for the out-of-distribution gate.
    """
    with initialize_config_module(config_module="configs", version_base="1.3"):
        cfg = compose(config_name="train", overrides=["task=speed", "line=flow5", "seed=0"])
    venv = VecNormalize(DummyVecEnv([lambda: make_env(cfg)]), norm_reward=False)
    venv.seed(0)
    venv.reset()
    rng = np.random.default_rng(0)
    for _ in range(warmup_steps):
        venv.step(rng.uniform(-1.0, 1.0, size=(1, *venv.action_space.shape)).astype(np.float32))
    model = PPO("MlpPolicy", venv, policy_kwargs={"net_arch": [16]}, seed=0, device="cpu")
    return export_policy(model, folder, vec_normalize=venv, config=cfg)
