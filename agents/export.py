"""Export a trained SB3 policy as a deployable artifact: `policy.onnx` plus `manifest.json`.

The ONNX graph maps a float32 batch of (already normalised) observations to exactly the action that
`model.predict(obs, deterministic=True)` returns, SB3's clipping or unscaling of Box actions included.
`agents.artifact.PolicyArtifact` loads it, applying any VecNormalize statistics the manifest holds.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import math
import platform
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import numpy as np
import onnx
import torch
from gymnasium import spaces
from omegaconf import OmegaConf
from sb3_contrib import MaskablePPO
from stable_baselines3 import A2C, DQN, PPO, SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.vec_env import VecNormalize
from torch import nn

from agents.artifact import (
    ACTION_OUTPUT,
    FORMAT_VERSION,
    MANIFEST_FILE,
    MASK_INPUT,
    NETWORK_FILE,
    OBS_INPUT,
    space_to_json,
)

OPSET = 17
VERSIONED = ("stable-baselines3", "sb3-contrib", "torch", "onnx", "onnxruntime", "gymnasium", "numpy", "smartline")


class _ActorTrunk(nn.Module):
    """An actor-critic policy's actor path, as SB3's `get_distribution`: features, actor latent, action net."""

    def __init__(self, policy: Any) -> None:
        super().__init__()
        self.features = policy.pi_features_extractor
        self.mlp_extractor = policy.mlp_extractor
        self.action_net = policy.action_net

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Logits (Discrete, MultiBinary) or Gaussian means (Box)."""
        return self.action_net(self.mlp_extractor.forward_actor(self.features(obs)))


class _BoxHead(nn.Module):
    """A head that maps Gaussian means into a Box action space's bounds (as float32 constants)."""

    low: torch.Tensor
    high: torch.Tensor

    def __init__(self, space: spaces.Box) -> None:
        super().__init__()
        self.register_buffer("low", torch.as_tensor(space.low.ravel(), dtype=torch.float32))
        self.register_buffer("high", torch.as_tensor(space.high.ravel(), dtype=torch.float32))


class _Clip(_BoxHead):
    """Gaussian means clipped to the bounds, as `predict` does for unsquashed policies."""

    def forward(self, means: torch.Tensor) -> torch.Tensor:
        """np.clip(means, low, high)."""
        return torch.minimum(torch.maximum(means, self.low), self.high)


class _Unscale(_BoxHead):
    """Tanh-squashed means rescaled from [-1, 1] to the bounds (SAC, gSDE with squash_output)."""

    def forward(self, means: torch.Tensor) -> torch.Tensor:
        """`BasePolicy.unscale_action(tanh(means))`."""
        return self.low + 0.5 * (torch.tanh(means) + 1.0) * (self.high - self.low)


class _Argmax(nn.Module):
    """The best action by logits or q-values; with a mask, the best valid one (masked-out set to -inf)."""

    neg_inf: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("neg_inf", torch.tensor(float("-inf")))

    def forward(self, scores: torch.Tensor, *mask: torch.Tensor) -> torch.Tensor:
        """Argmax over the last axis, after masking if a mask is given."""
        if mask:
            scores = torch.where(mask[0], scores, self.neg_inf)
        return torch.argmax(scores, dim=1)


class _Bernoulli(nn.Module):
    """The most likely bits: logit > 0 (probability above one half), as int8 like MultiBinary."""

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        """Each bit's mode."""
        return (logits > 0).to(torch.int8)


