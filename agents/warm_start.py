"""Warm start: clone a heuristic into an actor-critic policy before reinforcement learning.

A PPO policy that starts from random weights acts around the zero action and spends its first
updates unlearning that; on tasks whose gain over the plant's rule is a few percent of the reward
(Energy, Speed) the gradient of that gain drowns in the noise of part completions and the policy
never gets there (RESULTS.md). Cloned first, the policy starts where the tuned rule is, and what
PPO can add is what the rule cannot do: decide by state (RESULTS.md measures whether it does).
The critic is fitted to the rule's own discounted returns, so the first advantages measure
deviations from the rule rather than the noise of an untrained value function.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import gymnasium as gym
import numpy as np
import torch
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from agents.rollout import Policy


@dataclass(frozen=True)
class Demonstrations:
    """A heuristic's rollout on the training envs, in the form the policy sees it.

    `observations` are normalised as the training envs normalise them after the rollout (their
    running statistics warmed by it), `returns` are discounted sums of the (normalised) rewards
    that follow each step within its episode, cut at the rollout's end.
    """

    observations: np.ndarray  # (steps, obs_dim)
    actions: np.ndarray  # (steps, *action_shape)
    returns: np.ndarray  # (steps,)


@dataclass(frozen=True)
class CloneResult:
    """What cloning reached: mean losses of the last epoch and the env steps the rollout took."""

    action_loss: float  # mean squared error of the action mean (Box), else negative log-likelihood
    value_loss: float  # mean squared error of the value against the discounted returns
    steps: int  # env steps of the heuristic's rollout, over all training envs


def collect(
    venv: VecEnv, heuristic: Policy, steps: int, gamma: float, noise: float = 0.0, seed: int = 0
) -> Demonstrations:
    """Run `heuristic` on the training envs for at least `steps` env steps (whole vector steps).

    The heuristic decides on the raw observations; a `VecNormalize` in front updates its
    statistics as in training, and the recorded observations and rewards are normalised with
    the statistics the rollout ends with.

    `noise` perturbs what is executed, never what is recorded (the heuristic's own action is the
    label): Gaussian noise of that standard deviation on a `Box` action (then clipped to it), else
    the probability of a random action. Without it a rule that holds a setting constant (a fixed
    speed) shows the clone states it never leaves, and the clone, once its own small errors
    move the line there, is off its data (covariate shift; the noise is DART's remedy).
    """
    if steps < 1:
        raise ValueError(f"steps must be a positive whole number, got {steps!r}")
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must lie in [0, 1], got {gamma!r}")
    if not noise >= 0.0:
        raise ValueError(f"noise must be >= 0, got {noise!r}")
    rng = np.random.default_rng(seed)
    space = venv.action_space
    norm = venv if isinstance(venv, VecNormalize) else None
    n = venv.num_envs
    ticks = -(-steps // n)
    obs_raw, actions, rewards, ends = [], [], [], []
    obs = np.asarray(venv.reset())
    for _ in range(ticks):
        raw = np.asarray(norm.get_original_obs()) if norm is not None else obs
        action, _ = heuristic.predict(raw, deterministic=True)
        obs_raw.append(np.asarray(raw, dtype=np.float32))
        actions.append(np.asarray(action))
        stepped, reward, dones, _ = venv.step(perturbed(np.asarray(action), space, noise, rng))
        obs = np.asarray(stepped)
        rewards.append(norm.get_original_reward() if norm is not None else reward)
        ends.append(np.asarray(dones, dtype=bool))
    obs_arr, rew = np.stack(obs_raw), np.stack(rewards).astype(np.float64)
    if norm is not None:
        obs_arr = np.asarray(norm.normalize_obs(obs_arr))
        if norm.norm_reward:
            rew = norm.normalize_reward(rew)
    returns = discounted_returns(rew, np.stack(ends), gamma)
    flat = ticks * n
    return Demonstrations(
        observations=obs_arr.reshape(flat, -1).astype(np.float32),
        actions=np.stack(actions).reshape(flat, *actions[0].shape[1:]),
        returns=returns.reshape(flat).astype(np.float32),
    )


def perturbed(action: np.ndarray, space: gym.Space[Any], noise: float, rng: np.random.Generator) -> np.ndarray:
    """`action` with exploration noise: Gaussian on a `Box` (any shape), else random actions at rate `noise`.

    On a `Box` the noise has std `noise` and the result is clipped to the space; otherwise
    `action` is a batch and each of its actions is replaced by a random one with probability `noise`.
    With `noise` 0, `action` comes back as it is (and no random numbers are drawn).
    """
    if noise == 0.0:
        return action
    if isinstance(space, gym.spaces.Box):
        return np.clip(action + rng.normal(0.0, noise, action.shape), space.low, space.high).astype(action.dtype)
    random = np.array([space.sample() for _ in range(len(action))]).reshape(action.shape)
    swap = rng.random(len(action)) < noise
    return np.where(swap.reshape(-1, *([1] * (action.ndim - 1))), random, action)


def discounted_returns(rewards: np.ndarray, ends: np.ndarray, gamma: float) -> np.ndarray:
    """Discounted sums of `rewards` (shape `(ticks, n_envs)`) from each step to its episode's end.

    `ends[t]` marks that the episode of each env ended with step `t`; the last tick's returns are
    cut there (no bootstrap: the rollout is long against the discount horizon).
    """
    out = np.zeros_like(rewards, dtype=np.float64)
    running = np.zeros(rewards.shape[1])
    for t in range(len(rewards) - 1, -1, -1):
        running = rewards[t] + gamma * running * ~ends[t]
        out[t] = running
    return out


def clone_refusal(algorithm: type[BaseAlgorithm], policy: str | type) -> str | None:
    """Why a model of `algorithm` with `policy` (a class or one of its aliases) cannot be cloned into; None if it can.

    Cloning needs a feed-forward actor-critic policy (PPO, A2C): not a masked one (MaskablePPO), a
    recurrent one (RecurrentPPO) or an off-policy actor (SAC, DQN).
    """
    cls = algorithm.policy_aliases.get(policy, policy) if isinstance(policy, str) else policy
    if isinstance(cls, type) and issubclass(cls, ActorCriticPolicy) and not issubclass(cls, RecurrentActorCriticPolicy):
        return None
    name = cls.__name__ if isinstance(cls, type) else repr(cls)
    return (
        f"{algorithm.__name__} ({name}) cannot be warm-started: cloning needs a feed-forward actor-critic "
        "policy (PPO, A2C)"
    )


def clone(
    model: BaseAlgorithm,
    demos: Demonstrations,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int = 0,
) -> CloneResult:
    """Fit `model`'s policy to the demonstrations: its actions (mean or likelihood) and its values.

    The Gaussian's log-std is left as configured (`policy_kwargs.log_std_init`): it sets how far
    PPO's first rollouts explore around the cloned rule.

    Raises:
        TypeError: `model`'s policy is not a feed-forward actor-critic (PPO, A2C).
        ValueError: epochs, batch size or learning rate out of range.
    """
    refusal = clone_refusal(type(model), type(model.policy))
    if refusal is not None:
        raise TypeError(refusal)
    policy = cast(ActorCriticPolicy, model.policy)
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if not (isinstance(value, int) and value > 0):
            raise ValueError(f"{name} must be a positive whole number, got {value!r}")
    if not learning_rate > 0:
        raise ValueError(f"learning_rate must be > 0, got {learning_rate!r}")
    space = policy.action_space
    box = isinstance(space, gym.spaces.Box)
    obs = torch.as_tensor(demos.observations, device=policy.device)
    target = torch.as_tensor(demos.actions, device=policy.device)
    if isinstance(space, gym.spaces.MultiBinary):
        target = target.float()  # the Bernoulli's log-probability takes float labels (the rule's are int8)
    if isinstance(space, gym.spaces.Box):
        low = torch.as_tensor(space.low, device=policy.device)
        high = torch.as_tensor(space.high, device=policy.device)
        target = torch.clamp(target.float(), low, high)
    returns = torch.as_tensor(demos.returns, device=policy.device)
    params = [p for name, p in policy.named_parameters() if name != "log_std"]
    optimiser = torch.optim.Adam(params, lr=learning_rate)
    generator = torch.Generator().manual_seed(seed)
    policy.set_training_mode(True)
    action_loss = value_loss = float("nan")
    for _ in range(epochs):
        order = torch.randperm(len(obs), generator=generator)
        sums, count = np.zeros(2), 0
        for start in range(0, len(obs), batch_size):
            idx = order[start : start + batch_size]
            dist = policy.get_distribution(obs[idx])
            a_loss = torch.mean((dist.mode() - target[idx]) ** 2) if box else -dist.log_prob(target[idx]).mean()
            v_loss = torch.mean((policy.predict_values(obs[idx]).flatten() - returns[idx]) ** 2)
            optimiser.zero_grad()
            (a_loss + v_loss).backward()
            optimiser.step()
            sums += (a_loss.item() * len(idx), v_loss.item() * len(idx))
            count += len(idx)
        action_loss, value_loss = sums / count
    policy.set_training_mode(False)
    return CloneResult(action_loss=float(action_loss), value_loss=float(value_loss), steps=len(obs))
