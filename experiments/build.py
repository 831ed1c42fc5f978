"""Build envs, vectorised envs and agents from a composed Hydra config, checking it first."""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import gymnasium as gym
from gymnasium.envs.registration import load_env_creator
from hydra.errors import InstantiationException
from hydra.utils import get_object, instantiate
from omegaconf import DictConfig, OmegaConf
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecNormalize

import envs  # noqa: F401  (registers the smartline/ ids)
from agents.baselines import BASELINES, make_baseline, parameter_names
from agents.export import exportable, json_ready
from agents.rollout import Policy
from agents.warm_start import clone_refusal
from configs import CONFIG_DIR
from envs.base import LineEnv
from envs.registration import TASKS
from experiments.agent_values import check_agent_values
from experiments.errors import ConfigError, did_you_mean, parameter_error, positive_number, whole_number
from experiments.line_config import guard_config, line_definition
from experiments.line_config import hardware_line as line_from_group
from hardware import Line
from hardware.guard import Guard, GuardedLine

_VEC_ENVS = {"dummy": DummyVecEnv, "subproc": SubprocVecEnv}
_SECONDS_PER_DAY = 86_400.0
_NOT_NAMES = ("self", "spec", "task", "kwargs", "task_kwargs")

__all__ = [
    "ConfigError",
    "agent_target",
    "check",
    "continuing_steps",
    "env_kwargs",
    "episode_steps",
    "guard_config",
    "hardware_line",
    "heuristic_agent",
    "heuristic_overrides",
    "heuristics",
    "is_learner",
    "is_trainer",
    "make_agent",
    "make_env",
    "make_vec_env",
    "refused_parameter",
    "warm_start_heuristic",
]


def check(cfg: DictConfig) -> None:
    """Stop before any work if the config cannot run, naming the offending key."""
    if cfg.task.id not in gym.registry:
        known = [i for i in gym.registry if i.startswith("smartline/")]
        raise ConfigError(f"task.id: {cfg.task.id!r} is not a registered env{did_you_mean(cfg.task.id, known)}")
    _check_run_settings(cfg)
    if "vec_env" in cfg and cfg.vec_env not in _VEC_ENVS:
        raise ConfigError(f"vec_env: must be one of {sorted(_VEC_ENVS)}, got {cfg.vec_env!r}")
    target = agent_target(cfg)
    if is_learner(cfg) and "Maskable" in target.__name__ and not cfg.task.masked:
        raise ConfigError(
            f"agent._target_: {target.__name__} needs a task with action masks; task {cfg.task.name} has none"
        )
    tuned = heuristics(cfg)  # a bad entry named alone, before any heuristic is built with it
    env = make_env(cfg)
    try:
        try:  # with the parameters `heuristics` gives it, as training compares with it
            tuned_baseline(cfg, env, cfg.task.baseline)
        except ConfigError as exc:
            raise ConfigError(f"task.baseline={cfg.task.baseline}: {exc}") from exc
        for name in tuned:
            tuned_baseline(cfg, env, name)
        if not is_learner(cfg) and not is_trainer(cfg):
            heuristic_agent(cfg, env)
        _check_spaces(cfg, target, env)
        if is_learner(cfg):
            values = cast(dict[str, Any], OmegaConf.to_container(cfg.agent, resolve=True))
            policy = target.policy_aliases.get(values.get("policy")) if isinstance(values.get("policy"), str) else None
            policy_params = inspect.signature(policy).parameters if isinstance(policy, type) else None
            check_agent_values(values, inspect.signature(target).parameters, policy_params)
        if warm_start_heuristic(cfg) is not None:
            _check_warm_start(cfg, env)
        _check_trainer(cfg, env)
    finally:
        env.close()
    _check_json(cfg)


