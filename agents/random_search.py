"""Augmented random search over a linear policy, with common random numbers (after Mania et al., 2018).

Why a second learner beside PPO: on the twin's tick tasks a policy's gain over the plant's rule is a
few percent of a reward whose per-step noise (parts finishing, failures) is tens of times larger,
and PPO's per-step advantages do not see it (RESULTS.md, Energy). Random search compares whole
episodes instead: each direction's `+` and `-` perturbations run on the same seed, so the
demand, failures and prices they meet are the same and cancel in their difference (paired
differences over a day are about a tenth as wide as unpaired ones).

ARS V2-t: observations standardised by fixed statistics, `directions` Gaussian perturbations of
the parameters per iteration, the update from the `top` directions with the best return, scaled
by the standard deviation of their returns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from agents.rollout import Policy


@dataclass
class LinearPolicy:
    """`clip(W (obs - mean) / std + b, low, high)`: a linear map of standardised observations.

    `mean` and `std` are fixed (from a rollout of the rule the search starts from); `std` has a
    floor so that a feature the rule held constant cannot blow up when the policy moves it.
    """

    weights: np.ndarray  # (action_dim, obs_dim)
    bias: np.ndarray  # (action_dim,)
    mean: np.ndarray  # (obs_dim,)
    std: np.ndarray  # (obs_dim,)
    low: np.ndarray  # (action_dim,)
    high: np.ndarray  # (action_dim,)

    def predict(
        self,
        observation: np.ndarray,
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """Action(s) for one observation or a batch (SB3's `predict`; deterministic, stateless)."""
        x = (np.asarray(observation, dtype=np.float64) - self.mean) / self.std
        action = np.clip(x @ self.weights.T + self.bias, self.low, self.high)
        return action.astype(np.float32), state

    def folded(self) -> tuple[np.ndarray, np.ndarray]:
        """The same map on raw observations: `(W / std, b - W mean / std)`, for export."""
        w = self.weights / self.std
        return w, self.bias - w @ self.mean

    def moved(self, d_weights: np.ndarray, d_bias: np.ndarray) -> LinearPolicy:
        """A copy with the parameters moved by the given steps."""
        return LinearPolicy(self.weights + d_weights, self.bias + d_bias, self.mean, self.std, self.low, self.high)


def fit_linear(
    observations: np.ndarray,
    actions: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    std_floor: float,
    ridge: float = 1e-3,
) -> LinearPolicy:
    """The least-squares linear policy (ridge `ridge` on the weights) that reproduces `actions`.

    Standardisation statistics come from `observations`, each std at least `std_floor`.
    """
    if std_floor <= 0:
        raise ValueError(f"std_floor must be > 0, got {std_floor!r}")
    mean = observations.mean(axis=0)
    std = np.maximum(observations.std(axis=0), std_floor)
    x = (observations - mean) / std
    target = np.clip(actions.reshape(len(actions), -1), low, high)
    bias = target.mean(axis=0)
    gram = x.T @ x + ridge * len(x) * np.eye(x.shape[1])
    weights = np.linalg.solve(gram, x.T @ (target - bias)).T
    return LinearPolicy(weights, bias, mean, std, low.astype(np.float64), high.astype(np.float64))


@dataclass(frozen=True)
class SearchStep:
    """One iteration's outcome: the new policy and the returns it was chosen from."""

    policy: LinearPolicy
    mean_return: float  # mean over every perturbed episode of the iteration
    best_return: float  # the best perturbed episode's return
    return_std: float  # std of the top directions' returns (the step's scale)


EpisodeReturns = Callable[[list[Policy], list[int]], np.ndarray]
"""Runs each policy for one episode from its seed and returns their returns (in order)."""


def search_step(
    policy: LinearPolicy,
    episode_returns: EpisodeReturns,
    seeds: list[int],
    rng: np.random.Generator,
    noise: float,
    step_size: float,
    top: int,
    searched: np.ndarray | None = None,
) -> SearchStep:
    """One ARS V2-t iteration: one direction per seed, its `+` and `-` runs on that same seed.

    `episode_returns` gets all `2 * len(seeds)` runs at once (the `+` ones, then the `-` ones), so
    it may run them in parallel. `searched` (bool, one per action component; None: all) says which
    components' rows of the map move; the others keep their parameters.

    Raises:
        ValueError: `top` outside 1..len(seeds), or noise or step size not > 0.
    """
    n = len(seeds)
    if not 1 <= top <= n:
        raise ValueError(f"top must lie in 1..{n} (the directions), got {top!r}")
    if not (noise > 0 and step_size > 0):
        raise ValueError(f"noise and step_size must be > 0, got {noise!r} and {step_size!r}")
    d_w = rng.normal(size=(n, *policy.weights.shape))
    d_b = rng.normal(size=(n, *policy.bias.shape))
    if searched is not None:
        if np.shape(searched) != policy.bias.shape:
            raise ValueError(f"searched needs a flag per action component, {policy.bias.shape}: {np.shape(searched)}")
        d_w *= np.asarray(searched, dtype=bool)[:, None]
        d_b *= np.asarray(searched, dtype=bool)
    runs: list[Policy] = [
        policy.moved(sign * noise * d_w[k], sign * noise * d_b[k]) for sign in (1, -1) for k in range(n)
    ]
    both = np.asarray(episode_returns(runs, [*seeds, *seeds]), dtype=np.float64)
    plus, minus = both[:n], both[n:]
    chosen = np.argsort(-np.maximum(plus, minus), kind="stable")[:top]
    sigma = float(np.concatenate([plus[chosen], minus[chosen]]).std())
    scale = step_size / (top * sigma) if sigma > 0 else 0.0
    diff = plus[chosen] - minus[chosen]
    new = policy.moved(scale * np.tensordot(diff, d_w[chosen], axes=1), scale * np.tensordot(diff, d_b[chosen], axes=1))
    return SearchStep(new, float(both.mean()), float(both.max()), sigma)
