"""Benchmark PPO training throughput on the default experiment's env against CartPole-v1, same settings, one run.

The env is built as the experiment trains on it (`experiments.build.make_env`: its line, control
period, episode length and warm-up). Each env is also timed alone under random actions, so the
share of training time the env takes is measured, not guessed: env share = (time per env step) /
(time per PPO training step).

    python -m experiments.bench_train                       # experiment=speed (the default experiment)
    python -m experiments.bench_train --experiment energy --steps 20000
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import torch
from hydra import compose, initialize_config_module
from stable_baselines3 import PPO
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.vec_env import DummyVecEnv

from configs import options
from experiments.build import episode_steps, make_env
from experiments.tables import markdown_table

EXPERIMENTS = [e for e in options("experiment") if e != "scheduling"]  # PPO over ticks; Scheduling is self-labelled
GOAL_ENV_SHARE = 1 / 3  # the env may take at most this share of training time
PPO_SETTINGS: dict[str, Any] = {
    "n_steps": 512,
    "batch_size": 256,
    "n_epochs": 5,
    "policy_kwargs": {"net_arch": [64, 64]},
}


def ppo_steps_per_s(make: Callable[[], gym.Env[Any, Any]], n_envs: int, steps: int, seed: int) -> float:
    """Env steps per wall-second of PPO learning `steps` steps on `n_envs` dummy-vectorised envs."""
    venv = DummyVecEnv([make for _ in range(n_envs)])
    model = PPO("MlpPolicy", venv, seed=seed, device="cpu", verbose=0, **PPO_SETTINGS)
    model.set_logger(Logger(folder=None, output_formats=[]))  # SB3's default makes a folder in /tmp per model
    start = time.perf_counter()
    model.learn(steps)
    wall = time.perf_counter() - start
    venv.close()
    return steps / wall


def env_steps_per_s(make: Callable[[], gym.Env[Any, Any]], steps: int, seed: int) -> float:
    """Env steps per wall-second under random actions (drawn before the clock starts), resetting at episode ends."""
    env = make()
    env.action_space.seed(seed)
    actions = [env.action_space.sample() for _ in range(steps)]
    env.reset(seed=seed)
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    wall = time.perf_counter() - start
    env.close()
    return steps / wall


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="speed", choices=EXPERIMENTS, help="preset whose env is timed")
    parser.add_argument("--steps", type=int, default=30_000, help="PPO training steps per env")
    parser.add_argument("--n-envs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    with initialize_config_module("configs", version_base="1.3"):
        cfg = compose("train", overrides=[f"experiment={args.experiment}"])
    period = cfg.task.kwargs.get("control_period_s")
    timing = "the registered period" if period is None else f"period {period} s"
    ours = f"{cfg.task.id} ({cfg.line.name}, {timing}, {episode_steps(cfg)} steps an episode)"
    makers = {ours: lambda: make_env(cfg), "CartPole-v1": lambda: gym.make("CartPole-v1")}
    rows = []
    for name, make in makers.items():
        train = ppo_steps_per_s(make, args.n_envs, args.steps, args.seed)
        alone = env_steps_per_s(make, args.steps, args.seed)
        rows.append((name, train, alone, train / alone))
    print(f"PPO ({PPO_SETTINGS}), {args.n_envs} dummy-vectorised envs, {args.steps} steps, 1 torch thread\n")
    header = ["env", "PPO training steps/s", "env alone steps/s", "env share of training time"]
    print(markdown_table(header, [[n, f"{t:,.0f}", f"{a:,.0f}", f"{s:.0%}"] for n, t, a, s in rows]))
    mine, cartpole = rows
    verdict = "met" if mine[3] <= GOAL_ENV_SHARE else "NOT met"
    print(f"\nPPO throughput, {cfg.task.id} / CartPole-v1: {mine[1] / cartpole[1]:.2f}")
    print(f"{cfg.task.id} takes {mine[3]:.0%} of PPO's training time (goal <= {GOAL_ENV_SHARE:.0%}: {verdict})")


if __name__ == "__main__":
    main()
