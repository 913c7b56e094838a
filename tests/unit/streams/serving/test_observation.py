"""Observations: parity with streams.features.build_state, required-feature rule, snapshot cache."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from streams.features import ENGINE_FEATURES, FAMILIES, SIZER_SPEC, STREAM_FEATURES, build_state
from streams.serving.observation import FeatureCache, ObservationBuilder, family_of


def snapshot(symbol: str, values: list[float], ts: int = 1, spec: str = SIZER_SPEC.version) -> dict:
    return {"symbol": symbol, "ts": ts, "spec_version": spec, "values": values, "trade_count": 10}


def request(strategy: str = "momentum_fast", score: float = 0.6, features: dict | None = None,
            symbol: str = "X") -> dict:  # fmt: skip
    engine = {name: 0.1 for name in ENGINE_FEATURES} if features is None else features
    return {"signal_id": "s", "strategy": strategy, "symbol": symbol, "side": "BUY", "score": score,
            "features": engine}  # fmt: skip


@pytest.mark.parametrize(
    ("strategy", "family"),
    [("ema_cross_fast", "ema_cross"), ("mean_reversion_2", "mean_reversion"), ("breakout", "breakout"),
     ("momentumish", None), ("pairs_1", None), ("", None)],
)  # fmt: skip
def test_family_from_strategy_prefix(strategy: str, family: str | None) -> None:
    assert family_of(strategy) == family


def test_rows_match_build_state_on_random_inputs() -> None:
    rng = random.Random(3)
    specials = [math.nan, math.inf, -math.inf]
    cache, raw_latest = FeatureCache(), {}
    for i in range(30):
        symbol = f"S{i % 7}"
        values = [rng.choice(specials) if rng.random() < 0.05 else rng.gauss(0, 1) for _ in STREAM_FEATURES]
        cache.update(snapshot(symbol, values, ts=i))
        raw_latest[symbol] = values
    requests, expected = [], []
    for i in range(300):
        symbol = f"S{rng.randrange(9)}"  # S7 and S8 never had a snapshot
        family = rng.choice([*FAMILIES, "other"])
        features = {n: rng.uniform(-3, 3) for n in ENGINE_FEATURES if rng.random() > 0.2}
        if rng.random() < 0.2:
            features[rng.choice(ENGINE_FEATURES)] = rng.choice(specials)
        score = rng.choice(specials) if rng.random() < 0.05 else rng.random()
        side = rng.choice(["BUY", "SELL"])
        requests.append({"signal_id": str(i), "strategy": f"{family}_x", "symbol": symbol, "side": side,
                         "score": score, "features": features})  # fmt: skip
        stream = raw_latest.get(symbol)
        expected.append(build_state(SIZER_SPEC, score=score, side=side, family=family,
                                    engine_features=features, stream_values=stream))  # fmt: skip
    builder = ObservationBuilder()
    batched = builder.build(requests, cache)  # the vectorised path
    one_by_one = [builder.build([r], cache) for r in requests]  # the per-row path
    for i, (vector, _) in enumerate(expected):
        np.testing.assert_array_equal(batched.obs[i], np.asarray(vector, dtype=np.float32))
        np.testing.assert_array_equal(one_by_one[i].obs[0], np.asarray(vector, dtype=np.float32))
        assert batched.required_ok[i] == one_by_one[i].required_ok[0]


def test_non_finite_stream_values_are_zeroed_in_the_snapshot() -> None:
    cache = FeatureCache()
    values = [0.5] * len(STREAM_FEATURES)
    values[3] = math.nan
    cache.update(snapshot("X", values))
    assert cache.get("X").present == len(STREAM_FEATURES) - 1
    built = ObservationBuilder().build([request()], cache)
    assert built.obs[0, SIZER_SPEC.size - len(STREAM_FEATURES) + 3] == 0.0
    assert built.required_ok == [True] and built.has_snapshot == [True]


def test_required_features_rule() -> None:
    builder = ObservationBuilder()
    missing_engine = {n: 0.1 for n in ENGINE_FEATURES[1:]}
    nan_engine = {**{n: 0.1 for n in ENGINE_FEATURES}, ENGINE_FEATURES[0]: math.nan}
    batch = [request(), request(features=missing_engine), request(features=nan_engine),
             request(strategy="pairs_1"), request(score=math.nan)]  # fmt: skip
    # No snapshot at all: stream features are tolerated by default.
    assert builder.build(batch, FeatureCache()).required_ok == [True, False, False, False, False]
    assert builder.build(batch * 4, FeatureCache()).required_ok == [True, False, False, False, False] * 4
    strict = ObservationBuilder(require_stream=True)
    assert strict.build([request()], FeatureCache()).required_ok == [False]
    cache = FeatureCache()
    cache.update(snapshot("X", [0.0] * len(STREAM_FEATURES)))
    assert strict.build([request()], cache).required_ok == [True]


def test_feature_cache_keeps_the_newest_snapshot_of_its_spec() -> None:
    cache = FeatureCache()
    assert cache.update(snapshot("X", [1.0] * 22, ts=5))
    assert not cache.update(snapshot("X", [2.0] * 22, ts=4))  # older in event time
    assert not cache.update(snapshot("X", [3.0] * 22, ts=6, spec="sizer-v0"))  # other spec version
    assert not cache.update(snapshot("X", [3.0] * 5, ts=7))  # wrong length
    assert cache.get("X").values[0] == 1.0 and cache.ignored == 2
