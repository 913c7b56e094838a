"""End offsets that count every record, on Tansu as on Kafka.

Tansu 0.6 answers ListOffsets(latest) with the base offset of the last record batch plus one: a
batch of 20 records looks like one record. Its Fetch responses carry the true high watermark.
The first test shows the broker's behaviour with plain confluent-kafka clients only; the second
shows that status counts right anyway.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from streams.settings import Settings
from streams.topics import TRADES
from tradeloop.ops.status_collect import BusReader

pytestmark = pytest.mark.integration


def produce_one_batch(settings: Settings, count: int) -> None:
    """``count`` records in one batch to one partition (same key, long linger)."""
    producer = Producer({"bootstrap.servers": settings.bootstrap, "linger.ms": 200})
    for i in range(count):
        producer.produce(settings.topic(TRADES), key=b"BTC", value=b"record-%d" % i)
    assert producer.flush(10) == 0


def test_listed_and_fetched_high_watermarks_plain_clients(topics: Settings) -> None:
    produce_one_batch(topics, 20)
    full = topics.topic(TRADES)
    consumer = Consumer(
        {"bootstrap.servers": topics.bootstrap, "group.id": "wm-probe", "enable.auto.commit": False}
    )
    try:
        partitions = consumer.list_topics(full, timeout=10).topics[full].partitions
        listed = {
            p: consumer.get_watermark_offsets(TopicPartition(full, p), timeout=5)[1] for p in partitions
        }
        (partition,) = [p for p, high in listed.items() if high > 0]
        consumer.assign([TopicPartition(full, partition, 0)])
        offsets: list[int] = []
        deadline = time.monotonic() + 10
        while len(offsets) < 20 and time.monotonic() < deadline:
            offsets += [m.offset() for m in consumer.consume(100, 0.5) if m.error() is None]
        fetched = consumer.get_watermark_offsets(TopicPartition(full, partition), cached=True)[1]
    finally:
        consumer.close()
    assert offsets == list(range(20))
    assert fetched == 20
    # Apache Kafka lists 20. Tansu 0.6 lists 1 (base offset 0 of the one batch, plus one).
    assert listed[partition] in (1, 20)


def test_status_counts_every_record_of_a_batch(topics: Settings) -> None:
    produce_one_batch(topics, 20)
    produce_one_batch(topics, 7)
    with BusReader(topics) as bus:
        assert bus.sample().totals[TRADES] == 27
