"""Exported policy artifacts act exactly as `model.predict(..., deterministic=True)` and refuse tampering."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from sb3_contrib import MaskablePPO
from stable_baselines3 import A2C, DQN, PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

import envs  # noqa: F401  (registers the ids)
from agents.artifact import MANIFEST_FILE, NETWORK_FILE, ArtifactError, PolicyArtifact
from agents.export import export_policy, exportable
from experiments.errors import ConfigError
from experiments.policies import load_policy

N_OBS = 1_000


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny networks train fastest on one thread, and do not crawl when other processes hold the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class BoxEnv(gym.Env):
    """A tiny env with asymmetric Box actions, so parity covers SB3's clipping and unscaling."""

    observation_space = gym.spaces.Box(-3.0, 3.0, (6,), np.float32)
    action_space = gym.spaces.Box(
        low=np.array([-2.0, 0.0, 0.1], np.float32), high=np.array([1.0, 4.0, 0.15], np.float32), dtype=np.float32
    )

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start an episode at a random observation."""
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        """Reward closeness to 0.5; truncate after 32 steps."""
        self.t += 1
        reward = -float(np.sum(np.square(action - 0.5)))
        return self._obs(), reward, False, self.t >= 32, {}

    def _obs(self) -> np.ndarray:
        return self.np_random.uniform(-3.0, 3.0, 6).astype(np.float32)


def small_net(**extra: Any) -> dict[str, Any]:
    """Fresh policy_kwargs for a small network (SB3 writes into the dict it is given, so never share one)."""
    return {"net_arch": [32, 32], **extra}


def random_obs(space: gym.spaces.Box, seed: int = 0) -> np.ndarray:
    """N_OBS seeded samples of `space`."""
    box = gym.spaces.Box(space.low, space.high, dtype=space.dtype, seed=seed)
    return np.stack([box.sample() for _ in range(N_OBS)])


def exported(model: BaseAlgorithm, tmp_path, **kwargs: Any) -> PolicyArtifact:
    return PolicyArtifact.load(export_policy(model, tmp_path / "artifact", **kwargs))


def assert_parity(
    model: BaseAlgorithm,
    artifact: PolicyArtifact,
    obs: np.ndarray,
    sb3_obs: np.ndarray | None = None,
    masks: np.ndarray | None = None,
) -> None:
    """Batch and single-observation actions equal SB3's: continuous within 1e-5, discrete exactly."""
    sb3_obs = obs if sb3_obs is None else sb3_obs
    extra: dict[str, Any] = {} if masks is None else {"action_masks": masks}
    expected, _ = model.predict(sb3_obs, deterministic=True, **extra)
    actual, state = artifact.predict(obs, deterministic=True, action_masks=masks)
    assert state is None
    assert actual.shape == expected.shape
    assert actual.dtype == artifact.action_space.dtype
    assert len(np.unique(expected, axis=0)) > 1, "a constant policy would make parity vacuous"
    if isinstance(artifact.action_space, gym.spaces.Box):
        np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-5)
    else:
        np.testing.assert_array_equal(actual, expected)
    single_extra = {} if masks is None else {"action_masks": masks[0]}
    one, _ = artifact.predict(obs[0], **single_extra)
    sb3_one, _ = model.predict(sb3_obs[0], deterministic=True, **single_extra)
    assert one.shape == sb3_one.shape == artifact.action_space.shape
    np.testing.assert_allclose(one, actual[0], rtol=0, atol=0)


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"use_sde": True, "policy_kwargs": small_net(squash_output=True)}],
    ids=["gaussian-clipped", "gsde-squashed"],
)
def test_ppo_box_parity(tmp_path, kwargs):
    options = {"policy_kwargs": small_net(), **kwargs}
    model = PPO("MlpPolicy", BoxEnv(), n_steps=128, batch_size=64, n_epochs=2, seed=0, device="cpu", **options)
    model.learn(256)
    artifact = exported(model, tmp_path)
    obs = random_obs(model.observation_space)
    assert_parity(model, artifact, obs)
    actions, _ = artifact.predict(obs)
    assert artifact.action_space.contains(actions[0])
    assert np.all(actions >= artifact.action_space.low)
    assert np.all(actions <= artifact.action_space.high)


class Float64BoxEnv(BoxEnv):
    """BoxEnv with float64 actions, whose bounds float32 cannot hold exactly (0.15 rounds up)."""

    action_space = gym.spaces.Box(low=np.array([-2.0, 0.1]), high=np.array([1.0, 0.15]), dtype=np.float64)


