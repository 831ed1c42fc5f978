"""The random-search trainer (`agent=ars`): a linear policy found by ARS, exported as an ONNX artifact.

The policy starts as the `warm_start.heuristic` rule (a least-squares linear fit of its actions on
a rollout with noise on what is executed; without one, as the plant's own setting), then
`agents.random_search.search_step` improves it on training episodes whose seeds never meet the
evaluation (10000+) or held-out (20000+) ones. The result is written as the same artifact as an
SB3 policy (`artifact/`), so `experiments.train` reports it in its final table and `evaluate`,
`robustness` and `deploy` take it as they take any other.
"""

from __future__ import annotations

import json
import logging
import math
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv
from torch.utils.tensorboard import SummaryWriter

from agents.baseline import action_positions
from agents.export import export_policy
from agents.random_search import LinearPolicy, fit_linear, search_step
from agents.rollout import Policy, episode_kpis, kpi_mean, run_episode
from agents.warm_start import perturbed
from envs.setpoint import SetpointTask
from experiments.build import episode_steps, make_env, tuned_baseline, warm_start_heuristic
from experiments.errors import whole_number
from hardware import Lever

log = logging.getLogger(__name__)

TRAINING_SEED_BLOCK = 1_000_000  # training episodes of seed s use seeds (s + 1) * this + k: never 10000+ or 20000+


