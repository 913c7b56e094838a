"""``tradeloop up``'s live tracker: model-sized signals (single or batched) and the weights the engine receives."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest

from streams.avro.batches import to_columns
from streams.kafka.producer import EventProducer
from streams.settings import Settings
from streams.topics import ALLOCATION_PERIODS, OUTCOMES, SIGNALS, STRATEGY_WEIGHTS
from tests.kit.records import SAMPLES
from tradeloop.ops.uplift import UpliftTracker

pytestmark = pytest.mark.integration


def poll_until(tracker: UpliftTracker, done: Callable[[], bool], seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, json.dumps(tracker.summary())
        tracker.poll()


def test_learned_weights_score_the_periods_read_after_them(topics: Settings) -> None:
    fallback = SAMPLES["strategy-weights"]
    learned = {**fallback, "event_id": "w2", "weights": [0.8, 0.2], "model_version": "v0001-x", "fallback": False,
               "fallback_reason": None}  # fmt: skip
    period = SAMPLES["allocation-periods"]  # returns a +0.01, b -0.02
    tracker = UpliftTracker(topics)
    try:
        with EventProducer(topics, "test-weights") as producer:
            producer.send(ALLOCATION_PERIODS, "main", period)  # before any learned weights: not scored
            producer.send(STRATEGY_WEIGHTS, "main", fallback)
            producer.flush(10.0)
            # Both read before the learned weights go out: the two topics are read in no set order.
            poll_until(
                tracker, lambda: tracker.weights.fallback_reason == "no_model" and tracker.weights.periods_read == 1
            )
            producer.send(STRATEGY_WEIGHTS, "main", learned)
            producer.flush(10.0)
            poll_until(tracker, lambda: tracker.weights.updates == 1)
            for i in range(3):
                producer.send(ALLOCATION_PERIODS, "main", {**period, "event_id": f"a{i + 2}"})
        poll_until(tracker, lambda: tracker.weights.periods_read == 4)
    finally:
        tracker.close()
    summary = tracker.summary()
    # per period (0.8 - 0.5) * 0.01 + (0.2 - 0.5) * (-0.02) = 0.009
    assert summary["weights_updates"] == 1 and summary["weights_periods_scored"] == 3, summary
    assert summary["weights_periods_read"] == 4
    assert summary["weights_uplift_vs_equal"] == pytest.approx(0.027)
    assert summary["weights_model_version"] == "v0001-x" and summary["weights_latest"] == {"a": 0.8, "b": 0.2}


def test_model_sized_signals_in_batch_records_count_like_single_ones(topics: Settings) -> None:
    """The SDK batches signals and outcomes; the sizer's live uplift reads them all the same."""
    signals = [{**SAMPLES["signals"], "event_id": f"s{i}", "signal_id": f"sig-{i}", "action": 2.0,
                "model_version": "v0001-x"} for i in range(3)]  # fmt: skip
    outcomes = [{**SAMPLES["outcomes"], "event_id": f"o{i}", "signal_id": f"sig-{i}", "return_unit": 0.01}
                for i in range(3)]  # fmt: skip
    tracker = UpliftTracker(topics)
    try:
        with EventProducer(topics, "test-batches") as producer:
            producer.send_raw(
                SIGNALS, "BTC-USD", producer.codec.encode_batch(SIGNALS, to_columns(SIGNALS, signals[:2]))
            )
            producer.send(SIGNALS, "BTC-USD", signals[2])  # a single record beside the batch
            producer.send_raw(
                OUTCOMES, "BTC-USD", producer.codec.encode_batch(OUTCOMES, to_columns(OUTCOMES, outcomes))
            )
        poll_until(tracker, lambda: tracker.state.decisions_with_model == 3)
    finally:
        tracker.close()
    assert tracker.unreadable == 0
    assert tracker.state.uplift == pytest.approx(3 * (2.0 - 1.0) * 0.01)  # (action - 1) x return, per signal