def test_a_float64_action_at_its_bound_stays_inside_the_space(tmp_path):
    """The network clips in float32: at the high bound 0.15 it gave 0.15000000596, outside the space."""
    model = PPO("MlpPolicy", Float64BoxEnv(), n_steps=64, batch_size=64, n_epochs=1, seed=0, device="cpu")
    with torch.no_grad():
        model.policy.action_net.bias.fill_(100.0)  # every action saturates at its high bound
    actions, _ = exported(model, tmp_path).predict(random_obs(model.observation_space))
    assert actions.dtype == np.float64
    np.testing.assert_array_equal(actions, np.broadcast_to(model.action_space.high, actions.shape))
    assert all(model.action_space.contains(a) for a in actions)


def test_a2c_multibinary_parity(tmp_path):
    env = gym.make("smartline/Maintenance-v0")
    policy_kwargs = small_net(share_features_extractor=False)
    model = A2C("MlpPolicy", env, policy_kwargs=policy_kwargs, seed=0, device="cpu")
    model.learn(256)
    artifact = exported(model, tmp_path)
    assert isinstance(artifact.action_space, gym.spaces.MultiBinary)
    assert_parity(model, artifact, random_obs(model.observation_space))


def test_sac_box_parity(tmp_path):
    model = SAC(
        "MlpPolicy", BoxEnv(), learning_starts=64, batch_size=64, policy_kwargs=small_net(), seed=0, device="cpu"
    )
    model.learn(256)
    assert_parity(model, exported(model, tmp_path), random_obs(model.observation_space))


def test_dqn_discrete_parity(tmp_path):
    env = gym.make("smartline/Inventory-v0")
    model = DQN("MlpPolicy", env, learning_starts=64, policy_kwargs=small_net(), seed=0, device="cpu")
    model.learn(256)
    artifact = exported(model, tmp_path)
    assert isinstance(artifact.action_space, gym.spaces.Discrete)
    assert_parity(model, artifact, random_obs(model.observation_space))


def test_maskable_ppo_parity_with_random_masks(tmp_path):
    env = gym.make("smartline/Scheduling-v0", instance="ft06")
    model = MaskablePPO("MlpPolicy", env, n_steps=128, batch_size=64, n_epochs=2, seed=0, device="cpu")
    model.learn(256)
    artifact = exported(model, tmp_path)
    assert artifact.takes_action_mask
    n = int(env.action_space.n)
    rng = np.random.default_rng(1)
    masks = rng.random((N_OBS, n)) < 0.4
    masks[np.arange(N_OBS), rng.integers(0, n, N_OBS)] = True
    obs = random_obs(model.observation_space)
    assert_parity(model, artifact, obs, masks=masks)
    actions, _ = artifact.predict(obs, action_masks=masks.astype(np.float32))
    assert masks[np.arange(N_OBS), actions].all()
    with pytest.raises(ValueError, match="action_masks"):
        artifact.predict(obs)
    with pytest.raises(ValueError, match="no action"):
        artifact.predict(obs[0], action_masks=np.zeros(n, bool))


def test_vec_normalize_parity_and_evaluate_policy(tmp_path):
    venv = VecNormalize(DummyVecEnv([lambda: gym.make("smartline/Speed-v0")]), clip_obs=5.0)
    model = PPO(
        "MlpPolicy", venv, n_steps=128, batch_size=64, n_epochs=2, policy_kwargs=small_net(), seed=0, device="cpu"
    )
    model.learn(256)
    venv.obs_rms.update(np.random.default_rng(2).normal(0.4, 3.0, (500, *venv.observation_space.shape)))
    assert np.abs(venv.obs_rms.mean).max() > 0.1
    assert np.abs(venv.obs_rms.var - 1.0).max() > 0.5
    artifact = exported(model, tmp_path, vec_normalize=venv)
    stats = artifact.manifest["vec_normalize"]
    assert stats["obs_mean"] == venv.obs_rms.mean.tolist()
    assert stats["obs_var"] == venv.obs_rms.var.tolist()
    assert (stats["clip_obs"], stats["epsilon"], stats["norm_obs"]) == (5.0, venv.epsilon, True)
    raw = random_obs(model.observation_space) * 4.0
    assert_parity(model, artifact, raw, sb3_obs=venv.normalize_obs(raw))
    # readings far outside what training saw: both clip the normalised observation at clip_obs
    scale = np.sqrt(venv.obs_rms.var + venv.epsilon)
    far = (venv.obs_rms.mean + 30.0 * scale * np.sign(random_obs(model.observation_space, seed=3))).astype(np.float32)
    assert np.abs(venv.normalize_obs(far)).max() == pytest.approx(5.0)
    assert_parity(model, artifact, far, sb3_obs=venv.normalize_obs(far))
    # the artifact on the raw env scores what the model scores behind the same normalisation, episode by episode
    short = {"max_episode_steps": 60}
    raw_env = DummyVecEnv([lambda: Monitor(gym.make("smartline/Speed-v0", **short))])
    model_env = VecNormalize(
        DummyVecEnv([lambda: Monitor(gym.make("smartline/Speed-v0", **short))]), training=False, norm_reward=False
    )
    model_env.obs_rms = venv.obs_rms
    model_env.clip_obs = venv.clip_obs
    raw_env.seed(7)
    model_env.seed(7)
    rewards, lengths = evaluate_policy(artifact, raw_env, n_eval_episodes=2, return_episode_rewards=True)
    expected, expected_lengths = evaluate_policy(model, model_env, n_eval_episodes=2, return_episode_rewards=True)
    assert lengths == expected_lengths == [60, 60]
    np.testing.assert_allclose(rewards, expected, rtol=1e-6)
    assert rewards[0] != rewards[1], "two different episodes"