@dataclass(frozen=True)
class RandomSearch:
    """ARS hyperparameters (parameter noise and step in units of the standardised linear map).

    Attributes:
        iterations: search iterations.
        directions: perturbations per iteration, each run `+` and `-` on one training seed.
        top: directions whose returns make the update.
        noise: std of the parameter perturbations.
        step_size: the update's step, divided by the top returns' std.
        std_floor: least std of an observation feature when standardising (scaled observations lie in [-1, 1]).
        ridge: ridge penalty of the starting fit, per sample, on the standardised weights.
        evaluate_every: iterations between evaluations against the task's heuristic on the evaluation seeds.
        workers: processes that run the search's episodes in parallel.
        keep_best: export the policy with the best evaluation return (evaluation seeds, never the
            held-out ones) instead of the last one: a search can step off a cliff late (a speed too
            slow for the demand) and not climb back in the iterations left.
        settle_episodes: episodes each search and evaluation run plays under its own policy before
            its return counts, so that a policy is scored in the state its own operation leaves
            (its buffers, backlog and machines) rather than in the warm-up's state under the
            line's rules; the heuristic it is evaluated against settles the same way. 0: scored
            from the warm-up.
        levers: the levers (`hardware.Lever` values) whose action components the search moves;
            the others stay as the start set them. None: every component. For levers whose
            consequences an episode is too short to show (a day rarely holds a maintenance or
            reorder decision), a search of them follows noise.
    """

    iterations: int = 300
    directions: int = 8
    top: int = 4
    noise: float = 0.02
    step_size: float = 0.01
    std_floor: float = 0.5
    ridge: float = 1e-3
    evaluate_every: int = 20
    workers: int = 2
    settle_episodes: int = 0
    levers: tuple[str, ...] | None = None
    keep_best: bool = False

    warm_starts: ClassVar[bool] = True  # takes `warm_start.heuristic` (experiments.build.check)
    box_actions_only: ClassVar[bool] = True  # a linear map onto a Box (experiments.build.check)
    reads: ClassVar[tuple[str, ...]] = (  # train.yaml's run settings it reads (experiments.run_settings)
        "seed", "heuristics", "warm_start.heuristic", "warm_start.steps", "warm_start.noise",
        "evaluation.seed", "evaluation.episodes", "final",
    )  # fmt: skip
    budget: ClassVar[str] = "agent.iterations"

    def __post_init__(self) -> None:
        counts = {"iterations": 1, "directions": 1, "top": 1, "evaluate_every": 1, "workers": 1, "settle_episodes": 0}
        for name, least in counts.items():
            whole_number(name, getattr(self, name), least)
        if self.top > self.directions:
            raise ValueError(f"top: must be at most directions ({self.directions}), got {self.top}")
        for name, strict in (("noise", True), ("step_size", True), ("std_floor", True), ("ridge", False)):
            value = getattr(self, name)
            number = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
            if not number or value < 0 or (strict and value == 0):
                raise ValueError(f"{name}: must be {'>' if strict else '>='} 0, got {value!r}")
        if not isinstance(self.keep_best, bool):
            raise ValueError(f"keep_best: must be true or false, got {self.keep_best!r}")
        if self.levers is not None:
            known = [lever.value for lever in Lever]
            listed = not isinstance(self.levers, str)  # `levers=speed` is a text, not the list [speed]
            if not (listed and self.levers and all(name in known for name in self.levers)):
                given = list(self.levers) if listed else self.levers
                raise ValueError(f"levers: must be a list of some of {', '.join(known)} (or null), got {given!r}")
            object.__setattr__(self, "levers", tuple(self.levers))

    def fit(self, cfg: DictConfig, out_dir: Path) -> float:
        """Search from `cfg.seed`, export `out_dir / "artifact"`; return the exported policy's evaluation return."""
        out_dir = Path(out_dir)
        rng = np.random.default_rng(int(cfg.seed))
        container: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
        episode = episode_steps(cfg)
        settle = self.settle_episodes * episode
        scored_steps = settle + episode
        seeds = iter(range((int(cfg.seed) + 1) * TRAINING_SEED_BLOCK, (int(cfg.seed) + 2) * TRAINING_SEED_BLOCK))
        history: list[dict[str, float]] = []
        started = time.monotonic()
        checkpoints = out_dir / "checkpoints"
        checkpoints.mkdir(parents=True, exist_ok=True)

        def record(iteration: int, evaluation: float, evaluated: LinearPolicy) -> float:
            """Log an evaluation and keep its policy (`checkpoints/`), so that a run stopped early keeps both."""
            minutes = (time.monotonic() - started) / 60
            history.append({"iteration": iteration, "minutes": minutes, "eval_mean_return": evaluation})
            np.savez(checkpoints / f"iteration_{iteration}.npz", **asdict(evaluated))
            _write_history(out_dir, None, history)
            return minutes

        with ExitStack() as cleanup:  # what was opened is closed, whichever step fails
            env = make_env(cfg)
            cleanup.callback(env.close)
            scored_env = env
            if settle:
                scored_env = make_env(cfg, max_episode_steps=scored_steps)
                cleanup.callback(scored_env.close)
            writer = SummaryWriter(str(out_dir / "tb"))
            cleanup.callback(writer.close)
            policy = self._start(cfg, env, seeds, rng)
            searched = self.searched(env)
            heuristic = tuned_baseline(cfg, scored_env, str(cfg.task.baseline))
            eval_seeds = [int(cfg.evaluation.seed) + i for i in range(int(cfg.evaluation.episodes))]
            baseline = [run_episode(scored_env, heuristic, s, scored_from=settle) for s in eval_seeds]
            last = self._evaluate(scored_env, settle, policy, eval_seeds, baseline, writer, 0)
            kept = (last, 0, policy)  # the best evaluated policy: its return, iteration, parameters
            record(0, last, policy)
            initargs = (container, scored_steps, settle)
            with ProcessPoolExecutor(self.workers, initializer=_init_worker, initargs=initargs) as pool:

                def episode_returns(policies: list[Policy], batch: list[int]) -> np.ndarray:
                    return np.array(list(pool.map(_worker_return, policies, batch)))

                for it in range(1, self.iterations + 1):
                    batch = [next(seeds) for _ in range(self.directions)]
                    step = search_step(
                        policy, episode_returns, batch, rng, self.noise, self.step_size, self.top, searched
                    )
                    policy = step.policy
                    writer.add_scalar("ars/mean_return", step.mean_return, it)
                    writer.add_scalar("ars/best_return", step.best_return, it)
                    writer.add_scalar("ars/return_std", step.return_std, it)
                    if it % self.evaluate_every == 0 or it == self.iterations:
                        last = self._evaluate(scored_env, settle, policy, eval_seeds, baseline, writer, it)
                        minutes = record(it, last, policy)
                        log.info("ars iteration %d (%.1f min): evaluation return %.1f", it, minutes, last)
                        kept = max(kept, (last, it, policy), key=lambda k: k[0])
        exported_return, exported, policy = kept if self.keep_best else (last, self.iterations, policy)
        if self.keep_best:
            log.info("ars exports iteration %d, the best evaluated (return %.1f)", exported, exported_return)
        np.savez(out_dir / "linear_policy.npz", **asdict(policy))
        _write_history(out_dir, exported, history)
        export_linear(policy, cfg, out_dir / "artifact")
        return exported_return

    def _start(self, cfg: DictConfig, env: gym.Env[Any, Any], seeds: Any, rng: np.random.Generator) -> LinearPolicy:
        """The starting rule fitted as a linear policy (or the plant's own setting, zero, if none).

        The rule runs `warm_start.steps` steps with noise `warm_start.noise` on what is executed
        (never on the labels); without a rule, the task's baseline runs them for the statistics.
        """
        name = warm_start_heuristic(cfg)
        steps, noise = int(cfg.warm_start.steps), float(cfg.warm_start.noise)
        rule = tuned_baseline(cfg, env, name or str(cfg.task.baseline))
        space = env.action_space
        if not isinstance(space, gym.spaces.Box):
            raise TypeError(f"random search drives Box actions; task {cfg.task.name} has {space}")
        observations: list[np.ndarray] = []
        actions: list[np.ndarray] = []
        while len(observations) < steps:
            obs, _ = env.reset(seed=next(seeds))
            done = False
            while not done and len(observations) < steps:
                action, _ = rule.predict(obs)
                observations.append(np.asarray(obs, dtype=np.float64))
                actions.append(np.asarray(action, dtype=np.float64))
                executed = perturbed(np.asarray(action, dtype=space.dtype), space, noise, rng)
                obs, _, terminated, truncated, _ = env.step(executed)
                done = terminated or truncated
        fitted = fit_linear(
            np.array(observations), np.array(actions), space.low, space.high, self.std_floor, self.ridge
        )
        if name is None:
            return replace(fitted, weights=np.zeros_like(fitted.weights), bias=np.zeros_like(fitted.bias))
        return fitted

    def check(self, env: gym.Env[Any, Any]) -> None:
        """Raise, naming the setting, if this search cannot run on `env` (`experiments.build.check`)."""
        self.searched(env)

    def searched(self, env: gym.Env[Any, Any]) -> np.ndarray | None:
        """Which of `env`'s action components the search moves: those of `levers` (None: all).

        Raises:
            ValueError: for a lever the task does not act on, or a task without levers.
        """
        if self.levers is None:
            return None
        task = getattr(env.unwrapped, "task", None)
        if not isinstance(task, SetpointTask):
            raise ValueError(f"levers: only a setpoint task's actions belong to levers, not {type(task).__name__}'s")
        missing = [name for name in self.levers if Lever(name) not in task.levers]
        if missing:
            owned = ", ".join(sorted(lever.value for lever in task.levers))
            raise ValueError(f"levers: the task acts on {owned}, not {', '.join(missing)}")
        searched = np.zeros(int(np.prod(env.action_space.shape or (1,))), dtype=np.bool_)
        for name in self.levers:
            searched[action_positions(task, Lever(name))] = True
        return searched

    def _evaluate(
        self,
        env: gym.Env[Any, Any],
        settle: int,
        policy: LinearPolicy,
        seeds: list[int],
        baseline: list[Any],
        writer: SummaryWriter,
        step: int,
    ) -> float:
        """Mean return on the evaluation seeds, scored after `settle` steps (TensorBoard `eval/mean_reward`).

        TensorBoard also gets the gain on the heuristic and the KPIs (of the whole run, settling included).
        """
        episodes = [run_episode(env, policy, s, scored_from=settle) for s in seeds]
        returns = np.array([e.total_reward for e in episodes])
        writer.add_scalar("eval/mean_reward", float(returns.mean()), step)
        gain = returns - np.array([b.total_reward for b in baseline])
        writer.add_scalar("eval/advantage_over_heuristic", float(gain.mean()), step)
        kpis = [episode_kpis(e.kpis, e.info) for e in episodes]
        for key in kpis[0]:
            writer.add_scalar(f"eval/kpi/{key}", kpi_mean([k[key] for k in kpis]), step)
        return float(returns.mean())


