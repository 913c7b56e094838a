"""Priority sampling: profit-weighted, premium-boosted, and unbiased with importance weights."""

from __future__ import annotations

import numpy as np

from trainers.sizer.sampling import importance_weights, priorities, sample, sampling_probabilities


def test_priorities_grow_with_profit_magnitude_and_premium() -> None:
    p = priorities(np.array([0.0, 0.5, -0.5, 0.5]), np.array([False, False, False, True]),
                   alpha=0.6, epsilon=0.05, premium_boost=2.0)  # fmt: skip
    assert p[0] < p[1] == p[2] < p[3]
    assert np.isclose(p[3], 2.0 * p[1])


def test_weights_have_mean_one_under_sampling() -> None:
    probs = sampling_probabilities(np.array([1.0, 2.0, 5.0, 0.5]))
    w = importance_weights(probs, beta=1.0)
    assert np.isclose(np.dot(probs, w), 1.0)


def test_weighted_sample_mean_is_unbiased() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=2000) + np.linspace(-1, 3, 2000)
    prio = priorities(np.tanh(values), np.zeros(2000, bool), alpha=1.0, epsilon=0.05, premium_boost=1.0)
    idx, w = sample(prio, 400_000, rng, beta=1.0)
    biased = values[idx].mean()
    corrected = np.mean(w * values[idx])
    assert abs(corrected - values.mean()) < 0.02
    assert abs(biased - values.mean()) > 0.1  # priority sampling alone is biased
