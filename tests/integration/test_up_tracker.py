"""``tradeloop up``'s live tracker reads the weights the engine receives and the periods that follow."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from streams.producer import EventProducer
from streams.settings import Settings
from streams.topics import ALLOCATION_PERIODS, STRATEGY_WEIGHTS
from tests.unit.streams.records import SAMPLES
from tradeloop.ops.uplift import UpliftTracker

pytestmark = pytest.mark.integration


def poll_until(tracker: UpliftTracker, done: Callable[[], bool], seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, tracker.summary()
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
            poll_until(tracker, lambda: tracker.weights.fallback_reason == "no_model")
            producer.send(STRATEGY_WEIGHTS, "main", learned)
            producer.flush(10.0)
            poll_until(tracker, lambda: tracker.weights.updates == 1)
            for i in range(3):
                producer.send(ALLOCATION_PERIODS, "main", {**period, "event_id": f"a{i + 2}"})
        poll_until(tracker, lambda: tracker.weights.periods == 3)
    finally:
        tracker.close()
    summary = tracker.summary()
    # per period (0.8 - 0.5) * 0.01 + (0.2 - 0.5) * (-0.02) = 0.009
    assert summary["weights_updates"] == 1 and summary["weights_periods_scored"] == 3
    assert summary["weights_uplift_vs_equal"] == pytest.approx(0.027)
    assert summary["weights_model_version"] == "v0001-x" and summary["weights_latest"] == {"a": 0.8, "b": 0.2}
