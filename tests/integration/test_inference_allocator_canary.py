"""A second allocator published to a running worker is judged on live periods and settled, no restart."""

from __future__ import annotations

from typing import Any

import pytest

from agents.inference.rollout import RolloutWatcher
from streams.clock import new_event_id
from streams.kafka.consumer import EventConsumer
from streams.kafka.producer import EventProducer
from streams.serving.metrics import CANARY_ROLLBACKS
from streams.settings import Settings
from streams.topics import ALLOCATION_PERIODS, STRATEGY_WEIGHTS
from tests.kit.inference.allocator import PERIOD_US, allocator_update, period
from tests.kit.inference.harness import publish, running_worker, wait_until

pytestmark = pytest.mark.integration

# v1 favours strategy a, v2 strategy b, v3 strategy c.
V1, V2, V3 = (3.0, 0.0, 0.0), (0.0, 3.0, 0.0), (0.0, 0.0, 3.0)


def send_periods(settings: Settings, first: int, returns: list[tuple[float, float, float]]) -> None:
    """Consecutive AllocationPeriods of portfolio ``main`` from period ``first``, as the agents emit them."""
    with EventProducer(settings, "test-agents", config={"linger.ms": 0}) as producer:
        for i, r in enumerate(returns, start=first):
            record = {
                **period(i, r),
                "event_id": new_event_id(),
                "period_seconds": PERIOD_US / 1e6,
                "trades": 10,
            }
            producer.send(ALLOCATION_PERIODS, record["portfolio"], record)


class WeightsReader:
    """Every StrategyWeights record on the topic, read without a group."""

    def __init__(self, settings: Settings) -> None:
        self.consumer = EventConsumer(
            settings, "weights-reader", "weights-reader", config={"fetch.wait.max.ms": 20}
        )
        self.consumer.assign_all([STRATEGY_WEIGHTS], from_beginning=True)
        self.records: list[dict[str, Any]] = []

    def versions(self) -> set[str | None]:
        self.records += [self.consumer.decode(m) for m in self.consumer.poll_batch(1000, 0.05)]
        return {r["model_version"] for r in self.records}

    def close(self) -> None:
        self.consumer.close()


def test_a_new_allocator_is_promoted_or_rolled_back_by_realised_period_returns(topics: Settings) -> None:
    key = topics.signing_key()
    publish(topics, allocator_update("v1", V1, key=key))
    weights = WeightsReader(topics)
    conf = {"allocator_canary_periods": 3, "weights_interval_seconds": 0.2}
    try:
        with running_worker(topics, **conf) as worker, RolloutWatcher(topics) as watcher:
            assert worker.store.info()["allocator"] == "v1"
            send_periods(topics, 0, [(0.0, 0.0, 0.0)])
            assert wait_until(lambda: "v1" in weights.versions(), 10.0)

            # v2 arrives live: a canary, while v1 keeps publishing.
            publish(topics, allocator_update("v2", V2, key=key))
            assert wait_until(lambda: worker.store.info().get("allocator.canary") == "v2")
            assert worker.store.info()["allocator"] == "v1"
            # Strategy b earns, a loses: every judged period says v2 would have earned more.
            send_periods(topics, 1, [(-0.01, 0.02, 0.0), (-0.005, 0.01, 0.0), (-0.02, 0.015, 0.0),
                                     (0.0, 0.01, 0.0)])  # fmt: skip
            assert watcher.wait_for("allocator", "v2", workers=1, timeout=15.0)  # acknowledged on heartbeats
            info = worker.store.info()
            assert "allocator.canary" not in info and worker.store.slot("allocator").previous.version == "v1"
            assert wait_until(lambda: "v2" in weights.versions(), 10.0)  # the weights follow v2 now
            assert worker.store.info()["allocator"] == "v2"

            # v3 favours c, which loses from here on: rolled back, v2 keeps serving.
            publish(topics, allocator_update("v3", V3, key=key))
            assert wait_until(lambda: worker.store.info().get("allocator.canary") == "v3")
            send_periods(topics, 5, [(0.0, 0.01, -0.02), (0.0, 0.005, -0.01), (0.0, 0.0, -0.015),
                                     (0.0, 0.01, -0.01)])  # fmt: skip
            assert wait_until(lambda: worker.store.info().get("allocator.rolled_back") == "v3", 15.0)
            assert worker.store.info()["allocator"] == "v2" and "allocator.canary" not in worker.store.info()
            rollbacks = CANARY_ROLLBACKS.labels(worker=worker.worker_id, model="allocator", reason="uplift")
            assert rollbacks._value.get() == 1
            assert "v3" not in weights.versions()
    finally:
        weights.close()
