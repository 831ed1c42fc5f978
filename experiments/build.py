"""Build envs, vectorised envs and agents from a composed Hydra config, checking it first."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
from hydra.errors import InstantiationException
from hydra.utils import get_object, instantiate
from omegaconf import DictConfig, OmegaConf
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecNormalize

import envs  # noqa: F401  (registers the smartline/ ids)
from agents.artifact import PolicyArtifact
from agents.baselines import make_baseline
from agents.rollout import Policy

_VEC_ENVS = {"dummy": DummyVecEnv, "subproc": SubprocVecEnv}


class ConfigError(ValueError):
    """The composed config cannot run; the message names the key."""


def check(cfg: DictConfig) -> None:
    """Stop before any work if the config cannot run, naming the offending key."""
    if cfg.task.id not in gym.registry:
        raise ConfigError(f"task.id: {cfg.task.id!r} is not a registered env")
    for key in ("total_timesteps", "n_envs"):
        if key in cfg and not (isinstance(cfg[key], int) and cfg[key] > 0):
            raise ConfigError(f"{key}: must be a positive whole number, got {cfg[key]!r}")
    if "vec_env" in cfg and cfg.vec_env not in _VEC_ENVS:
        raise ConfigError(f"vec_env: must be one of {sorted(_VEC_ENVS)}, got {cfg.vec_env!r}")
    target = agent_target(cfg)
    if is_learner(cfg) and "Maskable" in target.__name__ and not cfg.task.masked:
        raise ConfigError(f"agent: {target.__name__} needs a task with action masks; task {cfg.task.name} has none")
    env = make_env(cfg)
    try:
        names = [("task.baseline", cfg.task.baseline)] + ([] if is_learner(cfg) else [("agent.name", cfg.agent.name)])
        for key, name in names:
            try:
                make_baseline(env, name)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"{key}: {exc}") from exc
    finally:
        env.close()


def agent_target(cfg: DictConfig) -> Any:
    """The class or factory the `agent` group names, imported (a config error if it does not exist)."""
    try:
        return get_object(cfg.agent._target_)
    except Exception as exc:
        raise ConfigError(f"agent._target_: cannot import {cfg.agent._target_!r}: {exc}") from exc


def is_learner(cfg: DictConfig) -> bool:
    """Whether the configured agent is an SB3 algorithm (else a heuristic)."""
    target = agent_target(cfg)
    return isinstance(target, type) and issubclass(target, BaseAlgorithm)


def env_kwargs(cfg: DictConfig, scenario: str | None = None) -> dict[str, Any]:
    """Keyword arguments of `gymnasium.make` for the task: its own, the line and the scenario."""
    kwargs: dict[str, Any] = OmegaConf.to_container(cfg.task.kwargs, resolve=True)  # type: ignore[assignment]
    if "instance" not in kwargs:
        kwargs["line"] = OmegaConf.to_container(cfg.line, resolve=True)
        if scenario is not None:
            kwargs["scenario"] = scenario
        elif "scenario" in cfg:
            kwargs["scenario"] = OmegaConf.to_container(cfg.scenario.events, resolve=True)
    return kwargs


def make_env(cfg: DictConfig, scenario: str | None = None, monitor: bool = False) -> gym.Env[Any, Any]:
    """One env of the configured task (with SB3's `Monitor` for training)."""
    env = gym.make(cfg.task.id, max_episode_steps=cfg.task.max_episode_steps, **env_kwargs(cfg, scenario))
    return Monitor(env) if monitor else env


def make_vec_env(cfg: DictConfig) -> VecEnv:
    """The training envs, vectorised, seeded from `cfg.seed`, normalised if configured."""
    container: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]

    def factory() -> Callable[[], gym.Env[Any, Any]]:
        plain = OmegaConf.create(container)  # a picklable copy for subprocess envs
        return lambda: make_env(plain, monitor=True)

    venv: VecEnv = _VEC_ENVS[cfg.vec_env]([factory() for _ in range(cfg.n_envs)])
    venv.seed(cfg.seed)
    if cfg.normalize.enabled:
        n = cfg.normalize
        venv = VecNormalize(venv, norm_obs=n.obs, norm_reward=n.reward, clip_obs=n.clip_obs, gamma=n.gamma)
    return venv


def make_agent(cfg: DictConfig, venv: VecEnv, tensorboard_dir: Path | None) -> BaseAlgorithm:
    """The configured SB3 algorithm on `venv`."""
    try:
        return instantiate(
            cfg.agent,
            env=venv,
            seed=cfg.seed,
            tensorboard_log=str(tensorboard_dir) if tensorboard_dir else None,
            device="cpu",
            verbose=0,
            _convert_="all",
        )
    except (AssertionError, ValueError, InstantiationException) as exc:  # SB3 asserts on unsupported spaces
        raise ConfigError(f"agent: {cfg.agent._target_} cannot run task {cfg.task.name}: {exc}") from exc


def load_policy(spec: str, env: gym.Env[Any, Any]) -> tuple[str, Policy]:
    """A policy named on the command line: an artifact folder, or a heuristic's name."""
    path = Path(spec)
    if (path / "manifest.json").is_file():
        return path.name if path.name != "artifact" else path.parent.name, PolicyArtifact.load(path)
    return spec, make_baseline(env, spec)
