"""Batch scoring: model answers, clipping, every fallback reason, canary routing and the shadow."""

from __future__ import annotations

import uuid

import pytest

from streams.features import ENGINE_FEATURES, SIZER_SPEC
from streams.serving.canary import routed_to_canary
from streams.serving.control import ControlState
from streams.serving.metrics import WorkerMetrics
from streams.serving.model_store import ModelStore
from streams.serving.observation import FeatureCache
from streams.serving.sizing import Sizer
from streams.settings import Settings
from tests.kit.inference.model_factory import make_manifest, sizer_update, sqrt_onnx, update_record

KEY = b"unit-test-key"


def make_sizer(**inference: object) -> Sizer:
    settings = Settings(model_signing_key=KEY.decode(), inference={"canary_share": 0.0, **inference})
    store = ModelStore(settings, WorkerMetrics(f"unit-{uuid.uuid4().hex[:6]}"))
    return Sizer(settings, store, ControlState("w"), FeatureCache())


def req(signal_id: str = "s", score: float = 0.6, strategy: str = "momentum_fast", **features: float) -> dict:
    engine = {name: 0.2 for name in ENGINE_FEATURES}
    engine.update(features)
    return {"signal_id": signal_id, "client_id": "c", "ts": 5, "strategy": strategy, "symbol": "X",
            "side": "BUY", "score": score, "features": engine}  # fmt: skip


def test_without_a_model_the_rule_answers_with_reason_no_model() -> None:
    sizer = make_sizer()
    batch = sizer.decide([req(score=0.9), req(score=0.1)])
    assert batch.multipliers == [1.5, 0.5] and batch.reasons == ["no_model", "no_model"]
    assert batch.versions == [None, None] and batch.model_name(0) == "rule"


def test_after_a_rejection_without_a_good_model_the_reason_is_rejected_model() -> None:
    sizer = make_sizer()
    sizer.store.apply({**sizer_update("v1", KEY), "signature": ""})
    assert sizer.decide([req()]).reasons == ["rejected_model"]


def test_model_answers_are_clipped_to_the_configured_bounds() -> None:
    high = make_sizer()
    high.store.apply(sizer_update("v9", KEY, constant=7.0))
    low = make_sizer(min_multiplier=0.5)
    low.store.apply(sizer_update("v1", KEY, constant=-3.0))
    assert high.decide([req()]).multipliers == [2.0]
    batch = low.decide([req(), req()])
    assert (
        batch.multipliers == [0.5, 0.5] and batch.versions == ["v1", "v1"] and batch.reasons == [None, None]
    )


def test_manifest_action_range_narrows_the_bounds() -> None:
    sizer = make_sizer()
    sizer.store.apply(sizer_update("v1", KEY, constant=1.9, action_high=1.25))
    assert sizer.decide([req()]).multipliers == [1.25]


def test_missing_required_features_fall_back_per_request() -> None:
    sizer = make_sizer()
    sizer.store.apply(sizer_update("v1", KEY, constant=1.7))
    batch = sizer.decide(
        [req("a"), req("b", strategy="pairs_1"), req("c", eng_zscore=float("nan")), req("d")]
    )
    assert batch.reasons == [None, "missing_features", "missing_features", None]
    assert batch.multipliers == [pytest.approx(1.7), 1.0, 1.0, pytest.approx(1.7)]
    assert batch.scored == [0, 3]


def test_kill_switch_answers_with_the_rule_even_with_a_model() -> None:
    sizer = make_sizer()
    sizer.store.apply(sizer_update("v1", KEY, constant=1.7))
    sizer.control.kill_switch = True
    assert sizer.decide([req(score=0.95)]).reasons == ["kill_switch"]
    assert sizer.decide([req(score=0.95)]).multipliers == [1.5]


def sqrt_update(version: str) -> dict:
    onnx = sqrt_onnx()
    mean = [0.0] * SIZER_SPEC.size
    mean[0] = 0.5  # scores below 0.5 normalise below zero: sqrt gives NaN
    return update_record(make_manifest(version, onnx, obs_mean=mean), onnx, KEY)


