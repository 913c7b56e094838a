"""Producing engine events in tests the way engines do: batched through the SDK's batcher, or single.

Events keyed by their symbol go through :class:`streams.batching.EventBatcher` (batch records,
the contract since 0.2); anything else (signals and outcomes keyed by signal id, the 0.1 keying)
goes as a single record. Open batches are produced before each single record, so every
partition keeps the order of ``events``: the join's decisions depend on that order per lane.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from typing import Any

from streams.batching import EventBatcher
from streams.kafka.producer import EventProducer
from streams.settings import Settings
from streams.topics import BATCH_SCHEMA_OF_TOPIC

__all__ = ["Event", "live_engine", "produce_events"]

Event = tuple[str, str, dict[str, Any]]  # (logical topic, key, record)


def _feed(batcher: EventBatcher, producer: EventProducer, events: Sequence[Event], batched: bool) -> None:
    for topic, key, record in events:
        if batched and topic in BATCH_SCHEMA_OF_TOPIC and key == record.get("symbol"):
            batcher.add(topic, key, record)
        else:
            batcher.flush_due(now=math.inf)
            producer.send(topic, key, record)


def produce_events(settings: Settings, events: Sequence[Event], batched: bool = True, client: str = "test-engine") -> None:
    """Produce ``events`` in order and wait until every one is acknowledged."""
    with EventProducer(settings, client) as producer:
        batcher = EventBatcher(producer, settings.batching, producer.partitions)
        _feed(batcher, producer, events, batched)
        batcher.close()


def live_engine(
    settings: Settings, events: Sequence[Event], go: threading.Event | None = None, batched: bool = True
) -> threading.Thread:
    """A started thread that produces ``events`` like a live engine: 250 every 0.3 s (after ``go``)."""

    def produce() -> None:
        if go is not None:
            go.wait(120)
        with EventProducer(settings, "live-engine") as producer:
            batcher = EventBatcher(producer, settings.batching, producer.partitions)
            for start in range(0, len(events), 250):
                _feed(batcher, producer, events[start : start + 250], batched)
                batcher.flush()
                time.sleep(0.3)
            batcher.close()

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    return thread
