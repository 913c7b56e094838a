"""The allocator's canary: realised period uplift, its verdicts, and settling it in the model store."""

from __future__ import annotations

import math
import uuid

import pytest

from agents.inference.allocator_canary import AllocatorCanary, allocator_canary, realised_uplift
from agents.inference.weights import softmax
from streams.config.inference import InferenceSettings
from streams.serving.metrics import CANARY_ROLLBACKS, WorkerMetrics
from streams.serving.model_store import ModelStore
from streams.settings import Settings
from tests.kit.inference.allocator import KEY, allocator, allocator_update, period


def settings(**overrides: object) -> InferenceSettings:
    return InferenceSettings(**{"allocator_canary_periods": 3, **overrides})


# v1 puts most weight on "a", v2 on "b".
V1_LOGITS, V2_LOGITS = (3.0, 0.0, 0.0), (0.0, 3.0, 0.0)


def test_realised_uplift_is_the_weight_difference_times_the_returns() -> None:
    p = period(1, (0.02, -0.01, 0.005))
    assert realised_uplift({"a": 0.5, "b": 0.5}, {"a": 0.5, "b": 0.5}, p) == 0.0
    expected = (0.2 - 0.5) * 0.02 + (0.8 - 0.5) * -0.01
    assert realised_uplift({"a": 0.2, "b": 0.8}, {"a": 0.5, "b": 0.5}, p) == pytest.approx(expected)
    assert realised_uplift({"a": 1.0, "z": 0.0}, {"a": 1.0}, p) is None  # no return for "z"
    assert realised_uplift({"a": 1.0}, {"a": 0.0}, period(1, (math.nan, 0.0, 0.0))) is None


def test_each_period_judges_the_decision_made_on_the_one_before() -> None:
    canary = AllocatorCanary(allocator("v2", V2_LOGITS), allocator("v1", V1_LOGITS), settings(), started=0.0)
    returns = (-0.01, 0.02, 0.0)
    assert canary.observe(period(0)) is None  # decides for period 1, nothing to judge yet
    uplift = canary.observe(period(1, returns))
    w2, w1 = softmax(list(V2_LOGITS)), softmax(list(V1_LOGITS))
    exact = sum((c - i) * r for c, i, r in zip(w2, w1, returns, strict=True))
    assert uplift == pytest.approx(exact, rel=1e-5) and uplift > 0
    assert (canary.decisions, canary.outcomes, canary.fallbacks) == (2, 1, 0)
    assert canary.observe(period(1, returns)) is None  # re-delivered: no double count
    assert canary.observe(period(3, returns)) is None  # a gap: period 2 never came, nothing judged
    assert canary.outcomes == 1
    assert canary.uplift()[0] == pytest.approx(exact, rel=1e-5)


def test_portfolios_are_judged_apart_and_other_strategy_sets_carry_no_evidence() -> None:
    canary = AllocatorCanary(allocator("v2", V2_LOGITS), allocator("v1", V1_LOGITS), settings(), started=0.0)
    canary.observe(period(0, portfolio="p1"))
    canary.observe(period(0, portfolio="p2"))
    other = ["x", "y"]
    canary.observe(period(0, (0.0, 0.0), portfolio="p3", strategies=other))  # both fall back
    assert canary.decisions == 2
    assert canary.observe(period(1, (0.0, 0.01, 0.0), portfolio="p2")) > 0
    assert canary.observe(period(1, (0.01, 0.01), portfolio="p3", strategies=other)) is None
    assert canary.outcomes == 1


def test_a_candidate_that_beats_the_incumbent_is_promoted_after_n_periods() -> None:
    canary = AllocatorCanary(allocator("v2", V2_LOGITS), allocator("v1", V1_LOGITS), settings(), started=0.0)
    for i, r in enumerate([(0, 0, 0), (-0.01, 0.02, 0), (0.0, 0.01, 0), (-0.02, 0.015, 0)]):
        canary.observe(period(i, r))
        if i < 3:
            assert canary.verdict(1.0) is None
    verdict = canary.verdict(1.0)
    assert verdict.promote and verdict.reason == "uplift_ok"


