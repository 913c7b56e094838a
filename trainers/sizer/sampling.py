"""Profit-weighted priority sampling with importance weights (prioritised experience replay).

Priority of an experience: ``(|profitability| + epsilon) ** alpha``, times ``premium_boost`` when the
signal arrived during a detected rapid price move. Large wins *and* large losses carry most of
the information about how size should follow the features (the reward is linear in size), so the
magnitude is used, not the sign. Sampling by priority biases the training objective; the
importance weight ``w_i = (N * P(i)) ** -beta``, normalised to mean 1 under the sampling
distribution, removes that bias exactly at ``beta = 1`` (the default), the trainer multiplies
each step's reward by it.

Example:
    >>> p = priorities(np.array([0.0, 0.5, -0.5]), np.array([False, False, True]),
    ...                alpha=1.0, epsilon=0.1, premium_boost=2.0)
    >>> [round(float(x), 2) for x in p]
    [0.1, 0.6, 1.2]
    >>> idx, w = sample(p, 4, np.random.default_rng(0), beta=1.0)
    >>> idx.shape, w.shape
    ((4,), (4,))
"""

from __future__ import annotations

import numpy as np

__all__ = ["importance_weights", "priorities", "sample", "sampling_probabilities"]


def priorities(
    profitability: np.ndarray, premium: np.ndarray, *, alpha: float, epsilon: float, premium_boost: float
) -> np.ndarray:
    """Positive sampling priorities from the profit score in [-1, 1] and the premium flag."""
    base = (np.abs(profitability) + epsilon) ** alpha
    return base * np.where(premium, premium_boost, 1.0)


def sampling_probabilities(prio: np.ndarray) -> np.ndarray:
    """P(i) = priority_i / sum(priorities)."""
    return prio / prio.sum()


def importance_weights(probs: np.ndarray, beta: float) -> np.ndarray:
    """Per-row weights ``(N P(i))^-beta``, scaled so their mean under ``probs`` is 1."""
    raw = (len(probs) * probs) ** -beta
    return raw / float(np.dot(probs, raw))


def sample(prio: np.ndarray, n: int, rng: np.random.Generator, beta: float) -> tuple[np.ndarray, np.ndarray]:
    """``n`` row indices drawn with replacement by priority, and their importance weights."""
    probs = sampling_probabilities(prio)
    idx = rng.choice(len(probs), size=n, replace=True, p=probs)
    return idx, importance_weights(probs, beta)[idx]
