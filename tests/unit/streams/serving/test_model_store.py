"""Verification and the slot transitions of the model store (no broker: records built in memory)."""

from __future__ import annotations

import uuid

import pytest

from streams.manifest import onnx_digest
from streams.serving.errors import ModelRejectedError
from streams.serving.metrics import REJECTIONS, WorkerMetrics
from streams.serving.model_store import ModelStore
from streams.serving.verify import load_model
from streams.settings import Settings
from tests.kit.inference.model_factory import make_manifest, mlp_onnx, sizer_update, update_record

KEY = b"unit-test-key"


def settings(**inference: object) -> Settings:
    return Settings(model_signing_key=KEY.decode(), inference=inference)


def new_store(**inference: object) -> tuple[ModelStore, str]:
    worker = f"unit-{uuid.uuid4().hex[:6]}"
    return ModelStore(settings(**inference), WorkerMetrics(worker)), worker


def rejections(worker: str, reason: str) -> float:
    return REJECTIONS.labels(worker=worker, model="sizer", reason=reason)._value.get()


def test_a_signed_model_loads_and_runs() -> None:
    model = load_model(sizer_update("v1", KEY, constant=1.3), KEY, 10**8)
    assert model.version == "v1" and model.n_inputs == len(model.manifest.feature_names)
    assert model.run(model.mean.reshape(1, -1)).tolist() == [[pytest.approx(1.3)]]


def tampered() -> dict:
    record = sizer_update("bad", KEY, seed=1)
    onnx = bytearray(record["onnx"])
    onnx[len(onnx) // 2] ^= 0xFF
    return {**record, "onnx": bytes(onnx)}


def truncated_resigned() -> dict:
    onnx = mlp_onnx(seed=1)[:500]
    return update_record(make_manifest("bad", onnx), onnx, KEY)


def wrong_spec() -> dict:
    onnx = mlp_onnx(seed=1)
    return update_record(make_manifest("bad", onnx, feature_spec_digest="0" * 64), onnx, KEY)


def zero_std() -> dict:
    onnx = mlp_onnx(seed=1)
    manifest = make_manifest("bad", onnx)
    std = [1.0] * len(manifest.obs_std)
    std[4] = 0.0
    return update_record(make_manifest("bad", onnx, obs_std=std), onnx, KEY)


def wrong_width() -> dict:
    onnx = mlp_onnx(n_in=10, seed=1)
    return update_record(make_manifest("bad", onnx), onnx, KEY)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (tampered, "checksum_mismatch"),
        (lambda: {**sizer_update("bad", KEY), "onnx": mlp_onnx()[:-100]}, "checksum_mismatch"),
        (truncated_resigned, "bad_onnx"),
        (lambda: {**sizer_update("bad", KEY), "signature": ""}, "unsigned"),
        (lambda: sizer_update("bad", b"another-key"), "bad_signature"),
        (lambda: {**sizer_update("bad", KEY), "version": "other"}, "bad_manifest"),
        (wrong_spec, "spec_mismatch"),
        (zero_std, "bad_manifest"),
        (wrong_width, "bad_onnx"),
        (lambda: {**sizer_update("bad", KEY), "model_name": "pricer"}, "unknown_model"),
    ],
)  # fmt: skip
def test_bad_updates_are_rejected_with_their_reason(make, reason: str) -> None:
    with pytest.raises(ModelRejectedError) as caught:
        load_model(make(), KEY, 10**8)
    assert caught.value.reason == reason


def test_oversized_update_is_rejected_before_verification() -> None:
    record = sizer_update("big", KEY)
    with pytest.raises(ModelRejectedError, match="oversized"):
        load_model(record, KEY, len(record["onnx"]) - 1)


def test_rejected_update_leaves_the_last_good_model_serving() -> None:
    store, worker = new_store(canary_share=0.0)
    assert store.apply(sizer_update("v1", KEY, constant=1.1)).kind == "serving"
    for record in (tampered(), wrong_spec(), {**sizer_update("v2", KEY), "signature": ""}):
        assert store.apply(record).kind == "rejected"
    slot = store.slot("sizer")
    assert slot.serving.version == "v1"
    assert slot.last_rejection == ("v2", "unsigned")
    assert rejections(worker, "checksum_mismatch") == 1 and rejections(worker, "spec_mismatch") == 1
    assert store.info()["sizer"] == "v1"


