"""A small exported policy artifact of the Speed task on flow5, as `experiments.train` writes one."""

from __future__ import annotations

from pathlib import Path

from experiments.bench_deploy import untrained_artifact

OFFSET = (1.0, -1.0, 0.5, -0.5, 0.0)  # per station, in the action's [-1, 1]: speeds the plant guard clamps


def speed_artifact(folder: Path, warmup_steps: int = 120) -> Path:
    """An untrained PPO actor (seeded), its output offset by `OFFSET`, behind observation statistics.

    Built by `experiments.bench_deploy.untrained_artifact`: the network `experiment=speed` trains,
    and a manifest with the composed train config (line flow5, task Speed), so `experiments.deploy`
    finds the line and the task in it, and `vec_normalize` statistics for the out-of-distribution gate.
    """
    return untrained_artifact(folder, warmup_steps=warmup_steps, action_offset=OFFSET)