class _Deterministic(nn.Module):
    """Observation batch (and mask) to the deterministic action: trunk then head."""

    def __init__(self, trunk: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.trunk = trunk
        self.head = head

    def forward(self, obs: torch.Tensor, *mask: torch.Tensor) -> torch.Tensor:
        """`preprocess_obs` of a Box is a float cast; the trunk's flatten extractor does the rest."""
        return self.head(self.trunk(obs.float()), *mask)


def export_policy(
    model: BaseAlgorithm,
    out_dir: str | Path,
    *,
    vec_normalize: VecNormalize | None = None,
    config: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    algorithm: str | None = None,
) -> Path:
    """Write `model`'s deterministic policy to `out_dir` as policy.onnx and manifest.json.

    Args:
        model: A trained PPO, A2C, SAC, DQN or MaskablePPO with a flat Box observation space and a
            Box, Discrete or MultiBinary action space (MaskablePPO: Discrete).
        out_dir: The artifact's folder, created if needed.
        vec_normalize: The VecNormalize the model was trained behind; its observation statistics go
            into the manifest and the artifact normalises raw observations with them.
        config: The run's configuration (a JSON-serialisable mapping or an OmegaConf config).
        metadata: Anything else to record (JSON-serialisable).
        algorithm: What trained the policy, as the manifest and evaluation labels name it (default:
            the model's class, e.g. "PPO"; a trainer that only carries its policy in `model` names itself).

    Returns:
        The artifact's folder.

    Raises:
        ValueError: an unsupported algorithm or space, or a config/metadata that is not JSON.
    """
    obs_dim = _flat_box_dim(model.observation_space)
    module, n_mask = _network(model)
    extras = {
        "vec_normalize": None if vec_normalize is None else _normalizer(vec_normalize, model.observation_space),
        "config": json_ready("config", config),
        "metadata": json_ready("metadata", metadata),
    }
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    policy = model.policy
    was_training = policy.training
    policy.set_training_mode(False)
    module.to(model.device).eval()
    try:
        data = _write_onnx(module, folder / NETWORK_FILE, obs_dim, n_mask, model.device)
    finally:
        policy.set_training_mode(was_training)
    manifest = {
        "format_version": FORMAT_VERSION,
        "algorithm": algorithm or type(model).__name__,
        "policy_class": type(policy).__name__,
        "observation_space": space_to_json(model.observation_space),
        "action_space": space_to_json(model.action_space),
        "action_mask": n_mask is not None,
        "onnx": {
            "file": NETWORK_FILE,
            "inputs": [OBS_INPUT] if n_mask is None else [OBS_INPUT, MASK_INPUT],
            "outputs": [ACTION_OUTPUT],
            "opset": OPSET,
        },
        "sha256": hashlib.sha256(data).hexdigest(),
        "versions": _versions(),
        **extras,
    }
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest, sort_keys=True, indent=2, allow_nan=False) + "\n")
    return folder


def _flat_box_dim(space: spaces.Space[Any]) -> int:
    """The length of a flat Box observation; a ValueError naming any other space."""
    if not isinstance(space, spaces.Box) or len(space.shape) != 1:
        raise ValueError(f"policy export needs a flat (1-D) Box observation space, got {space}")
    return int(space.shape[0])


def exportable(algorithm: type, observation_space: spaces.Space[Any], action_space: spaces.Space[Any]) -> None:
    """Check, before any training, that `export_policy` can write a policy of `algorithm` on these spaces.

    Raises:
        ValueError: an algorithm other than PPO, A2C, SAC, DQN and MaskablePPO (subclasses
            included), an observation space that is not a flat Box, or an action space the
            algorithm's export does not support; the message names what is supported.
    """
    _flat_box_dim(observation_space)
    if isinstance(action_space, spaces.Discrete) and action_space.start != 0:
        raise ValueError(f"SB3 acts in 0..n-1: a Discrete action space must start at 0, got {action_space}")
    name = algorithm.__name__
    if issubclass(algorithm, MaskablePPO):
        supported: tuple[type, ...] = (spaces.Discrete,)
    elif issubclass(algorithm, PPO | A2C):
        supported = (spaces.Box, spaces.Discrete, spaces.MultiBinary)
    elif issubclass(algorithm, SAC):
        supported = (spaces.Box,)
    elif issubclass(algorithm, DQN):
        supported = (spaces.Discrete,)
    else:
        raise ValueError(f"cannot export {name}: supported are PPO, A2C, SAC, DQN and MaskablePPO")
    if not isinstance(action_space, supported):
        kinds = ", ".join(k.__name__ for k in supported)
        raise ValueError(f"{name} export supports {kinds} action spaces, got {action_space}")


