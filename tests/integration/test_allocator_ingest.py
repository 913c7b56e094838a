"""Allocation periods from the topic into the allocation store: dead letters, duplicates, resume."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, TopicPartition

from streams.avro.codec import Codec
from streams.kafka.producer import EventProducer
from streams.settings import Settings
from streams.topics import ALLOCATION_PERIODS, DEAD_LETTER
from tests.kit.trainers.periods import make_period
from trainers.store.allocation import AllocationStore
from trainers.store.ingest import PERIODS, Ingestor

pytestmark = pytest.mark.integration


def _dead_letters(settings: Settings, expected: int) -> list[dict]:
    full = settings.topic(DEAD_LETTER)
    consumer = Consumer({"bootstrap.servers": settings.bootstrap, "group.id": "dl-reader"})
    consumer.assign(
        [TopicPartition(full, p, 0) for p in consumer.list_topics(full, timeout=10).topics[full].partitions]
    )
    found: list[dict] = []
    deadline = time.monotonic() + 10
    while len(found) < expected and time.monotonic() < deadline:
        found += [
            Codec().decode(DEAD_LETTER, m.value() or b"")
            for m in consumer.consume(50, 0.3)
            if m.error() is None
        ]
    consumer.close()
    return found


def _send(settings: Settings, periods: list[dict], raw: tuple[bytes, ...] = ()) -> None:
    with EventProducer(settings, "test-agents") as producer:
        for period in periods:
            producer.send(ALLOCATION_PERIODS, period["portfolio"], period)
        for value in raw:
            producer.send_raw(ALLOCATION_PERIODS, "main", value)


def test_periods_are_ingested_once_bad_ones_dead_lettered_and_ingest_resumes(topics: Settings) -> None:
    good = [make_period(i, portfolio=("a", "b")[i % 2]) for i in range(40)]
    bad = {**make_period(99), "market": [0.0] * 7}  # decodes, but the allocator cannot use it
    _send(topics, [*good[:30], bad, *good[:5]], raw=(b"not avro",))
    with AllocationStore.open(topics.data_dir) as store:
        ingestor = Ingestor(topics, store, "test", source=PERIODS)
        ingestor.start()
        totals = ingestor.drain(deadline=30)
        ingestor.close()
        assert totals.messages == 37 and totals.inserted == 30 and totals.duplicates == 5
        assert dict(totals.rejected) == {"market_size": 1, "bad_magic": 1}
        assert store.count() == 30

    reasons = sorted(d["reason"] for d in _dead_letters(topics, 2))
    assert reasons == ["bad_magic", "market_size"]

    # A new ingestor (a restarted trainer) starts at the store's offsets: only the new periods.
    _send(topics, good[30:])
    with AllocationStore.open(topics.data_dir) as store:
        ingestor = Ingestor(topics, store, "test", source=PERIODS)
        ingestor.start()
        again = ingestor.drain(deadline=30)
        ingestor.close()
        assert again.messages == 10 and again.inserted == 10
        assert store.count() == 40 and sum(store.offsets(topics.topic(ALLOCATION_PERIODS)).values()) == 47
        assert {p["event_id"] for p in store.periods()} == {p["event_id"] for p in good}
