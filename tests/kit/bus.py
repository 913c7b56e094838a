"""Reading topics back in tests with a plain confluent-kafka consumer, batch records unpacked.

Reads to a count rather than to the high watermarks: Tansu 0.6 reports wrong high watermarks for
keyed multi-partition topics (e.g. 1 for a partition holding 1,500 records).
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

from confluent_kafka import Consumer, Message, TopicPartition

from streams.avro.batches import to_rows
from streams.avro.codec import Codec
from streams.settings import Settings
from streams.topics import MODEL_UPDATES
from tradeloop.ops.status_collect import BusReader

__all__ = ["BusEvent", "events_in", "read_events", "read_messages", "read_updates"]


class BusEvent(NamedTuple):
    """One event as it sits on the bus: its record's key and partition, and the decoded event."""

    key: bytes | None
    partition: int
    offset: int
    batched: bool
    event: dict[str, Any]


def read_messages(
    settings: Settings, topic: str, enough: Any = None, timeout: float = 15.0, settle: float = 0.3
) -> list[Message]:
    """Every message of logical ``topic`` from the start, until ``enough(messages)`` or ``timeout``.

    After ``enough`` holds, reads for ``settle`` seconds more, so that counts taken from the
    result are exact rather than "at least".
    """
    full = settings.topic(topic)
    consumer = Consumer(
        {"bootstrap.servers": settings.bootstrap, "group.id": "reader", "enable.auto.commit": False}
    )
    try:
        partitions = consumer.list_topics(full, timeout=10).topics[full].partitions
        consumer.assign([TopicPartition(full, p, 0) for p in partitions])
        messages: list[Message] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not (enough is not None and enough(messages)):
            messages.extend(m for m in consumer.consume(1000, 0.5) if m.error() is None)
        settle_until = time.monotonic() + settle
        while time.monotonic() < settle_until:
            messages.extend(m for m in consumer.consume(1000, 0.1) if m.error() is None)
        return messages
    finally:
        consumer.close()


def events_in(topic: str, messages: list[Message], codec: Codec | None = None) -> list[BusEvent]:
    """The events of ``messages`` in order, each batch record unpacked into its events."""
    codec = codec or Codec()
    out = []
    for m in messages:
        record, batched = codec.decode_any(topic, m.value() or b"")
        rows = to_rows(topic, record) if batched else [record]
        out += [BusEvent(m.key(), m.partition() or 0, m.offset() or 0, batched, r) for r in rows]
    return out


def read_events(settings: Settings, topic: str, expected: int, timeout: float = 15.0) -> list[BusEvent]:
    """Every event of logical ``topic`` (batches unpacked), reading until ``expected`` arrived."""
    codec = Codec.from_settings(settings)
    events: list[BusEvent] = []
    seen = 0

    def enough(messages: list[Message]) -> bool:
        nonlocal seen
        events.extend(events_in(topic, messages[seen:], codec))
        seen = len(messages)
        return len(events) >= expected

    messages = read_messages(settings, topic, enough, timeout)
    return events + events_in(topic, messages[seen:], codec)


def read_updates(
    settings: Settings, expected: int, timeout: float = 15.0
) -> list[tuple[bytes, dict[str, Any]]]:
    """Every model update on the topic (key, record), read with a plain consumer, in offset order."""
    full = settings.topic(MODEL_UPDATES)
    consumer = Consumer({"bootstrap.servers": settings.bootstrap, "group.id": "updates-reader"})
    partitions = consumer.list_topics(full, timeout=10).topics[full].partitions
    consumer.assign([TopicPartition(full, p, 0) for p in partitions])
    found: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(found) < expected and time.monotonic() < deadline:
        found += [m for m in consumer.consume(50, 0.5) if m.error() is None]
    consumer.close()
    found.sort(key=lambda m: (m.partition(), m.offset()))
    return [(m.key(), Codec().decode(MODEL_UPDATES, m.value())) for m in found]


def wait_for_beats(settings: Settings, *idents: str, timeout: float = 15.0) -> None:
    """Until the heartbeats of ``idents`` are readable (a new producer's first send takes a moment)."""
    deadline = time.monotonic() + timeout
    with BusReader(settings) as bus:
        while not set(idents) <= set(bus.read_state().beats):
            assert time.monotonic() < deadline, f"no heartbeat of {idents}"
            time.sleep(0.2)