def test_manifest_records_spaces_versions_and_config(tmp_path):
    env = gym.make("smartline/Inventory-v0")
    model = DQN("MlpPolicy", env, policy_kwargs=small_net(), device="cpu")
    config = OmegaConf.create({"agent": {"lr": 3e-4}, "lr": "${agent.lr}"})
    with pytest.raises(ValueError, match="metadata"):
        export_policy(model, tmp_path / "a", metadata={"run": object()})
    assert not (tmp_path / "a").exists()
    folder = export_policy(model, tmp_path / "a", config=config, metadata={"run": "r1"})
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    assert manifest["algorithm"] == "DQN"
    assert manifest["observation_space"]["type"] == "Box"
    assert manifest["observation_space"]["shape"] == list(env.observation_space.shape)
    assert manifest["action_space"] == {"type": "Discrete", "n": env.action_space.n, "start": 0, "dtype": "int64"}
    assert manifest["action_mask"] is False
    assert manifest["onnx"]["inputs"] == ["obs"]
    assert manifest["onnx"]["outputs"] == ["action"]
    assert manifest["vec_normalize"] is None
    assert manifest["config"] == {"agent": {"lr": 3e-4}, "lr": 3e-4}
    assert manifest["metadata"] == {"run": "r1"}
    for package in ("stable-baselines3", "sb3-contrib", "torch", "onnx", "smartline"):
        assert manifest["versions"][package]
    artifact = PolicyArtifact.load(folder)
    assert artifact.observation_space == env.observation_space
    assert artifact.action_space == env.action_space
    assert artifact.manifest == manifest


def test_tampered_network_fails_naming_the_hash(tmp_path):
    model = DQN("MlpPolicy", gym.make("smartline/Inventory-v0"), policy_kwargs=small_net(), device="cpu")
    folder = export_policy(model, tmp_path / "a")
    expected = json.loads((folder / MANIFEST_FILE).read_text())["sha256"]
    data = bytearray((folder / NETWORK_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / NETWORK_FILE).write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="sha256") as err:
        PolicyArtifact.load(folder)
    assert str(folder / NETWORK_FILE) in str(err.value)
    assert expected in str(err.value)
    assert hashlib.sha256(data).hexdigest() in str(err.value)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            {
                "observation_space": {
                    "type": "Box",
                    "shape": [7],
                    "low": [-3.0] * 7,
                    "high": [3.0] * 7,
                    "dtype": "float32",
                }
            },
            r"'obs' has \[6\] per row, the spaces of manifest .* need \[7\]",
        ),
        ({"action_space": {"type": "Discrete", "n": 3, "start": 0, "dtype": "int64"}}, r"'action' has \[3\] per row"),
        (
            {
                "vec_normalize": {
                    "norm_obs": True,
                    "obs_mean": [0.0] * 5,
                    "obs_var": [1.0] * 5,
                    "clip_obs": 5.0,
                    "epsilon": 1e-8,
                }
            },
            r"vec_normalize statistics of shapes \(5,\) and \(5,\) do not fit the observation space's \(6,\)",
        ),
    ],
    ids=["observation-shape", "action-space", "statistics"],
)
def test_a_manifest_that_does_not_fit_its_network_is_refused_at_load(tmp_path, edit, message):
    """A manifest whose spaces or statistics are not the network's: `check_fits` would vouch for the wrong spaces."""
    model = PPO("MlpPolicy", BoxEnv(), n_steps=64, batch_size=64, policy_kwargs=small_net(), seed=0, device="cpu")
    folder = export_policy(model, tmp_path / "a")
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    (folder / MANIFEST_FILE).write_text(json.dumps({**manifest, **edit}))
    with pytest.raises(ArtifactError, match=message):
        PolicyArtifact.load(folder)