_WHOLE = {  # key -> least value; checked where the config has it
    "total_timesteps": 1, "n_envs": 1, "torch_threads": 1, "checkpoint_every_steps": 1, "seed": 0,
    "evaluation.every_steps": 1, "evaluation.episodes": 1, "evaluation.seed": 0,
    "final.episodes": 1, "final.seed": 0, "final.continuing_seeds": 0,
}  # fmt: skip
_POSITIVE = ("final.continuing_days", "normalize.clip_obs")
_SECTIONS = ("evaluation", "final", "normalize", "warm_start")  # their keys are train.yaml's, none added
_SWITCHES = ("progress_bar", "normalize.enabled", "normalize.obs", "normalize.reward", "evaluation.figures")


def _check_run_settings(cfg: DictConfig) -> None:
    """The run's own settings exist and have their types before any work: some are read only after training."""
    shipped = cast(dict[str, Any], OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "train.yaml")))
    for section in _SECTIONS:
        node, known = OmegaConf.select(cfg, section), [f"{section}.{k}" for k in shipped[section]]
        for key in node if isinstance(node, DictConfig) else ():
            full = f"{section}.{key!s}"
            if full not in known:  # added with `+`: nothing would read it
                raise ConfigError(f"{full}: no such setting, nothing reads it{did_you_mean(full, known)}")
    for key, least in _WHOLE.items():
        value = OmegaConf.select(cfg, key)
        if value is not None:
            whole_number(key, value, least)
    for key in _POSITIVE:
        value = OmegaConf.select(cfg, key)
        if value is not None:
            positive_number(key, value)
    for key in _SWITCHES:
        value = OmegaConf.select(cfg, key)
        if value is not None and not isinstance(value, bool):
            raise ConfigError(f"{key}: must be true or false, got {value!r}")
    normalize = cfg.get("normalize")  # the discount of the return VecNormalize scales rewards by, if set here
    literal = isinstance(normalize, DictConfig) and not OmegaConf.is_interpolation(normalize, "gamma")
    gamma = OmegaConf.select(cfg, "normalize.gamma") if literal else None  # else agent.gamma's, checked with it
    if gamma is not None and (isinstance(gamma, bool) or not isinstance(gamma, int | float) or not 0 <= gamma <= 1):
        raise ConfigError(f"normalize.gamma: must be in [0, 1], got {gamma!r}")
    _check_seeds_apart(cfg)


def _check_seeds_apart(cfg: DictConfig) -> None:
    """The evaluation seeds (what a run keeps, what a sweep optimises) are none of the final table's held-out seeds."""
    first, count = OmegaConf.select(cfg, "evaluation.seed"), OmegaConf.select(cfg, "evaluation.episodes")
    held_first, held_count = OmegaConf.select(cfg, "final.seed"), OmegaConf.select(cfg, "final.episodes")
    if None in (first, count, held_first, held_count):
        return
    shared = sorted(set(range(first, first + count)) & set(range(held_first, held_first + held_count)))
    if shared:
        which = f"seed {shared[0]}" if len(shared) == 1 else f"seeds {shared[0]}-{shared[-1]}"
        raise ConfigError(
            f"evaluation.seed: the evaluation seeds ({first}, {count} episodes) share {which} with the final "
            f"table's held-out seeds (final.seed {held_first}, final.episodes {held_count}): a policy kept or a "
            "sweep's best picked on them would be scored on them; keep the two apart"
        )


def _check_spaces(cfg: DictConfig, target: Any, env: gym.Env[Any, Any]) -> None:
    """The agent acts in the task's action space, and what an SB3 algorithm learns can be exported."""
    if getattr(target, "box_actions_only", False) and not isinstance(env.action_space, gym.spaces.Box):
        raise ConfigError(
            f"agent._target_: {target.__name__} drives Box actions; task {cfg.task.name} acts in {env.action_space}"
        )
    if is_learner(cfg):
        try:  # checked now: a policy that cannot be exported would be lost after its training
            exportable(target, env.observation_space, env.action_space)
        except ValueError as exc:
            raise ConfigError(f"agent._target_: {cfg.agent._target_} cannot run task {cfg.task.name}: {exc}") from exc


