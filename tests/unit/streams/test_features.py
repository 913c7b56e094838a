from __future__ import annotations

import math

from streams.features import ENGINE_FEATURES, SIZER_SPEC, STREAM_FEATURES, FeatureSpec, build_state


def test_spec_has_at_least_20_stream_features_and_unique_names() -> None:
    assert len(STREAM_FEATURES) >= 20
    assert len(set(SIZER_SPEC.names)) == SIZER_SPEC.size


def test_digest_changes_with_names_or_version() -> None:
    other = FeatureSpec("sizer-v2", SIZER_SPEC.signal, SIZER_SPEC.engine, SIZER_SPEC.stream)
    assert other.digest != SIZER_SPEC.digest
    shorter = FeatureSpec("sizer-v1", SIZER_SPEC.signal, SIZER_SPEC.engine[:-1], SIZER_SPEC.stream)
    assert shorter.digest != SIZER_SPEC.digest


def test_build_state_orders_and_counts_present_features() -> None:
    engine = {name: float(i + 1) for i, name in enumerate(ENGINE_FEATURES)}
    stream = [0.5] * len(STREAM_FEATURES)
    state, completeness = build_state(
        SIZER_SPEC, score=0.9, side="SELL", family="breakout", engine_features=engine, stream_values=stream
    )
    assert len(state) == SIZER_SPEC.size
    assert state[:2] == [0.9, -1.0]
    assert state[2:6] == [0.0, 0.0, 1.0, 0.0]
    assert state[6 : 6 + len(ENGINE_FEATURES)] == [float(i + 1) for i in range(len(ENGINE_FEATURES))]
    assert completeness == 1.0


def test_missing_and_non_finite_values_become_zero_and_lower_completeness() -> None:
    engine = {ENGINE_FEATURES[0]: math.nan}
    state, completeness = build_state(
        SIZER_SPEC, score=0.5, side="BUY", family="unknown", engine_features=engine, stream_values=None
    )
    assert all(math.isfinite(v) for v in state)
    assert 0.0 < completeness < 0.2
