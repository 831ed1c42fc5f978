"""SB3 callbacks that show researchers what happened: KPIs, hyperparameters, the heuristic to beat."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Figure, HParam

from agents.figures import episode_figures
from agents.rollout import Episode, Normalized, Policy, episode_kpis, kpi_mean, run_episode

_TB_ONLY = ("stdout", "log", "json", "csv")


class KpiLogger(BaseCallback):
    """Logs each finished training episode's KPIs and guard counts (mean over the episodes of a logging interval).

    Guard counts are the `guard/...` entries a `GuardedLine` puts in `info` (counted over the
    episode); an episode without a reason counts 0 for it, also one before the reason first
    appeared. In a TensorBoard tag `:` becomes `/` (`guard/clamp:press.speed` shows as
    `guard/clamp/press.speed`).
    """

    def __init__(self) -> None:
        super().__init__()
        self._guard_keys: dict[str, str] = {}  # info key -> TensorBoard tag, in order of appearance

    def _on_step(self) -> bool:
        for done, info in zip(self.locals["dones"], self.locals["infos"], strict=True):
            if not done:
                continue
            if "kpis" in info:
                for key, value in episode_kpis(info["kpis"], info).items():
                    if not math.isnan(value):  # undefined on this episode (a cost per part without a part)
                        self.logger.record_mean(f"kpi/{key}", value)
            if "guard/checks" in info:
                self._record_guard(info)
        return True

    def _record_guard(self, info: dict[str, Any]) -> None:
        earlier = self.logger.name_to_count.get("guard/checks", 0)  # guarded episodes of this interval so far
        for key in info:
            if key.startswith("guard/") and key not in self._guard_keys:
                self._guard_keys[key] = tag = key.replace(":", "/")
                for _ in range(earlier):  # a reason first met now counted 0 in the interval's earlier episodes
                    self.logger.record_mean(tag, 0.0)
        for key, tag in self._guard_keys.items():
            self.logger.record_mean(tag, float(info.get(key, 0.0)))


class HParamLogger(BaseCallback):
    """Records the run's hyperparameters with the metrics they are judged by (TensorBoard HPARAMS)."""

    def __init__(self, hparams: Mapping[str, float | int | str | bool]) -> None:
        super().__init__()
        self.hparams = dict(hparams)

    def _on_training_start(self) -> None:
        metrics = {"eval/mean_reward": 0.0, "eval/advantage_over_heuristic": 0.0, "rollout/ep_rew_mean": 0.0}
        self.logger.record("hparams", HParam(self.hparams, metrics), exclude=_TB_ONLY)

    def _on_step(self) -> bool:
        return True


class HeuristicComparison(BaseCallback):
    """Every `every_steps`, evaluates the policy and the task's heuristic on the same evaluation seeds.

    The heuristic is evaluated once (it does not learn). Logs `eval/mean_reward`,
    `eval/heuristic_mean_reward`, `eval/advantage_over_heuristic` and the KPIs of both under
    `eval/kpi/...` and `eval/heuristic_kpi/...`, and, if `figures`, the figures of the policy's
    first evaluation episode.
    """

    def __init__(
        self,
        make_env: Callable[[], gym.Env[Any, Any]],
        make_heuristic: Callable[[gym.Env[Any, Any]], Policy],
        every_steps: int,
        seeds: list[int],
        normalizer: Any = None,
        figures: bool = True,
    ) -> None:
        super().__init__()
        self.make_env = make_env
        self.make_heuristic = make_heuristic  # built on the evaluation env: a rule may read its env
        self.every_steps = every_steps
        self.seeds = seeds
        self.normalizer = normalizer
        self.figures = figures
        self.env: gym.Env[Any, Any] | None = None
        self.heuristic_episodes: list[Episode] = []
        self.last_mean_reward = float("nan")
        self._next = every_steps
        self._end = 0  # the step count training ends at (set when it starts)

    def _on_training_start(self) -> None:
        self._end = int(self.locals["total_timesteps"])  # learn()'s own count: evaluated at the end, once
        self.env = self.make_env()
        heuristic = self.make_heuristic(self.env)
        self.heuristic_episodes = [run_episode(self.env, heuristic, s) for s in self.seeds]

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next:
            self._next += self.every_steps
            if self.num_timesteps < self._end:  # in the last rollout: the final policy is evaluated at the end
                self.evaluate()
        return True

    def _on_training_end(self) -> None:
        self.evaluate()
        if self.env is not None:
            self.env.close()

    def evaluate(self) -> None:
        """Run the evaluation episodes now and log them."""
        if self.env is None:
            return
        policy: Policy = self.model if self.normalizer is None else Normalized(self.model, self.normalizer)
        episodes = [run_episode(self.env, policy, s, record=self.figures and i == 0) for i, s in enumerate(self.seeds)]
        mean = float(np.mean([e.total_reward for e in episodes]))
        base = float(np.mean([e.total_reward for e in self.heuristic_episodes]))
        self.last_mean_reward = mean
        self.logger.record("eval/mean_reward", mean)
        self.logger.record("eval/heuristic_mean_reward", base)
        self.logger.record("eval/advantage_over_heuristic", mean - base)
        for prefix, group in (("eval/kpi", episodes), ("eval/heuristic_kpi", self.heuristic_episodes)):
            rows = [episode_kpis(e.kpis, e.info) for e in group]
            for key in rows[0]:
                self.logger.record(f"{prefix}/{key}", kpi_mean([r[key] for r in rows]))
        if self.figures and episodes[0].frames:
            spec = self.env.unwrapped.line.spec  # type: ignore[attr-defined]
            for name, fig in episode_figures(episodes[0], spec).items():
                self.logger.record(f"figures/{name}", Figure(fig, close=True), exclude=_TB_ONLY)
        self.logger.dump(self.num_timesteps)