def _check_json(cfg: DictConfig) -> None:
    """Every value of the run's config is one JSON carries: the artifact's manifest records it whole."""
    try:
        json_ready("", cfg)
    except ValueError as exc:
        raise ConfigError(f"{exc} (the artifact's manifest records the config)") from exc


def _check_trainer(cfg: DictConfig, env: gym.Env[Any, Any]) -> None:
    """A trainer's own settings on this task, where its class has a `check(env)`."""
    if is_trainer(cfg) and callable(getattr(agent_target(cfg), "check", None)):
        try:
            instantiate(cfg.agent, _convert_="all").check(env)
        except (InstantiationException, ValueError) as exc:  # messages start with the setting's name
            raise ConfigError(f"agent.{exc.__cause__ or exc}") from exc


def warm_start_heuristic(cfg: DictConfig) -> str | None:
    """The heuristic `warm_start` clones into the policy before training, or None (start from scratch)."""
    ws = cfg.get("warm_start")
    if ws is None or ws.get("heuristic") is None:
        return None
    return str(ws.heuristic)


def _check_warm_start(cfg: DictConfig, env: gym.Env[Any, Any]) -> None:
    ws, name = cfg.warm_start, str(cfg.warm_start.heuristic)
    target = agent_target(cfg)
    on_policy = is_learner(cfg) and issubclass(target, OnPolicyAlgorithm)
    if not (on_policy or getattr(target, "warm_starts", False)):
        raise ConfigError(
            "warm_start.heuristic: cloning a heuristic needs an on-policy SB3 agent (PPO, A2C) or a trainer "
            f"that starts from a rule (ars), not {target.__name__}"
        )
    refusal = clone_refusal(target, cfg.agent.get("policy", "MlpPolicy")) if on_policy else None
    if refusal is not None:
        raise ConfigError(f"warm_start.heuristic: {refusal}")
    if name not in BASELINES:
        raise ConfigError(f"warm_start.heuristic: {name!r} is not a heuristic{did_you_mean(name, BASELINES)}")
    try:
        make_baseline(env, name, **heuristics(cfg).get(name, {}))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"warm_start.heuristic: {exc}") from exc
    for key in ("steps", "epochs", "batch_size"):
        whole_number(f"warm_start.{key}", ws.get(key))
    noise = ws.get("noise")
    if not (isinstance(noise, int | float) and not isinstance(noise, bool) and math.isfinite(noise) and noise >= 0):
        raise ConfigError(f"warm_start.noise: must be a finite number >= 0, got {noise!r}")
    lr = ws.get("learning_rate")
    if not (isinstance(lr, int | float) and not isinstance(lr, bool) and math.isfinite(lr) and lr > 0):
        raise ConfigError(f"warm_start.learning_rate: must be a finite number > 0, got {lr!r}")


def heuristics(cfg: DictConfig) -> dict[str, dict[str, Any]]:
    """The heuristics a learned policy is compared with, each with its parameter overrides.

    `cfg.heuristics` maps a baseline's name to the parameters that replace its shipped config
    (the values a sweep of `experiments.tune` found); without it, the task's baseline as shipped.
    """
    configured = cfg.get("heuristics")
    if configured is None:
        return {str(cfg.task.baseline): {}}
    tuned = heuristic_overrides(configured)
    if not tuned:
        raise ConfigError("heuristics: name at least one heuristic, or null for the task's baseline as shipped")
    return tuned


def heuristic_overrides(node: Any, key: str = "heuristics") -> dict[str, dict[str, Any]]:
    """A `heuristics` config node (at `key`) checked: heuristic name -> its parameter overrides as plain values."""
    if not isinstance(node, DictConfig):
        raise ConfigError(
            f"{key}: expected a mapping of heuristic names to parameters, e.g. {{reactive: {{}}}}, got {node!r}"
        )
    tuned: dict[str, dict[str, Any]] = {}
    for entry, params in node.items():
        name = str(entry)
        if name not in BASELINES:
            raise ConfigError(f"{key}.{name}: not a heuristic{did_you_mean(name, BASELINES)}")
        if params is not None and not isinstance(params, DictConfig):
            raise ConfigError(f"{key}.{name}: expected a mapping of parameters (or {{}}), got {params!r}")
        tuned[name] = OmegaConf.to_container(params, resolve=True) if params is not None else {}  # type: ignore[assignment]
    return tuned


