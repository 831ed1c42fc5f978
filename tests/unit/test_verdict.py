"""The verdict sentence: a paired difference with its 95% interval, in as many digits as it needs."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from experiments.report import Row, paired_difference, verdict


def rows(differences: list[float]) -> list[Row]:
    """Episodes of `a` and `b` on seeds 0.., `a` ahead of `b` by each difference."""
    out = []
    for seed, d in enumerate(differences):
        out += [Row("a", "none", seed, {"return": 100.0 + d}), Row("b", "none", seed, {"return": 100.0})]
    return out


def test_a_small_difference_is_shown_to_two_significant_digits_of_its_interval():
    d = [0.02, 0.01, 0.015, 0.012, 0.018]
    half = stats.t.ppf(0.975, 4) * np.std(d, ddof=1) / np.sqrt(5)  # 0.0050
    assert verdict(rows(d), "a", "b") == (
        f"episode: a beats b: return difference +{np.mean(d):.4f} ± {half:.4f} (95%, paired over 5 seeds)"
    )


def test_a_large_difference_keeps_one_decimal_and_one_seed_has_no_interval():
    assert verdict(rows([1200.0, 1300.0, 1250.0]), "a", "b").endswith("+1,250.0 ± 124.2 (95%, paired over 3 seeds)")
    assert verdict(rows([3.0]), "a", "b") == "episode: a against b: return difference +3.0 (one seed, no interval)"


def test_a_difference_without_spread_is_shown_to_two_significant_digits_of_itself():
    assert verdict(rows([0.04, 0.04, 0.04]), "a", "b").endswith(
        "beats b: return difference +0.040 ± 0.000 (95%, paired over 3 seeds)"
    )
    assert verdict(rows([0.004]), "a", "b").endswith("return difference +0.0040 (one seed, no interval)")


def test_a_return_that_is_not_a_number_gets_no_verdict():
    assert verdict(rows([1.0, float("nan"), 2.0]), "a", "b") == (
        "episode: a against b: no verdict, the return is not a number on some of the 3 seeds"
    )


def test_the_outcome_is_what_the_interval_says_not_the_sign_of_the_mean():
    """+1.0 ± 2.9 cannot be told apart; -3.0 ± 0.65 is beaten; the interval decides, not the sign."""
    ahead_by_noise = [3.0, -1.0, 2.0, 0.0]  # mean +1.0, half-width 2.9
    behind = [-3.0, -2.5, -3.5, -3.0]  # mean -3.0, half-width 0.65
    assert " a cannot be told apart from b: " in verdict(rows(ahead_by_noise), "a", "b")
    assert " a is beaten by b: return difference -3.0 ± " in verdict(rows(behind), "a", "b")
    assert " a beats b: " in verdict(rows([-x for x in behind]), "a", "b")


def test_two_episodes_of_one_policy_on_one_seed_are_refused_not_paired_with_one_of_them():
    twice = [*rows([1.0, 2.0]), Row("a", "none", 1, {"return": 500.0})]  # a second seed-1 episode of `a`
    with pytest.raises(ValueError, match=r"'a' has 2 episodes under scenario 'none', mode 'episode', seed 1"):
        paired_difference(twice, "a", "b")
    with pytest.raises(ValueError, match=r"'b' has 2 episodes"):
        paired_difference([*rows([1.0]), Row("b", "none", 0, {"return": 0.0})], "a", "b")
    assert paired_difference(rows([1.0, 2.0]), "a", "b")[2] == 2