_WORKER_ENV: gym.Env[Any, Any] | None = None
_WORKER_SETTLE = 0


def _write_history(out_dir: Path, exported: int | None, evaluations: list[dict[str, float]]) -> None:
    """`history.json`: the evaluations so far and the exported iteration (null until the search ends)."""
    (out_dir / "history.json").write_text(
        json.dumps({"exported_iteration": exported, "evaluations": evaluations}, indent=2)
    )


def _init_worker(container: dict[str, Any], steps: int, settle: int) -> None:
    global _WORKER_ENV, _WORKER_SETTLE
    torch.set_num_threads(1)
    _WORKER_ENV = make_env(OmegaConf.create(container), max_episode_steps=steps)
    _WORKER_SETTLE = settle


def _worker_return(policy: Policy, seed: int) -> float:
    if _WORKER_ENV is None:
        raise RuntimeError("episode worker used before _init_worker built its env")
    return run_episode(_WORKER_ENV, policy, seed, scored_from=_WORKER_SETTLE).total_reward


def export_linear(policy: LinearPolicy, cfg: DictConfig, artifact_dir: Path) -> Path:
    """Write `policy` as an artifact: a PPO actor with no hidden layer carrying its folded map."""
    venv = DummyVecEnv([lambda: make_env(cfg)])
    try:
        model = PPO("MlpPolicy", venv, policy_kwargs={"net_arch": []}, device="cpu", seed=int(cfg.seed), verbose=0)
        weights, bias = policy.folded()
        action_net: Any = model.policy.action_net
        with torch.no_grad():
            action_net.weight.copy_(torch.as_tensor(weights, dtype=torch.float32))
            action_net.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))
        return export_policy(
            model,
            artifact_dir,
            vec_normalize=None,
            config=OmegaConf.to_container(cfg, resolve=True),  # type: ignore[arg-type]
            metadata={"task": cfg.task.name, "task_id": cfg.task.id, "trainer": "ars"},
            algorithm="ARS",
        )
    finally:
        venv.close()