def test_missing_file_and_bad_manifest_name_the_file(tmp_path):
    model = DQN("MlpPolicy", gym.make("smartline/Inventory-v0"), policy_kwargs=small_net(), device="cpu")
    folder = export_policy(model, tmp_path / "a")
    (folder / MANIFEST_FILE).write_text("{not json")
    with pytest.raises(ArtifactError, match=MANIFEST_FILE):
        PolicyArtifact.load(folder)
    (folder / NETWORK_FILE).unlink()
    with pytest.raises(FileNotFoundError, match=NETWORK_FILE):
        PolicyArtifact.load(folder)


def test_unsupported_observation_space_is_named(tmp_path):
    class GridEnv(BoxEnv):
        observation_space = gym.spaces.Box(-1.0, 1.0, (2, 3), np.float32)

    model = PPO("MlpPolicy", GridEnv(), device="cpu")
    with pytest.raises(ValueError, match=r"Box\(-1.0, 1.0, \(2, 3\)"):
        export_policy(model, tmp_path / "a")


def test_a_vec_normalize_of_rewards_only_exports_no_observation_statistics(tmp_path):
    venv = VecNormalize(DummyVecEnv([BoxEnv]), norm_obs=False, norm_reward=True)
    model = PPO(
        "MlpPolicy", venv, n_steps=64, batch_size=64, n_epochs=1, policy_kwargs=small_net(), seed=0, device="cpu"
    )
    model.learn(64)
    artifact = exported(model, tmp_path, vec_normalize=venv)
    assert artifact.manifest["vec_normalize"] is None  # the policy saw raw observations
    assert_parity(model, artifact, random_obs(model.observation_space))


@pytest.mark.parametrize(
    ("algorithm", "action_space", "message"),
    [
        (TD3, BoxEnv.action_space, "cannot export TD3: supported are PPO, A2C, SAC, DQN and MaskablePPO"),
        (SAC, gym.spaces.Discrete(3), r"SAC export supports Box action spaces, got Discrete\(3\)"),
        (DQN, gym.spaces.MultiBinary(2), r"DQN export supports Discrete action spaces"),
        (MaskablePPO, BoxEnv.action_space, "MaskablePPO export supports Discrete action spaces"),
        (PPO, gym.spaces.MultiDiscrete([2, 3]), "PPO export supports Box, Discrete, MultiBinary action spaces"),
        (A2C, gym.spaces.Discrete(3, start=1), "must start at 0"),
    ],
)
def test_what_cannot_be_exported_is_known_before_any_training(algorithm, action_space, message):
    with pytest.raises(ValueError, match=message):
        exportable(algorithm, BoxEnv.observation_space, action_space)
    exportable(PPO, BoxEnv.observation_space, BoxEnv.action_space)


def test_an_artifact_checks_that_it_fits_an_envs_spaces(tmp_path):
    model = PPO("MlpPolicy", BoxEnv(), n_steps=64, batch_size=64, policy_kwargs=small_net(), seed=0, device="cpu")
    artifact = exported(model, tmp_path)
    artifact.check_fits(BoxEnv.observation_space, BoxEnv.action_space)
    wider = gym.spaces.Box(-4.0, 4.0, (6,), np.float32)
    with pytest.raises(ArtifactError, match=r"observation space .* does not fit the env's Box\(-4.0, 4.0, \(6,\)"):
        artifact.check_fits(wider, BoxEnv.action_space)
    with pytest.raises(ArtifactError, match=r"action space .* does not fit the env's Discrete\(3\)"):
        artifact.check_fits(BoxEnv.observation_space, gym.spaces.Discrete(3))


def test_evaluation_refuses_an_artifact_that_does_not_fit_its_env(tmp_path):
    model = PPO("MlpPolicy", BoxEnv(), n_steps=64, batch_size=64, policy_kwargs=small_net(), seed=0, device="cpu")
    folder = export_policy(model, tmp_path / "artifact")
    env = gym.make("smartline/Speed-v0")
    with pytest.raises(ConfigError, match=r"^policies: policy artifact .*artifact: its observation space"):
        load_policy(str(folder), env)
    label, policy = load_policy(str(folder), BoxEnv())
    assert label.startswith("PPO")
    assert isinstance(policy, PolicyArtifact)


def test_a_config_json_cannot_carry_is_refused_naming_its_key(tmp_path):
    model = PPO("MlpPolicy", BoxEnv(), n_steps=64, batch_size=64, policy_kwargs=small_net(), seed=0, device="cpu")
    with pytest.raises(ValueError, match=r"^config\.normalize\.clip\[1\]: must be JSON-serialisable"):
        export_policy(model, tmp_path / "a", config={"seed": 0, "normalize": {"clip": [1.0, float("inf")]}})
    with pytest.raises(ValueError, match=r"^metadata\.when: must be JSON-serialisable"):
        export_policy(model, tmp_path / "b", metadata={"when": object()})
    assert not (tmp_path / "a").exists()