def test_non_finite_model_output_falls_back_with_model_error() -> None:
    sizer = make_sizer()
    assert sizer.store.apply(sqrt_update("v1")).kind == "serving"
    batch = sizer.decide([req(score=0.3), req(score=0.9)])
    assert batch.reasons == ["model_error", None]
    assert batch.multipliers[0] == 0.5 and batch.multipliers[1] == pytest.approx(1 + 0.4**0.5, rel=1e-5)


def test_canary_answers_its_share_and_records_evidence() -> None:
    sizer = make_sizer(canary_share=0.5, canary_decisions=10_000)
    sizer.store.apply(sizer_update("v1", KEY, constant=1.0))
    sizer.store.apply(sizer_update("v2", KEY, constant=1.5))
    requests = [req(f"sig-{i}") for i in range(400)]
    batch = sizer.decide(requests)
    routed = [routed_to_canary(r["signal_id"], 0.5) for r in requests]
    assert 150 < sum(routed) < 250
    for i, to_canary in enumerate(routed):
        assert batch.versions[i] == ("v2" if to_canary else "v1")
        assert batch.multipliers[i] == pytest.approx(1.5 if to_canary else 1.0)
    canary = sizer.store.slot("sizer").canary
    assert canary.decisions == sum(routed) and canary.fallbacks == 0
    signal = requests[routed.index(True)]["signal_id"]
    assert canary.outcome(signal, 0.02) and canary.uplift()[0] == pytest.approx(0.5 * 0.02, rel=1e-5)


def test_canary_model_errors_count_as_canary_fallbacks() -> None:
    sizer = make_sizer(canary_share=1.0, canary_decisions=10)
    sizer.store.apply(sizer_update("v1", KEY, constant=1.0))
    sizer.store.apply(sqrt_update("v2"))
    batch = sizer.decide([req(f"s{i}", score=0.2) for i in range(5)])
    assert batch.reasons == ["model_error"] * 5
    canary = sizer.store.slot("sizer").canary
    assert canary.fallbacks == 5 and canary.verdict().reason == "fallback_rate"


def test_shadow_scores_what_a_model_answered_and_reports_differences() -> None:
    sizer = make_sizer()
    sizer.store.apply(sizer_update("v1", KEY, constant=1.0))
    sizer.store.apply(sizer_update("s1", KEY, constant=1.25, role="SHADOW"))
    batch = sizer.decide([req("a"), req("b", strategy="pairs_1"), req("c")])
    assert batch.versions == ["v1", None, "v1"]  # the shadow never answers
    assert sizer.shadow(batch) == [pytest.approx(0.25), pytest.approx(0.25)]


def test_records_echo_the_request() -> None:
    sizer = make_sizer()
    batch = sizer.decide([req("a")])
    (record,) = Sizer.records([req("a")], batch, "w1", 42)
    assert record["signal_id"] == "a" and record["client_id"] == "c" and record["request_ts"] == 5
    assert record["fallback"] and record["fallback_reason"] == "no_model" and record["latency_us"] == 42
    assert record["model_name"] == "rule" and record["worker_id"] == "w1"


def test_single_requests_get_the_same_answers_as_a_batch() -> None:
    sizer = make_sizer()
    assert sizer.store.apply(sqrt_update("v1")).kind == "serving"
    sizer.store.apply(sizer_update("s1", KEY, constant=1.25, role="SHADOW"))
    requests = [req("a", score=0.9), req("b", score=0.3), req("c", strategy="pairs_1"),
                req("d", eng_zscore=float("inf")), req("e", score=0.55)]  # fmt: skip
    batch = sizer.decide(requests)
    assert batch.reasons == [None, "model_error", "missing_features", "missing_features", None]
    for i, request in enumerate(requests):
        one = sizer.decide([request])
        assert one.reasons == [batch.reasons[i]] and one.versions == [batch.versions[i]]
        assert one.multipliers == [pytest.approx(batch.multipliers[i], rel=1e-6)]
        assert one.missing_snapshots == 1  # no snapshot of "X" in this cache
        if batch.reasons[i] is None:
            assert sizer.shadow(one) == [pytest.approx(abs(1.25 - batch.multipliers[i]), rel=1e-5)]