def _network(model: BaseAlgorithm) -> tuple[_Deterministic, int | None]:
    """The model's deterministic-action module and its mask width (None if it takes no mask)."""
    act_space = model.action_space
    exportable(type(model), model.observation_space, act_space)
    policy: Any = model.policy
    if isinstance(model, MaskablePPO):
        return _Deterministic(_ActorTrunk(policy), _Argmax()), int(cast(spaces.Discrete, act_space).n)
    if isinstance(model, PPO | A2C):
        if isinstance(act_space, spaces.Box):
            head: nn.Module = _Unscale(act_space) if policy.squash_output else _Clip(act_space)
        elif isinstance(act_space, spaces.Discrete):
            head = _Argmax()
        else:
            head = _Bernoulli()
        return _Deterministic(_ActorTrunk(policy), head), None
    if isinstance(model, SAC):
        actor = policy.actor
        trunk = nn.Sequential(actor.features_extractor, actor.latent_pi, actor.mu)
        return _Deterministic(trunk, _Unscale(cast(spaces.Box, act_space))), None
    q_net = policy.q_net  # DQN, as `exportable` checked
    return _Deterministic(nn.Sequential(q_net.features_extractor, q_net.q_net), _Argmax()), None


def _write_onnx(module: nn.Module, file: Path, obs_dim: int, n_mask: int | None, device: torch.device) -> bytes:
    """Trace `module` to `file` with the legacy TorchScript exporter (batch axis dynamic); check and return it."""
    obs = torch.zeros((1, obs_dim), dtype=torch.float32, device=device)
    args: tuple[torch.Tensor, ...] = (obs,)
    names = [OBS_INPUT]
    if n_mask is not None:
        args = (obs, torch.ones((1, n_mask), dtype=torch.bool, device=device))
        names.append(MASK_INPUT)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="You are using the legacy TorchScript-based ONNX export")
        warnings.filterwarnings("ignore", message="The feature will be removed")
        torch.onnx.export(
            module,
            args,
            file,
            input_names=names,
            output_names=[ACTION_OUTPUT],
            dynamic_axes={name: {0: "batch"} for name in [*names, ACTION_OUTPUT]},
            opset_version=OPSET,
            dynamo=False,
        )
    data = file.read_bytes()
    onnx.checker.check_model(onnx.load_from_string(data))
    return data


def _normalizer(vec_normalize: VecNormalize, obs_space: spaces.Space[Any]) -> dict[str, Any] | None:
    """The observation statistics `VecNormalize.normalize_obs` applies; None where it normalises only rewards."""
    if not vec_normalize.norm_obs:
        return None  # SB3 keeps no observation statistics then, and the policy saw raw observations
    rms = vec_normalize.obs_rms
    if not isinstance(rms, RunningMeanStd) or rms.mean.shape != obs_space.shape:
        raise ValueError(f"vec_normalize must hold one RunningMeanStd of shape {obs_space.shape} for the observations")
    return {
        "norm_obs": bool(vec_normalize.norm_obs),
        "obs_mean": np.asarray(rms.mean, dtype=np.float64).tolist(),
        "obs_var": np.asarray(rms.var, dtype=np.float64).tolist(),
        "clip_obs": float(vec_normalize.clip_obs),
        "epsilon": float(vec_normalize.epsilon),
    }


def json_ready(name: str, value: Mapping[str, Any] | None) -> Any:
    """`value` as plain JSON data (OmegaConf configs resolved), or a ValueError naming the first bad key.

    `name` prefixes the key in the message (`config.normalize.clip_obs`); an empty `name` leaves
    the key alone.
    """
    if value is None:
        return None
    plain = OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
    try:
        return json.loads(json.dumps(plain, allow_nan=False))
    except (TypeError, ValueError) as err:
        where = ".".join(p for p in (name, _first_non_json(plain)) if p)
        raise ValueError(
            f"{where or 'value'}: must be JSON-serialisable (a finite number, text, list, mapping): {err}"
        ) from err


def _first_non_json(node: Any, path: str = "") -> str:
    """The key path of the first value in `node` JSON cannot carry ("" if none is found)."""
    if isinstance(node, Mapping):
        items: Any = ((f"{path}.{k}" if path else str(k), v) for k, v in node.items())
    elif isinstance(node, list | tuple):
        items = ((f"{path}[{i}]", v) for i, v in enumerate(node))
    elif isinstance(node, float):
        return "" if math.isfinite(node) else path
    else:
        return "" if node is None or isinstance(node, str | int | bool) else path
    return next((bad for key, v in items if (bad := _first_non_json(v, key))), "")


def _versions() -> dict[str, str | None]:
    """Python's and the relevant packages' versions (None for a package that is not installed)."""
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found
