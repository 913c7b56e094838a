"""The hidden function: a signal's true expected unit return, and the noise around it.

The expected net return of a unit-size position is a smooth function of what the sizer observes
at signal time (the engine features, the family and the side) and nothing else, so a learner can
in principle recover it:

* trend-following families (``ema_cross``, ``momentum``, ``breakout``) earn when the trend is
  strong and on their side, and lose in ranges (whipsaws, false breakouts);
* ``mean_reversion`` earns on stretched prices in ranges and loses against a trend;
* costs (the quoted spread and the round-trip fee) are subtracted from every trade;
* volatility does not move the mean but scales the noise, so the same edge is worth less size
  when the market is wild.

The realised return is ``expected + noise`` with noise standard deviation
:func:`noise_sd` (larger than the spread of expectations, so learning needs thousands of samples).

Example:
    >>> calm_trend = {"eng_trend_strength": 3.0, "eng_zscore": 1.0, "eng_breakout_distance": 1.2,
    ...               "eng_momentum": 1.5, "eng_volatility": 8.0, "eng_spread_bps": 1.0}
    >>> expected_return("ema_cross", "BUY", calm_trend, 0.0004) > 0
    True
    >>> expected_return("mean_reversion", "SELL", calm_trend, 0.0004) < 0
    True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Final

__all__ = ["NOISE_BPS", "VOL_REF_BPS", "expected_return", "noise_sd"]

BPS: Final = 1e-4
VOL_REF_BPS: Final = 10.0  # one-minute volatility (bps) of a calm market
NOISE_BPS: Final = 25.0  # noise sd at calm volatility and the reference holding time
REF_HORIZON: Final = 120.0
BASE_EDGE_BPS: Final = 1.5  # every strategy has a small edge before its setup-specific one


def expected_return(family: str, side: str, features: Mapping[str, float], fee_round_trip: float) -> float:
    """The true expected net unit return (a fraction, e.g. 0.0012 = 12 bps) of a signal."""
    s = 1.0 if side == "BUY" else -1.0
    trend = features["eng_trend_strength"]
    trendiness = math.tanh((trend / 2.0) ** 2)  # 0 in a flat range .. 1 in a clean trend
    aligned = s * math.tanh(trend / 2.0)  # +1 trading with a strong trend, -1 against it
    calm = 1.0 - trendiness
    if family == "ema_cross":
        edge = 30.0 * aligned * trendiness - 12.0 * calm
    elif family == "momentum":
        push = math.tanh(s * features["eng_momentum"] / 1.5)
        edge = 22.0 * aligned + 10.0 * push * trendiness - 12.0 * calm
    elif family == "breakout":
        beyond = math.tanh(2.0 * (s * features["eng_breakout_distance"] - 1.0))  # < 0 inside the channel
        edge = 18.0 * beyond * (0.3 + trendiness) + 12.0 * aligned - 8.0 * calm
    elif family == "mean_reversion":
        stretch = math.tanh(-s * features["eng_zscore"] / 1.5)  # > 0 buying below the mean
        edge = 25.0 * stretch * calm + 15.0 * aligned - 5.0 * trendiness
    else:
        raise ValueError(f"unknown strategy family {family!r}")
    return (BASE_EDGE_BPS + edge - features["eng_spread_bps"]) * BPS - fee_round_trip


def noise_sd(features: Mapping[str, float], horizon_seconds: float) -> float:
    """Standard deviation of the realised unit return around its expectation."""
    vol_level = min(4.0, max(0.5, features["eng_volatility"] / VOL_REF_BPS))
    return NOISE_BPS * BPS * vol_level * math.sqrt(horizon_seconds / REF_HORIZON)