def tuned_baseline(cfg: DictConfig, env: gym.Env[Any, Any], name: str) -> Policy:
    """Heuristic `name` on `env` with the parameters `cfg.heuristics` gives it (else as shipped)."""
    params = heuristics(cfg).get(name, {})
    try:
        return make_baseline(env, name, **params)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"heuristics.{name}: {exc}") from exc


def heuristic_agent(cfg: DictConfig, env: gym.Env[Any, Any]) -> Policy:
    """The heuristic the `agent` group configures, with every parameter the config (or command line) sets."""
    params = {str(k): v for k, v in cfg.agent.items() if not str(k).startswith("_") and k != "name"}
    try:
        return make_baseline(env, cfg.agent.name, **params)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"agent.{refused_parameter(cfg.agent.name, params, exc) or 'name'}: {exc}") from exc


def refused_parameter(name: str, params: dict[str, Any], exc: BaseException) -> str | None:
    """The parameter heuristic `name` refused with `exc`: one it does not take, else one the message names."""
    known = parameter_names(name) if name in BASELINES else ()
    named = [k for k in params if re.search(rf"\b{re.escape(k)}\b", str(exc))]
    return next((k for k in params if k not in known), None) or next(iter(named), None)


def agent_target(cfg: DictConfig) -> Any:
    """The class or factory the `agent` group names, imported (a config error if it does not exist)."""
    try:
        return get_object(cfg.agent._target_)
    except Exception as exc:
        raise ConfigError(f"agent._target_: cannot import {cfg.agent._target_!r}: {exc}") from exc


def is_learner(cfg: DictConfig) -> bool:
    """Whether the configured agent is an SB3 algorithm (else a heuristic or a trainer)."""
    target = agent_target(cfg)
    return isinstance(target, type) and issubclass(target, BaseAlgorithm)


def is_trainer(cfg: DictConfig) -> bool:
    """Whether the configured agent is a trainer of its own (not SB3), such as self-labelling.

    A trainer is a class with `fit(cfg, out_dir) -> float`: `experiments.train` builds it from the
    `agent` group and hands it the whole run.
    """
    target = agent_target(cfg)
    return isinstance(target, type) and not issubclass(target, BaseAlgorithm) and callable(getattr(target, "fit", None))


def env_kwargs(cfg: DictConfig, scenario: str | None = None) -> dict[str, Any]:
    """Keyword arguments of `gymnasium.make` for the task: its own, the line and the scenario.

    With `hardware=modbus` the line is a `ModbusLine` built from the `hardware` group for the task's
    levers; the env is otherwise the same.
    """
    kwargs: dict[str, Any] = OmegaConf.to_container(cfg.task.kwargs, resolve=True)  # type: ignore[assignment]
    if cfg.get("hardware") is not None and cfg.hardware.get("_target_"):
        kwargs["line"] = hardware_line(cfg, kwargs, scenario)
    elif "instance" not in kwargs:
        kwargs["line"] = OmegaConf.to_container(cfg.line, resolve=True)
        if scenario is not None:
            kwargs["scenario"] = scenario
        elif "scenario" in cfg:
            kwargs["scenario"] = OmegaConf.to_container(cfg.scenario.events, resolve=True)
    return kwargs


def hardware_line(cfg: DictConfig, kwargs: dict[str, Any], scenario: str | None) -> Line:
    """The `hardware` group's line for the task, handing it the task's levers at its control period."""
    name = cfg.hardware.get("name", "hardware")
    if "instance" in kwargs:
        raise ConfigError(f"hardware={name}: task.kwargs.instance is a job-shop instance of the twin, not a real line")
    if scenario not in (None, "none"):
        raise ConfigError(
            f"scenarios: {scenario!r} is a twin scenario; with hardware={name} the line runs what it runs "
            "(serve the virtual PLC with the scenario instead)"
        )
    task_cls, _, default_period, _ = TASKS[cfg.task.name]
    period = kwargs.pop("control_period_s", None) or default_period
    return line_from_group(cfg.hardware, line_definition(cfg.line), task_cls.levers, period)