def test_a_candidate_that_surely_loses_is_rolled_back() -> None:
    canary = AllocatorCanary(allocator("v2", V2_LOGITS), allocator("v1", V1_LOGITS), settings(), started=0.0)
    for i, r in enumerate([(0, 0, 0), (0.02, -0.01, 0), (0.01, -0.012, 0), (0.015, -0.02, 0)]):
        canary.observe(period(i, r))
    verdict = canary.verdict(1.0)
    assert not verdict.promote and verdict.reason == "uplift"


def test_a_candidate_that_cannot_answer_is_rolled_back_on_its_fallback_rate() -> None:
    # The candidate allocates over strategies the portfolio does not have: it falls back every period.
    wrong = allocator("v2", (1.0, 0.0), strategies=["a", "z"])
    canary = AllocatorCanary(wrong, allocator("v1", V1_LOGITS), settings(canary_max_fallback_rate=0.0), 0.0)
    canary.observe(period(0))
    verdict = canary.verdict(1.0)
    assert canary.fallbacks == 1 and not verdict.promote and verdict.reason == "fallback_rate"


def test_timeout_judges_what_arrived_then_promotes() -> None:
    conf = settings(allocator_canary_timeout_seconds=10.0)
    idle = AllocatorCanary(allocator("v2", V2_LOGITS), allocator("v1", V1_LOGITS), conf, started=0.0)
    assert idle.verdict(9.9) is None
    verdict = idle.verdict(10.0)
    assert verdict.promote and verdict.reason == "timeout"  # no periods at all: nothing to judge on
    losing = AllocatorCanary(allocator("v2", V2_LOGITS), allocator("v1", V1_LOGITS), conf, started=0.0)
    for i, r in enumerate([(0, 0, 0), (0.02, -0.01, 0), (0.01, -0.012, 0)]):
        losing.observe(period(i, r))
    assert losing.verdict(10.0).reason == "uplift"  # 2 of 3 periods, but already surely worse


def new_store(**inference: object) -> tuple[ModelStore, WorkerMetrics]:
    """A store that serves the allocator the way the workers do (its canary from agents.inference)."""
    metrics = WorkerMetrics(f"unit-{uuid.uuid4().hex[:6]}")
    settings = Settings(model_signing_key=KEY.decode(), inference=inference)
    return ModelStore(settings, metrics, {"allocator": allocator_canary(settings.inference)}), metrics


def test_store_judges_a_live_allocator_update_and_promotes_it() -> None:
    store, _ = new_store(allocator_canary_periods=2)
    assert store.apply(allocator_update("v1", V1_LOGITS)).kind == "serving"
    assert store.apply(allocator_update("v2", V2_LOGITS)).kind == "canary"
    slot = store.slot("allocator")
    assert isinstance(slot.canary, AllocatorCanary) and slot.serving.version == "v1"
    assert store.info()["allocator.canary"] == "v2" and "allocator.canary_share" not in store.info()
    for i, r in enumerate([(0, 0, 0), (-0.01, 0.02, 0)]):
        slot.canary.observe(period(i, r))
    assert store.settle_canary("allocator", 0.0) is None  # 1 of 2 periods judged
    slot.canary.observe(period(2, (0.0, 0.01, 0)))
    assert store.settle_canary("allocator", 0.0) == "promoted"
    assert (slot.serving.version, slot.previous.version, slot.canary) == ("v2", "v1", None)


def test_store_rolls_a_losing_allocator_back_for_good() -> None:
    store, metrics = new_store(allocator_canary_periods=2)
    store.apply(allocator_update("v1", V1_LOGITS))
    store.apply(allocator_update("v2", V2_LOGITS))
    canary = store.slot("allocator").canary
    for i, r in enumerate([(0, 0, 0), (0.02, -0.01, 0), (0.01, -0.02, 0)]):
        canary.observe(period(i, r))
    assert store.settle_canary("allocator", 0.0) == "rolled_back:uplift"
    assert store.slot("allocator").serving.version == "v1"
    assert store.info()["allocator.rolled_back"] == "v2"
    assert (
        CANARY_ROLLBACKS.labels(worker=metrics.worker, model="allocator", reason="uplift")._value.get() == 1
    )
    assert store.apply(allocator_update("v2", V2_LOGITS)).kind == "unchanged"  # not loaded again


def test_no_allocator_canary_when_its_period_count_is_zero() -> None:
    store, _ = new_store(allocator_canary_periods=0, canary_share=0.5)
    store.apply(allocator_update("v1", V1_LOGITS))
    assert store.apply(allocator_update("v2", V2_LOGITS)).kind == "serving"