def test_swap_keeps_the_previous_model_and_ignores_repeats() -> None:
    store, _ = new_store(canary_share=0.0)
    store.apply(sizer_update("v1", KEY))
    assert store.apply(sizer_update("v1", KEY)).kind == "unchanged"
    store.apply(sizer_update("v2", KEY, seed=2))
    slot = store.slot("sizer")
    assert (slot.serving.version, slot.previous.version) == ("v2", "v1")


def test_live_update_starts_a_canary_but_history_does_not() -> None:
    store, _ = new_store(canary_share=0.3)
    assert store.apply(sizer_update("v1", KEY), live=True).kind == "serving"  # nothing to compare with
    assert store.apply(sizer_update("v2", KEY, seed=2), live=False).kind == "serving"
    applied = store.apply(sizer_update("v3", KEY, seed=3), live=True)
    assert applied.kind == "canary"
    slot = store.slot("sizer")
    assert slot.serving.version == "v2" and slot.canary.candidate.version == "v3"
    assert store.info()["sizer.canary"] == "v3"
    # The trainer re-publishing the incumbent ends the canary.
    assert store.apply(sizer_update("v2", KEY, seed=2)).detail == "canary cancelled"
    assert slot.canary is None and slot.serving.version == "v2"


def test_canary_verdicts_promote_or_roll_back_for_good() -> None:
    store, _ = new_store(canary_share=1.0, canary_decisions=2)
    store.apply(sizer_update("v1", KEY, constant=1.0))
    store.apply(sizer_update("v2", KEY, constant=2.0))
    canary = store.slot("sizer").canary
    canary.record(["a", "b"], [2.0, 2.0], [1.0, 1.0], fallbacks=0)
    canary.outcome("a", -0.01)
    assert store.settle_canary("sizer", 0.0) is None  # one outcome of two
    canary.outcome("b", -0.03)
    assert store.settle_canary("sizer", 0.0) == "rolled_back:uplift"
    slot = store.slot("sizer")
    assert slot.serving.version == "v1" and slot.canary is None
    assert store.apply(sizer_update("v2", KEY, constant=2.0)).kind == "unchanged"  # not retried
    store.apply(sizer_update("v3", KEY, constant=1.5))
    good = slot.canary
    good.record(["c", "d"], [1.5, 1.5], [1.0, 1.0], fallbacks=0)
    good.outcome("c", 0.02)
    good.outcome("d", 0.01)
    assert store.settle_canary("sizer", 0.0) == "promoted"
    assert (slot.serving.version, slot.previous.version) == ("v3", "v1")


def test_shadow_loads_beside_the_serving_model_and_promotes_in_place() -> None:
    store, _ = new_store(canary_share=0.0)
    store.apply(sizer_update("v1", KEY))
    assert store.apply(sizer_update("v1", KEY, role="SHADOW")).kind == "unchanged"  # same as serving
    assert store.apply(sizer_update("s1", KEY, seed=4, role="SHADOW")).kind == "shadow"
    slot = store.slot("sizer")
    assert slot.serving.version == "v1" and slot.shadow.version == "s1"
    store.apply(sizer_update("s1", KEY, seed=4))
    assert slot.serving.version == "s1" and slot.shadow is None


def test_held_updates_apply_on_release() -> None:
    store, _ = new_store(canary_share=0.0)
    store.hold(sizer_update("v1", KEY))
    store.hold(sizer_update("v2", KEY, seed=2))  # newest per model and role wins
    assert store.slot("sizer").serving is None and store.held == 1
    assert [a.version for a in store.release_held()] == ["v2"]
    assert store.slot("sizer").serving.version == "v2"


def test_onnx_digest_matches_manifest_of_factory_models() -> None:
    record = sizer_update("v1", KEY)
    assert onnx_digest(record["onnx"]) in record["manifest_json"]


def test_a_trainer_rollback_serves_at_once_without_a_canary() -> None:
    store, _ = new_store(canary_share=0.5)
    store.apply(sizer_update("v1", KEY), live=False)
    store.apply(sizer_update("v2", KEY, seed=2), live=False)
    rollback = {**sizer_update("v1", KEY), "reason": "rollback"}
    assert store.apply(rollback, live=True).kind == "serving"
    assert store.slot("sizer").serving.version == "v1" and store.slot("sizer").canary is None
