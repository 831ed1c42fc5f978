"""A run setting set on the command line that the configured agent does not read is refused, naming what to set."""

from __future__ import annotations

import re

import pytest

from experiments.errors import ConfigError
from experiments.run_settings import check_overrides
from tests.presets import TINY_RUN, compose_train

SCHEDULING_RULE = ["task=scheduling", "line=flow5_orders", "agent=fifo"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["experiment=energy_ars", "total_timesteps=5000"],
            "total_timesteps: agent RandomSearch (a trainer of its own, its budget: agent.iterations) does not read it",
        ),
        (
            ["experiment=energy_ars", "warm_start.epochs=3"],  # it fits the rule by least squares, no epochs
            "warm_start.epochs: agent RandomSearch (a trainer of its own, its budget: agent.iterations) does not",
        ),
        (["experiment=energy_ars", "~normalize"], "normalize: agent RandomSearch"),
        (
            ["experiment=scheduling", "final.episodes=2"],
            "final.episodes: agent SelfLabelling (a trainer of its own, its budget: agent.iterations, "
            "agent.max_minutes) does not read it",
        ),
        (["experiment=scheduling", "evaluation={episodes: 2}"], "evaluation: agent SelfLabelling"),  # not output only
        ([*SCHEDULING_RULE, "n_envs=4"], "n_envs: agent fifo (a heuristic, it trains nothing) does not read it"),
        ([*SCHEDULING_RULE, "seed=3"], "seed: agent fifo (a heuristic, it trains nothing) does not read it"),
    ],
)
def test_a_setting_the_agent_does_not_read_is_refused(overrides, message):
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}"):
        check_overrides(compose_train(overrides), overrides)


@pytest.mark.parametrize(
    "overrides",
    [
        ["experiment=energy_ars", "seed=2", "warm_start.steps=100", "evaluation.episodes=1", "final.episodes=2"],
        ["experiment=energy_ars", "progress_bar=false", "torch_threads=2", "evaluation.figures=false"],  # output only
        ["experiment=energy_ars", "warm_start={heuristic: tou_energy, steps: 10}"],  # a section holding what it reads
        ["experiment=scheduling", "seed=1", "agent.iterations=2"],
        [*SCHEDULING_RULE, "final.episodes=4", "evaluation.episodes=2", "heuristics={spt: {}}"],
        ["experiment=speed", *TINY_RUN],  # an SB3 algorithm reads them all
    ],
)
def test_what_the_agent_reads_passes(overrides):
    check_overrides(compose_train(overrides), overrides)


def test_a_preset_that_keeps_its_parents_budget_passes():
    """`energy_ars` inherits the PPO preset's total_timesteps: set by a preset, not asked for on the command line."""
    cfg = compose_train(["experiment=energy_ars"])
    assert cfg.total_timesteps == 200000
    check_overrides(cfg, ["experiment=energy_ars"])
