"""The `Baseline` base every heuristic shares, and the helpers its rules use to read their parameters.

A baseline is built for one env and answers SB3's `predict`, so `evaluate_policy` treats a rule
and a trained policy alike. A rule decides from the observation and the line's spec alone, never
from a twin's internals, so it acts the same on the twin and on a real line; its parameters come
from its config (`configs/agent/<name>.yaml`, see `agents.baselines.make_baseline`).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from envs.base import LineEnv, Task
from envs.setpoint import SetpointTask
from hardware import Lever


class Baseline(ABC):
    """A heuristic policy for one env with SB3's `predict`.

    Subclasses name the task classes they understand in `tasks` and map a batch of observations
    to a batch of actions in `act`.
    """

    tasks: ClassVar[tuple[type[Task], ...]]
    task: Task

    def __init__(self, env: gym.Env[Any, Any]) -> None:
        base = env.unwrapped
        if not isinstance(base, LineEnv) or not isinstance(base.task, self.tasks):
            task = type(base.task).__name__ if isinstance(base, LineEnv) else type(base).__name__
            known = ", ".join(t.__name__ for t in self.tasks)
            raise TypeError(f"env: {type(self).__name__} drives {known}, not {task}")
        self.env: LineEnv = base
        self.task = base.task
        self.observation_space = base.observation_space
        self.action_space = base.action_space
        self.action_shape: tuple[int, ...] = base.action_space.shape or ()

    def predict(
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """Action for one observation, or actions of shape `(n_envs, ...)` for a batch.

        The rules are deterministic and stateless: `deterministic` and `episode_start` are
        ignored and `state` is handed back unchanged, as SB3's feed-forward policies do.
        """
        if isinstance(observation, dict):
            raise TypeError("observation: the smartline tasks observe arrays, not dicts")
        obs = np.asarray(observation, dtype=np.float64)
        shape = self.observation_space.shape or ()
        single = obs.shape == shape
        batch = obs[None] if single else obs
        if batch.ndim != len(shape) + 1 or batch.shape[1:] != shape:
            raise ValueError(f"observation: expected shape {shape} or (n_envs, *{shape}), got {obs.shape}")
        actions = self.act(batch).astype(self.action_space.dtype)
        return (actions.reshape(self.action_shape) if single else actions), state

    def line_setting(self, n: int) -> np.ndarray:
        """`n` zero actions: the plant's own setting (nominal speed, run, no request; for a reorder, no order)."""
        return np.zeros((n, *self.action_shape), dtype=self.action_space.dtype)

    @abstractmethod
    def act(self, obs: np.ndarray) -> np.ndarray:
        """Actions for a batch of observations of shape `(n, obs_dim)`, shape `(n, *action_shape)`."""


def action_positions(task: SetpointTask, lever: Lever) -> np.ndarray:
    """Positions in a setpoint task's action vector of the actuators of `lever` (station order)."""
    acts = [a for a in task.spec.actuators if a.lever in task.levers]
    return np.array([k for k, a in enumerate(acts) if a.lever is lever], dtype=np.intp)


def finite_at_least(name: str, value: Any, low: float, strict: bool = False) -> float:
    """`value` as a float after checking it is a finite number >= `low` (> when `strict`); errors name it."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < low or (strict and value == low):
        raise ValueError(f"{name} must be a finite number {'>' if strict else '>='} {low}, got {value!r}")
    return float(value)
