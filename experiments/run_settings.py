"""Which of `configs/train.yaml`'s run settings an agent reads: one set on the command line that it does not is refused.

An SB3 algorithm reads them all. A trainer of its own (random search, self-labelling) runs its own
loop and declares what it reads (`reads`, train.yaml keys or sections) and what sets its budget
(`budget`); a heuristic agent trains nothing. `experiment=energy_ars total_timesteps=5000` ran
the preset's 600 iterations (28 minutes) and recorded 5,000 steps in the run's config; now it is a
config error naming what to set instead. Settings a preset sets are not checked (the ARS presets
keep their PPO parents' budgets), nor the ones that only shape the output (`_PRESENTATION`).
"""

from __future__ import annotations

from collections.abc import Sequence

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from configs import CONFIG_DIR
from experiments.build import agent_target, is_learner, is_trainer
from experiments.errors import ConfigError

HEURISTIC_READS = ("heuristics", "evaluation.seed", "evaluation.episodes", "final")
_PRESENTATION = ("progress_bar", "torch_threads", "evaluation.figures")


def check_overrides(cfg: DictConfig, overrides: Sequence[str]) -> None:
    """Refuse a command-line override (Hydra's `key=value`) of a run setting the configured agent does not read.

    Raises:
        ConfigError: naming the setting, the agent, and what sets its budget where it has one.
    """
    if is_learner(cfg):
        return
    target = agent_target(cfg)
    if is_trainer(cfg):
        budget = getattr(target, "budget", None)
        reads = tuple(getattr(target, "reads", ()))
        who = f"agent {target.__name__} (a trainer of its own{f', its budget: {budget}' if budget else ''})"
    else:
        reads, who = HEURISTIC_READS, f"agent {cfg.agent.get('name', target.__name__)} (a heuristic, it trains nothing)"
    settings = [k for k in OmegaConf.load(CONFIG_DIR / "train.yaml") if k not in ("defaults", "hydra")]
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        key = override.key_or_group
        shown_only = any(key == n or key.startswith(f"{n}.") for n in _PRESENTATION)
        if key.split(".")[0] not in settings or shown_only or _within(key, reads):
            continue
        raise ConfigError(f"{key}: {who} does not read it; leave it out")


def _within(key: str, names: Sequence[str]) -> bool:
    """Whether `key` is one of `names`, inside one, or a section holding one."""
    return any(key == n or key.startswith(f"{n}.") or n.startswith(f"{key}.") for n in names)
