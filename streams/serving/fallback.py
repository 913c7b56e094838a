"""The safe score rule that answers whenever no trusted model can (DESIGN.md section 5).

Example:
    >>> [rule_multiplier(s, 0.25, 2.0) for s in (0.9, 0.5, 0.1, float("nan"))]
    [1.5, 1.0, 0.5, 1.0]
"""

from __future__ import annotations

__all__ = ["HIGH_SCORE", "LOW_SCORE", "rule_multiplier"]

HIGH_SCORE = 0.8
LOW_SCORE = 0.4


def rule_multiplier(score: float, low: float, high: float) -> float:
    """One multiplier: 1.5 above 0.8, 0.5 below 0.4, else 1.0; a NaN score gets 1.0; within bounds."""
    if score > HIGH_SCORE:
        value = 1.5
    elif score < LOW_SCORE:
        value = 0.5
    else:
        value = 1.0
    return min(max(value, low), high)