def episode_steps(cfg: DictConfig) -> int:
    """Steps of one episode: `task.max_episode_steps` if set, else the task's registered default."""
    steps = cfg.task.get("max_episode_steps")
    if steps is None:
        steps = gym.spec(cfg.task.id).max_episode_steps
    return whole_number("task.max_episode_steps", steps)


def make_env(
    cfg: DictConfig, scenario: str | None = None, monitor: bool = False, max_episode_steps: int | None = None
) -> gym.Env[Any, Any]:
    """One env of the configured task (with SB3's `Monitor` for training).

    `max_episode_steps` overrides the episode length (default: `episode_steps(cfg)`). A value the
    env refuses is a `ConfigError` naming its key under `task.kwargs`. Unless `guard=none`, the
    env's line (twin or hardware) is wrapped in a `GuardedLine` with the `guard` group's limits.
    """
    kwargs = env_kwargs(cfg, scenario)
    steps = episode_steps(cfg) if max_episode_steps is None else max_episode_steps
    config = guard_config(cfg.get("guard"), line_definition(cfg.line))
    try:
        env = gym.make(cfg.task.id, max_episode_steps=steps, **kwargs)
    except (TypeError, ValueError) as exc:
        raise parameter_error(exc, "task.kwargs", cfg.task.kwargs, _env_parameters(cfg)) from exc
    if config is not None:
        base = env.unwrapped
        if not isinstance(base, LineEnv):
            raise ConfigError(f"guard: task {cfg.task.name}'s env {type(base).__name__} drives no Line to guard")
        try:
            base.line = GuardedLine(base.line, Guard(base.line.spec, config))
        except ValueError as exc:
            raise ConfigError(f"guard: {exc}") from exc
    return Monitor(env) if monitor else env


def _env_parameters(cfg: DictConfig) -> dict[str, inspect.Parameter]:
    """Names `gymnasium.make` accepts for the task: its entry point's and its task class's."""
    entry = gym.spec(cfg.task.id).entry_point
    creator = load_env_creator(entry) if isinstance(entry, str) else entry
    callables: list[Any] = [creator]
    if cfg.task.name in TASKS:
        callables.append(TASKS[cfg.task.name][0])
    return {
        name: p
        for c in callables
        if c is not None
        for name, p in inspect.signature(c).parameters.items()
        if name not in _NOT_NAMES
    }


def continuing_steps(env: gym.Env[Any, Any], days: float) -> int | None:
    """Steps of `days` of continuing operation at the line's control period (rounded up); None without a period.

    A task driven by events rather than a clock (Scheduling: a fixed job set) has no control
    period, and no continuing run.
    """
    period = env.unwrapped.line.spec.control_period_s  # type: ignore[attr-defined]
    if period is None:
        return None
    if not days > 0:
        raise ConfigError(f"continuing_days: must be > 0, got {days!r}")
    return math.ceil(round(days * _SECONDS_PER_DAY / period, 9))  # 1.1 days at 60 s: 1584.0000000000002 steps


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
    """The configured SB3 algorithm on `venv`; a value SB3 refuses is a `ConfigError` naming its key."""
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
    except (AssertionError, TypeError, ValueError, InstantiationException) as exc:
        inner = exc.__cause__ if isinstance(exc, InstantiationException) and exc.__cause__ else exc
        if isinstance(inner, AssertionError) and "supports" in str(inner):  # SB3's check of the spaces
            raise ConfigError(f"agent._target_: {cfg.agent._target_} cannot run task {cfg.task.name}: {inner}") from exc
        accepted = inspect.signature(agent_target(cfg)).parameters
        raise parameter_error(exc, "agent", cfg.agent, accepted) from exc
