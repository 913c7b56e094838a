"""The serving core a worker and an engine's in-process sizer share (no broker: records in memory)."""

from __future__ import annotations

import uuid

import pytest

from streams.features import ENGINE_FEATURES, FAMILIES, SIZER_SPEC, build_state
from streams.serving.control import control_record
from streams.serving.core import ServingCore
from streams.serving.metrics import WorkerMetrics
from streams.serving.model_store import ModelStore, sizer_canary
from streams.settings import Settings
from streams.topics import FEATURES, OUTCOMES, STRATEGY_WEIGHTS
from tests.kit.inference.model_factory import make_manifest, mlp_onnx, sizer_update, update_record

KEY = b"unit-test-key"


def core(**inference: object) -> ServingCore:
    settings = Settings(model_signing_key=KEY.decode(), inference={"canary_share": 0.0, **inference})
    return ServingCore(settings, f"unit-core-{uuid.uuid4().hex[:6]}", shadows=False)


def request(signal_id: str = "s1", score: float = 0.6, symbol: str = "SYM") -> dict:
    return {"event_id": "e", "ts": 7, "signal_id": signal_id, "client_id": "engine-1", "strategy": "breakout_2",
            "symbol": symbol, "side": "SELL", "score": score,
            "features": {name: 0.1 * (i + 1) for i, name in enumerate(ENGINE_FEATURES)}}  # fmt: skip


def snapshot(symbol: str, ts: int, values: list[float]) -> dict:
    return {"event_id": "f", "ts": ts, "symbol": symbol, "spec_version": SIZER_SPEC.version, "values": values,
            "trade_count": 3}  # fmt: skip


def test_records_carry_the_version_the_engine_and_the_server() -> None:
    c = core()
    assert c.store.apply(sizer_update("v1", KEY, constant=1.25)).kind == "serving"
    batch, (record,) = c.answer([request()])
    assert record["model_version"] == "v1" and record["model_name"] == "sizer" and not record["fallback"]
    assert record["multiplier"] == pytest.approx(1.25) and record["worker_id"] == c.ident
    assert record["client_id"] == "engine-1" and record["request_ts"] == 7 and record["latency_us"] >= 0
    assert batch.versions == ["v1"] and c.decisions == 1 and c.fallbacks == 0


def test_the_observation_uses_the_latest_snapshot_of_the_symbol_as_build_state_does() -> None:
    """The model's answer equals the trainer's state vector run through the exported graph."""
    import numpy as np
    import onnxruntime as ort

    c = core()
    onnx = mlp_onnx(seed=4)
    c.store.apply(update_record(make_manifest("v1", onnx), onnx, KEY))
    stream = [0.01 * (i - 7) for i in range(len(SIZER_SPEC.stream))]
    assert c.observe(FEATURES, snapshot("SYM", 10, stream))
    assert c.observe(FEATURES, snapshot("SYM", 5, [9.0] * len(stream)))  # older: ignored
    req = request()
    state, _ = build_state(SIZER_SPEC, score=req["score"], side=req["side"], family="breakout",
                           engine_features=req["features"], stream_values=stream)  # fmt: skip
    session = ort.InferenceSession(onnx, providers=["CPUExecutionProvider"])
    expected = float(session.run(None, {"obs": np.asarray([state], dtype=np.float32)})[0][0, 0])
    _, (record,) = c.answer([req])
    assert record["multiplier"] == pytest.approx(min(max(expected, 0.25), 2.0), abs=1e-5)
    assert "breakout" in FAMILIES and c.gauges()["symbols"] == 1


def test_kill_switch_and_no_model_fall_back_with_their_reasons_and_degrade_the_status() -> None:
    c = core()
    assert c.answer([request(score=0.9)])[1][0]["fallback_reason"] == "no_model"
    assert c.status() == "DEGRADED" and c.gauges()["sizer_age_seconds"] == -1.0
    c.store.apply(sizer_update("v1", KEY, constant=1.25))
    assert c.status() == "UP"
    c.control.apply(control_record("FORCE_FALLBACK", scope=c.ident))
    _, (record,) = c.answer([request(score=0.9)])
    assert record["fallback_reason"] == "kill_switch" and record["multiplier"] == 1.5
    assert c.status() == "DEGRADED" and c.info()["kill_switch"] == "true" and c.fallbacks == 2


def test_heartbeat_info_names_versions_canary_and_rejections() -> None:
    c = core(canary_share=0.5)
    c.store.apply(sizer_update("v1", KEY, constant=1.0))
    assert c.store.apply(sizer_update("v2", KEY, constant=1.5)).kind == "canary"
    c.store.apply({**sizer_update("v3", KEY), "signature": "00"})
    info = c.info()
    assert info["sizer"] == "v1" and info["sizer.canary"] == "v2" and info["sizer.canary_share"] == "0.5"
    assert info["sizer.rejected"] == "v3:bad_signature" and "decisions=0" in info["sizer.canary_state"]


def test_outcomes_feed_the_sizer_canary_and_other_topics_are_left_to_the_caller() -> None:
    c = core(canary_share=1.0, canary_decisions=2)
    c.store.apply(sizer_update("v1", KEY, constant=1.0))
    c.store.apply(sizer_update("v2", KEY, constant=2.0))
    c.answer([request("a"), request("b")])
    for signal_id in ("a", "b"):
        assert c.observe(OUTCOMES, {"signal_id": signal_id, "return_unit": -0.01})
    assert not c.observe(STRATEGY_WEIGHTS, {})
    assert c.settle(1e12)  # two losing outcomes: rolled back
    assert c.info()["sizer.rolled_back"] == "v2" and c.serving_version() == "v1"


def test_a_sizer_only_store_ignores_allocators_and_shadows_but_rejects_unknown_models() -> None:
    settings = Settings(model_signing_key=KEY.decode())
    store = ModelStore(settings, WorkerMetrics(f"unit-{uuid.uuid4().hex[:6]}"),
                       {"sizer": sizer_canary(settings.inference)}, shadows=False)  # fmt: skip
    allocator = update_record(make_manifest("a1", mlp_onnx(n_in=8, n_out=3), name="allocator",
                                            strategies=["x", "y", "z"]), mlp_onnx(n_in=8, n_out=3), KEY)  # fmt: skip
    assert store.apply(allocator).kind == "ignored"
    assert store.apply(sizer_update("s1", KEY, role="SHADOW")).kind == "ignored"
    assert store.apply({**sizer_update("p1", KEY), "model_name": "pricer"}).detail == "unknown_model"
    assert store.models == ("sizer",) and store.slot("sizer").shadow is None
    with pytest.raises(ValueError, match="pricer"):
        ModelStore(settings, WorkerMetrics("unit-x"), {"pricer": None})
