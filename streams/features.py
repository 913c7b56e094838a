"""The versioned feature spec: names and order of the observation vector.

The stream agents compute the ``STREAM`` features, the engine sends the ``ENGINE`` features with
each signal, and the trainer and the inference workers import :data:`SIZER_SPEC` from here, so
the three never disagree on an index. Changing a name or the order means a new version.

Example:
    >>> vec, present = build_state(SIZER_SPEC, score=0.9, side="BUY", family="momentum",
    ...                            engine_features={}, stream_values=None)
    >>> len(vec) == len(SIZER_SPEC.names), present < 1.0
    (True, True)
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "ENGINE_FEATURES",
    "FAMILIES",
    "SIGNAL_FEATURES",
    "SIZER_SPEC",
    "STREAM_FEATURES",
    "FeatureSpec",
    "build_state",
]

FAMILIES: Final = ("ema_cross", "mean_reversion", "breakout", "momentum")

# Derived from the signal's own fields.
SIGNAL_FEATURES: Final = ("score", "side_sign", *(f"family_{f}" for f in FAMILIES))

# Sent by the engine in Signal.features / SizingRequest.features.
ENGINE_FEATURES: Final = (
    "eng_trend_strength",
    "eng_zscore",
    "eng_breakout_distance",
    "eng_momentum",
    "eng_volatility",
    "eng_spread_bps",
)

# Computed per symbol by the stream agents in event time (FeatureSnapshot.values, this order).
STREAM_FEATURES: Final = (
    "ret_1m",
    "ret_5m",
    "ret_30m",
    "rv_1m",
    "rv_5m",
    "rv_30m",
    "rv_ratio_1m_30m",
    "ema_fast_dev",
    "ema_slow_dev",
    "ema_cross",
    "rsi_14",
    "atr_14",
    "volume_z",
    "vwap_dev_5m",
    "vwap_dev_30m",
    "intensity_1m",
    "intensity_5m",
    "buy_ratio_1m",
    "range_5m",
    "drawdown_30m",
    "price_z_30m",
    "ret_autocorr_5m",
)


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """An ordered, versioned list of feature names."""

    version: str
    signal: tuple[str, ...]
    engine: tuple[str, ...]
    stream: tuple[str, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return self.signal + self.engine + self.stream

    @property
    def size(self) -> int:
        return len(self.signal) + len(self.engine) + len(self.stream)

    @property
    def digest(self) -> str:
        """sha256 over version and names: a model trained on another spec is rejected by this."""
        return hashlib.sha256("\n".join((self.version, *self.names)).encode()).hexdigest()


SIZER_SPEC: Final = FeatureSpec("sizer-v1", SIGNAL_FEATURES, ENGINE_FEATURES, STREAM_FEATURES)


def _finite(value: float) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def build_state(
    spec: FeatureSpec,
    *,
    score: float,
    side: str,
    family: str,
    engine_features: Mapping[str, float],
    stream_values: Sequence[float] | None,
) -> tuple[list[float], float]:
    """The observation vector in spec order and the share of features that were present.

    Missing or non-finite values become 0.0 (the normalised mean is near zero for most features)
    and lower the completeness; callers flag the record rather than drop it.
    """
    score_ok = _finite(score)
    state = [float(score) if score_ok else 0.0, 1.0 if side == "BUY" else -1.0]
    state += [1.0 if family == f else 0.0 for f in FAMILIES]
    present = (2 if score_ok else 1) + (1 if family in FAMILIES else 0)
    engine: list[Any] = [engine_features.get(name) for name in spec.engine]
    if set(map(type, engine)) == {float} and all(map(math.isfinite, engine)):
        state += engine  # the usual case: every engine feature sent, as a finite float
        present += len(engine)
    else:
        for value in engine:
            ok = value is not None and _finite(value)
            state.append(float(value) if ok else 0.0)
            present += ok
    if stream_values is not None and len(stream_values) == len(spec.stream):
        values = list(stream_values)
        if set(map(type, values)) == {float} and all(map(math.isfinite, values)):
            state += values  # the usual case (a snapshot's floats), checked in two C-level passes
            present += len(values)
        else:
            for value in values:
                ok = _finite(value)
                state.append(float(value) if ok else 0.0)
                present += ok
    else:
        state.extend([0.0] * len(spec.stream))
    denominator = 3 + len(spec.engine) + len(spec.stream)
    return state, present / denominator
