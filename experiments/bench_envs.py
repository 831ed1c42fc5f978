"""Benchmark env steps per second for every task, and Scheduling on ta01 against JSSEnv.

Each task steps its default line with random valid actions (masked for Scheduling), resetting
at the end of each episode; JSSEnv (`pip install jssenv`, the `bench` extra) steps its own copy
of ta01 with random legal actions in the same run. Raw env objects on both sides, no wrappers.
Scheduling on an instance runs on the array job shop (`JobShopLine`), which runs the twin's schedule.

    python -m experiments.bench_envs                   # every task, then ta01 vs JSSEnv
    python -m experiments.bench_envs --steps 5000 --repeats 1
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from envs.registration import TASKS, make_scheduling, make_setpoint_env
from experiments.tables import markdown_table

GOAL_STEPS_PER_S = 5000.0  # every task on its default line
GOAL_VS_JSSENV = 1.0  # Scheduling on ta01, steps per second (issue 7: at least as fast as JSSEnv)


@dataclass(frozen=True)
class Rate:
    """Speed of one env under random valid actions."""

    name: str
    steps: int
    wall_s: float  # best of the repeats
    episodes: int  # episodes finished during the timed steps

    @property
    def steps_per_s(self) -> float:
        """Env steps per wall-second."""
        return self.steps / self.wall_s


def time_env(
    name: str,
    reset: Callable[[int], Any],
    step: Callable[[Any], bool],
    steps: int,
    repeats: int,
) -> Rate:
    """Best wall time of `repeats` runs of `steps` steps; `step` returns True at an episode end."""
    best, episodes = float("inf"), 0
    for _ in range(repeats):
        done_episodes, seed = 0, 0
        reset(seed)
        start = time.perf_counter()
        for _ in range(steps):
            if step(None):
                done_episodes += 1
                seed += 1
                reset(seed)
        wall = time.perf_counter() - start
        if wall < best:
            best, episodes = wall, done_episodes
    return Rate(name, steps, best, episodes)


def ours(task: str, steps: int, repeats: int, instance: str | None = None) -> Rate:
    """Time one of our tasks on its default line (or Scheduling on `instance`)."""
    rng = np.random.default_rng(0)
    if task == "Scheduling":
        env: Any = make_scheduling(instance=instance)

        def action() -> Any:
            return int(rng.choice(np.flatnonzero(env.action_masks())))

    else:
        env = make_setpoint_env(task, None, None, None, None)
        env.action_space.seed(0)

        def action() -> Any:
            return env.action_space.sample()

    limit = TASKS[task][3]
    count = [0]

    def reset(seed: int) -> None:
        env.reset(seed=seed)
        count[0] = 0

    def step(_: Any) -> bool:
        _, _, terminated, _, _ = env.step(action())
        count[0] += 1
        return bool(terminated or count[0] >= limit)

    label = f"{task} ({instance})" if instance else task
    return time_env(label, reset, step, steps, repeats)


def jssenv(instance: str, steps: int, repeats: int) -> Rate | None:
    """Time JSSEnv on its own copy of `instance`, or None if JSSEnv is not installed."""
    try:
        import JSSEnv
        from JSSEnv.envs.jss_env import JssEnv
    except ImportError:
        return None
    path = Path(JSSEnv.__file__).parent / "envs" / "instances" / instance
    env = JssEnv({"instance_path": str(path)})
    rng = np.random.default_rng(0)
    obs: list[Any] = [None]

    def reset(_: int) -> None:
        obs[0] = env.reset()  # JSSEnv's reset takes no seed

    def step(_: Any) -> bool:
        action = int(rng.choice(np.flatnonzero(obs[0]["action_mask"])))
        obs[0], _, terminated, _, _ = env.step(action)
        return bool(terminated)

    return time_env(f"JSSEnv ({instance})", reset, step, steps, repeats)


def table(rates: Sequence[Rate]) -> str:
    """Markdown table of the rates."""
    rows = [
        (
            r.name,
            f"{r.steps_per_s:,.0f}",
            f"{1e6 / r.steps_per_s:,.1f}",
            f"{r.steps / r.episodes:,.0f}" if r.episodes else "-",
        )
        for r in rates
    ]
    return markdown_table(("env", "steps/s", "us/step", "steps per episode (approx.)"), rows)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark and print its tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000, help="timed steps per env")
    parser.add_argument("--repeats", type=int, default=3, help="report the best of this many runs")
    parser.add_argument("--instance", default="ta01", help="job-shop instance for the JSSEnv comparison")
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds of the JSSEnv comparison")
    args = parser.parse_args(argv)

    tasks = [ours(task, args.steps, args.repeats) for task in TASKS]
    print(f"Every task on its default line, random valid actions, best of {args.repeats} x {args.steps} steps\n")
    print(table(tasks))
    slowest = min(tasks, key=lambda r: r.steps_per_s)
    verdict = "met" if slowest.steps_per_s >= GOAL_STEPS_PER_S else "NOT met"
    goal = f"goal >= {GOAL_STEPS_PER_S:,.0f}: {verdict}"
    print(f"\nslowest: {slowest.name} at {slowest.steps_per_s:,.0f} steps/s ({goal})")

    # Rounds alternate the two envs back to back, so a slow spell of the machine hits both alike;
    # the figure is the median of the rounds' ratios.
    rounds = [
        (ours("Scheduling", args.steps, 1, instance=args.instance), jssenv(args.instance, args.steps, 1))
        for _ in range(args.rounds)
    ]
    mine = min((m for m, _ in rounds), key=lambda r: r.wall_s)
    theirs_all = [t for _, t in rounds if t is not None]
    print(f"\nScheduling on {args.instance} against JSSEnv, random valid actions, best of {args.rounds} rounds\n")
    if not theirs_all:
        print(table([mine]))
        print("\nJSSEnv is not installed: pip install -e '.[bench]' to compare")
        return
    theirs = min(theirs_all, key=lambda r: r.wall_s)
    print(table([mine, theirs]))
    ratios = sorted(m.steps_per_s / t.steps_per_s for m, t in rounds if t is not None)
    ratio = float(np.median(ratios))
    per_episode = (mine.episodes / mine.wall_s) / (theirs.episodes / theirs.wall_s) if theirs.episodes else float("nan")
    verdict = "met" if ratio >= GOAL_VS_JSSENV else "NOT met"
    at_least = sum(r >= GOAL_VS_JSSENV for r in ratios)
    spread = f"rounds {ratios[0]:.2f}x to {ratios[-1]:.2f}x, {at_least} of {len(ratios)} at or above the goal"
    print(f"\nsteps/s, ours / JSSEnv: median {ratio:.2f}x, {spread} (goal >= {GOAL_VS_JSSENV:.1f}x: {verdict})")
    print(f"episodes/s, ours / JSSEnv (best rounds): {per_episode:.2f}x")


if __name__ == "__main__":
    main()
