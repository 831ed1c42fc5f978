"""The policies an evaluation names on its command line: policy artifact folders, or heuristics by name."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym

from agents.artifact import ArtifactError, PolicyArtifact
from agents.baselines import BASELINES, make_baseline
from agents.rollout import Policy
from experiments.build import refused_parameter
from experiments.errors import ConfigError, did_you_mean


def artifact_run(path: Path) -> Path:
    """The train run an artifact folder belongs to (`<run>/artifact`, or the folder itself)."""
    return path.parent if path.name == "artifact" else path


def artifact_label(path: Path, algorithm: str) -> str:
    """How tables name an artifact: its algorithm and run, e.g. `PPO Speed/2026-11-30_01-02-03_418205`."""
    run = artifact_run(path)
    return f"{algorithm} {run.parent.name}/{run.name}"


def distinct_labels(labels: Sequence[str], specs: Sequence[Any]) -> list[str]:
    """`labels` with every one its own: a label several policies share gets each one's spec (as named) added.

    Two artifacts of runs with the same task and run folder name (under different roots) shared a
    label, and their rows were pooled as one policy over twice the seeds.
    """
    counts = Counter(labels)
    return [f"{label} ({spec})" if counts[label] > 1 else label for label, spec in zip(labels, specs, strict=True)]


def load_policy(
    spec: str, env: gym.Env[Any, Any], params: dict[str, Any] | None = None, key: str = "heuristics"
) -> tuple[str, Policy]:
    """A policy named on the command line and its label: an artifact folder, or a heuristic's name.

    An artifact is labelled by its algorithm and run, e.g. `PPO Speed/2026-11-30_01-02-03_418205`; a
    heuristic gets `params` over its shipped config (its tuned values, from the config's `key`, where a
    parameter it refuses is named: `heuristics.factory_rules.speed_ratio`).
    """
    path = Path(spec)
    if (path / "manifest.json").is_file():
        try:
            artifact = PolicyArtifact.load(path)
            artifact.check_fits(env.observation_space, env.action_space)
        except (OSError, ArtifactError) as exc:
            raise ConfigError(f"policies: {exc}") from exc
        return artifact_label(path, artifact.manifest["algorithm"]), artifact
    if spec in BASELINES:
        try:
            return spec, make_baseline(env, spec, **(params or {}))
        except (TypeError, ValueError) as exc:
            refused = refused_parameter(spec, params or {}, exc)
            raise ConfigError(f"{key}.{spec}.{refused}: {exc}" if refused else f"policies: {spec}: {exc}") from exc
    if path.exists():
        raise ConfigError(f"policies: {spec} has no manifest.json; it is not a policy artifact folder")
    if "/" in spec or "\\" in spec:
        raise ConfigError(f"policies: artifact folder {spec} does not exist")
    raise ConfigError(
        f"policies: {spec!r} is neither an artifact folder nor a heuristic{did_you_mean(spec, BASELINES)}; "
        f"heuristics: {', '.join(BASELINES)}"
    )
