"""Load an exported policy (ONNX network + JSON manifest) and act through SB3's `predict` signature.

The loader needs numpy, gymnasium and onnxruntime only: no torch, no SB3, no pickle. `agents.export`
writes the artifacts; the manifest layout and the space (de)serialisation both sides share live here.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from gymnasium import spaces

FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
NETWORK_FILE = "policy.onnx"
OBS_INPUT = "obs"
MASK_INPUT = "action_mask"
ACTION_OUTPUT = "action"


class ArtifactError(ValueError):
    """A policy artifact that is malformed or whose network does not match its manifest."""


def space_to_json(space: spaces.Space[Any]) -> dict[str, Any]:
    """Describe a Box, Discrete or MultiBinary space as JSON-ready data (non-finite bounds as strings)."""
    if isinstance(space, spaces.Box):
        return {
            "type": "Box",
            "shape": list(space.shape),
            "low": _floats(space.low),
            "high": _floats(space.high),
            "dtype": str(space.dtype),
        }
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start), "dtype": str(space.dtype)}
    if isinstance(space, spaces.MultiBinary):
        n = space.n if isinstance(space.n, int) else list(space.n)
        return {"type": "MultiBinary", "n": n, "shape": list(space.shape), "dtype": str(space.dtype)}
    raise ValueError(f"unsupported space {space}: expected Box, Discrete or MultiBinary")


def space_from_json(data: Mapping[str, Any]) -> spaces.Space[Any]:
    """Rebuild the gymnasium space that `space_to_json` described."""
    kind = data["type"]
    if kind == "Box":
        shape = tuple(int(d) for d in data["shape"])
        dtype = np.dtype(data["dtype"])
        low = np.array([float(v) for v in data["low"]]).reshape(shape).astype(dtype)
        high = np.array([float(v) for v in data["high"]]).reshape(shape).astype(dtype)
        return spaces.Box(low=low, high=high, shape=shape, dtype=dtype.type)
    if kind == "Discrete":
        return spaces.Discrete(int(data["n"]), start=int(data.get("start", 0)))
    if kind == "MultiBinary":
        n = data["n"]
        return spaces.MultiBinary(n if isinstance(n, int) else [int(d) for d in n])
    raise ValueError(f"unknown space type {kind!r}")


def _floats(values: np.ndarray) -> list[float | str]:
    """A flat list of floats with inf/-inf/nan spelt as strings, so the JSON stays standard."""
    return [v if math.isfinite(v) else str(v) for v in np.asarray(values, dtype=np.float64).ravel().tolist()]


class PolicyArtifact:
    """An exported deterministic policy that stands in for an SB3 model's `predict` (e.g. in `evaluate_policy`).

    Attributes:
        path: The artifact's folder.
        manifest: The parsed manifest.json.
        observation_space: The raw (un-normalised) observation space the policy was trained on.
        action_space: The action space its actions belong to.
        takes_action_mask: Whether `predict` needs `action_masks` (MaskablePPO).
        sha256: The SHA-256 that pins the artifact whole, of its network followed by its manifest,
            bytes as loaded (not a second read of the files, which may have changed since); the
            manifest counts as much as the network: it holds the line's limits, the task and the
            statistics the policy's inputs are scaled by. Empty until `load` sets it.
    """

    def __init__(self, path: Path, manifest: dict[str, Any], session: ort.InferenceSession) -> None:
        self.path = path
        self.manifest = manifest
        self.sha256 = ""
        self._session = session
        self.observation_space: spaces.Box = space_from_json(manifest["observation_space"])  # type: ignore[assignment]
        self.action_space: spaces.Space[Any] = space_from_json(manifest["action_space"])
        self._action_shape: tuple[int, ...] = self.action_space.shape or ()
        self.takes_action_mask = bool(manifest["action_mask"])
        self._n_mask = int(manifest["action_space"]["n"]) if self.takes_action_mask else 0
        self._inputs: list[str] = list(manifest["onnx"]["inputs"])
        self._output: str = manifest["onnx"]["outputs"][0]
        if len(self._inputs) != 1 + self.takes_action_mask:
            raise ValueError(f"inputs {self._inputs} do not fit action_mask={self.takes_action_mask}")
        stats = manifest.get("vec_normalize")
        self._normalizer: tuple[np.ndarray, np.ndarray, float] | None = None
        if stats is not None and stats["norm_obs"]:
            mean = np.asarray(stats["obs_mean"], dtype=np.float64)
            std = np.sqrt(np.asarray(stats["obs_var"], dtype=np.float64) + float(stats["epsilon"]))
            if mean.shape != self.observation_space.shape or std.shape != mean.shape:
                raise ValueError(
                    f"vec_normalize statistics of shapes {mean.shape} and {std.shape} do not fit the "
                    f"observation space's {self.observation_space.shape}"
                )
            self._normalizer = (mean, std, float(stats["clip_obs"]))

    @classmethod
    def load(cls, path: str | Path) -> PolicyArtifact:
        """Load the artifact in folder `path`, checking the network's SHA-256 against the manifest.

        Raises:
            FileNotFoundError: manifest.json or policy.onnx is missing.
            ArtifactError: the manifest is malformed, or policy.onnx's hash, inputs or per-row
                shapes do not match it.
        """
        folder = Path(path)
        manifest_file = folder / MANIFEST_FILE
        network_file = folder / NETWORK_FILE
        for file in (manifest_file, network_file):
            if not file.is_file():
                raise FileNotFoundError(f"policy artifact is missing {file}")
        manifest_bytes = manifest_file.read_bytes()
        try:
            manifest = json.loads(manifest_bytes)
            if not isinstance(manifest, dict):
                raise TypeError(f"expected a JSON object, got {type(manifest).__name__}")
            if manifest.get("format_version") != FORMAT_VERSION:
                raise ValueError(f"format_version {manifest.get('format_version')!r}, expected {FORMAT_VERSION}")
            expected = str(manifest["sha256"])
        except (ValueError, TypeError, KeyError) as err:
            raise ArtifactError(f"bad policy manifest {manifest_file}: {err!r}") from err
        data = network_file.read_bytes()
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected:
            raise ArtifactError(
                f"sha256 mismatch for {network_file}: manifest {manifest_file} says {expected}, file has {actual}"
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # small MLPs: one thread is fastest and leaves the cores to the line
        options.inter_op_num_threads = 1
        try:
            session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime's errors derive from Exception only
            raise ArtifactError(f"onnxruntime cannot load {network_file}: {err}") from err
        try:
            artifact = cls(folder, manifest, session)
        except (ValueError, TypeError, KeyError, IndexError) as err:
            raise ArtifactError(f"bad policy manifest {manifest_file}: {err!r}") from err
        names = [i.name for i in session.get_inputs()]
        if names != artifact._inputs:
            raise ArtifactError(
                f"{network_file} takes inputs {names}, manifest {manifest_file} says {artifact._inputs}"
            )
        found = {node.name: list(node.shape[1:]) for node in [*session.get_inputs(), *session.get_outputs()]}
        for name, dims in artifact._row_dims().items():
            if found.get(name) != dims:
                raise ArtifactError(
                    f"{network_file}'s {name!r} has {found.get(name)} per row, the spaces of manifest "
                    f"{manifest_file} need {dims}"
                )
        artifact.sha256 = hashlib.sha256(data + manifest_bytes).hexdigest()
        return artifact

    def _row_dims(self) -> dict[str, list[int]]:
        """The dimensions past the batch axis that the spaces need of each network input and output.

        `predict` feeds observations of the observation space's shape (and masks of one flag per
        action) and reads one flat action per row (none for a Discrete action).
        """
        dims = {
            self._inputs[0]: list(self.observation_space.shape),
            self._output: [math.prod(self._action_shape)] if self._action_shape else [],
        }
        if self.takes_action_mask:
            dims[self._inputs[1]] = [self._n_mask]
        return dims

    def check_fits(self, observation_space: spaces.Space[Any], action_space: spaces.Space[Any]) -> None:
        """Check that the policy acts on an env of these spaces (an artifact of another line or task does not).

        Raises:
            ArtifactError: the observation space is not a Box of the same shape and bounds, or the
                action space differs; the message names the artifact and both spaces.
        """
        ours = self.observation_space
        if (
            not isinstance(observation_space, spaces.Box)
            or observation_space.shape != ours.shape
            or not (np.allclose(observation_space.low, ours.low) and np.allclose(observation_space.high, ours.high))
        ):
            raise ArtifactError(
                f"policy artifact {self.path}: its observation space {ours} does not fit the env's "
                f"{observation_space} (another line or task?)"
            )
        if action_space != self.action_space:
            raise ArtifactError(
                f"policy artifact {self.path}: its action space {self.action_space} does not fit the env's "
                f"{action_space} (another task, or other task settings?)"
            )

    def predict(
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """The deterministic action for one raw observation or a batch of them, as SB3's `predict` returns it.

        Args:
            observation: One observation of the observation space's shape, or a batch (n, *shape).
            state: Ignored (the policies are not recurrent).
            episode_start: Ignored.
            deterministic: Must be True: the artifact holds only the deterministic policy.
            action_masks: Valid actions, shape (n_actions,) or (n, n_actions); required by masked
                policies, ignored by the others.

        Returns:
            The action (batch first if the observation was a batch) in the action space's dtype and bounds, and None.
        """
        if not deterministic:
            raise ValueError("a policy artifact holds only the deterministic policy: use deterministic=True")
        obs = np.asarray(observation)
        shape = self.observation_space.shape
        single = obs.shape == shape
        if not single and obs.shape[1:] != shape:
            raise ValueError(f"observation of shape {obs.shape} is neither {shape} nor a batch (n, *{shape})")
        batch = obs.reshape((-1, *shape))
        if self._normalizer is not None:
            mean, std, clip = self._normalizer
            batch = np.clip((batch - mean) / std, -clip, clip)
        feeds = {self._inputs[0]: batch.astype(np.float32)}
        if self.takes_action_mask:
            feeds[self._inputs[1]] = self._masks(action_masks, len(batch))
        (action,) = self._session.run([self._output], feeds)
        action = action.reshape((-1, *self._action_shape)).astype(self.action_space.dtype)
        if isinstance(self.action_space, spaces.Box):  # the network clips in float32: 0.15 came out 0.15000000596
            action = np.clip(action, self.action_space.low, self.action_space.high)
        return (action.squeeze(axis=0) if single else action), None

    def _masks(self, action_masks: np.ndarray | None, n_obs: int) -> np.ndarray:
        """The masks as a (n_obs, n_actions) bool array, each row with at least one valid action."""
        if action_masks is None:
            raise ValueError("this policy was trained with action masks: pass action_masks to predict")
        n_actions = self._n_mask
        masks = np.asarray(action_masks).astype(bool)
        if masks.size != n_obs * n_actions:
            raise ValueError(f"action_masks of shape {masks.shape} do not fit {n_obs} observation(s) x {n_actions}")
        masks = masks.reshape(n_obs, n_actions)
        if not masks.any(axis=1).all():
            raise ValueError("action_masks allow no action for some observation")
        return masks
