"""The simulated strategies: four families, several parameter variants each.

A strategy reads one indicator from the engine features of the symbol it trades, fires when the
indicator is strong enough, picks the side from the indicator's sign and reports a confidence
score. Variants of a family differ in their trigger threshold (how selective they are), their
holding time and the calibration of their score.

Example:
    >>> [s.name for s in build_strategies(2)][:4]
    ['ema_cross_fast', 'ema_cross_slow', 'mean_reversion_1', 'mean_reversion_2']
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from streams.features import FAMILIES
from streams.simulator.draws import Draws

__all__ = ["INDICATOR", "Strategy", "build_strategies"]

# The engine feature each family trades on, and whether it trades with (+1) or against (-1) it.
INDICATOR: Final = {
    "ema_cross": ("eng_trend_strength", 1.0),
    "mean_reversion": ("eng_zscore", -1.0),
    "breakout": ("eng_breakout_distance", 1.0),
    "momentum": ("eng_momentum", 1.0),
}
# Trigger thresholds of the least (first) and most (last) selective variant, per family.
_THRESHOLDS: Final = {
    "ema_cross": (0.3, 1.2),
    "mean_reversion": (0.5, 1.2),
    "breakout": (0.4, 0.9),
    "momentum": (0.4, 1.1),
}
SCORE_NOISE: Final = 0.8  # logit-scale noise: the score is informative, not an oracle


@dataclass(frozen=True, slots=True)
class Strategy:
    """One strategy instance. ``decide`` is pure apart from the score noise it draws."""

    name: str
    family: str
    threshold: float
    horizon_factor: float
    score_center: float
    score_slope: float

    def decide(self, features: dict[str, float], draws: Draws) -> tuple[str, float] | None:
        """``(side, score)`` when the strategy fires on these features, else None."""
        name, direction = INDICATOR[self.family]
        value = features[name]
        strength = abs(value)
        if strength < self.threshold:
            return None
        side = "BUY" if value * direction > 0 else "SELL"
        logit = self.score_slope * (strength - self.score_center) + SCORE_NOISE * draws.normal()
        return side, 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, logit))))


def _variant_name(family: str, j: int) -> str:
    # EMA-cross variants are named by their speed, as traders call them; others are numbered.
    if family == "ema_cross" and j < 2:
        return f"{family}_{('fast', 'slow')[j]}"
    return f"{family}_{j + 1}"


def build_strategies(per_family: int) -> list[Strategy]:
    """``per_family`` variants of each family in :data:`streams.features.FAMILIES`, stable order."""
    strategies = []
    for family in FAMILIES:
        low, high = _THRESHOLDS[family]
        for j in range(per_family):
            frac = j / (per_family - 1) if per_family > 1 else 0.5
            threshold = low + frac * (high - low)
            strategies.append(
                Strategy(
                    name=_variant_name(family, j),
                    family=family,
                    threshold=threshold,
                    horizon_factor=0.5 + frac,
                    score_center=threshold + 0.5,
                    score_slope=1.5 + frac,
                )
            )
    return strategies
