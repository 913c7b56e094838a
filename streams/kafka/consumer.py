"""A codec-aware consumer: subscribe as a group, or assign every partition without a group.

Assignment without a group is how tradeloop reads broadcast topics (every inference worker reads
every model update; every engine reads its own decisions): no rebalance, no join delay.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, Message, TopicPartition

from streams.avro.batches import to_rows
from streams.avro.codec import Codec
from streams.errors import BatchShapeError, SchemaDecodeError
from streams.kafka.config import consumer_config
from streams.kafka.metadata import require_partitions
from streams.settings import Settings

__all__ = ["EventConsumer"]

log = logging.getLogger(__name__)


class EventConsumer:
    """Consumes logical topics; :meth:`decode` turns a message into a record with the codec."""

    def __init__(
        self,
        settings: Settings,
        group_id: str,
        client_id: str = "tradeloop",
        codec: Codec | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        self.settings = settings
        self.codec = codec or Codec.from_settings(settings)
        self._consumer = Consumer(consumer_config(settings, group_id, client_id, **(config or {})))
        self._logical: dict[str, str] = {}

    def _full(self, topic: str) -> str:
        full = self.settings.topic(topic)
        self._logical[full] = topic
        return full

    def logical(self, full_topic: str) -> str:
        """The logical name (``trades``) of a full topic name (``tradeloop.trades``)."""
        return self._logical.get(full_topic, full_topic.removeprefix(self.settings.topic_prefix))

    def subscribe(self, topics: Iterable[str], **callbacks: Any) -> None:
        """Join the consumer group on the logical ``topics``."""
        self._consumer.subscribe([self._full(t) for t in topics], **callbacks)

    def assign_all(self, topics: Iterable[str], from_beginning: bool = True, timeout: float = 10.0) -> int:
        """Read every partition of ``topics`` without a group. Returns the partition count.

        Raises:
            BrokerError: a topic does not exist or metadata is unavailable.
        """
        offset = OFFSET_BEGINNING if from_beginning else OFFSET_END
        assignment: list[TopicPartition] = []
        for topic in topics:
            full = self._full(topic)
            assignment.extend(
                TopicPartition(full, p, offset) for p in require_partitions(self._consumer, full, timeout)
            )
        self._consumer.assign(assignment)
        return len(assignment)

    def poll_batch(self, max_messages: int = 500, timeout: float = 0.5) -> list[Message]:
        """Up to ``max_messages`` messages, returned as soon as one has arrived.

        Transport errors are logged, not returned.
        """
        # consume(n, timeout) waits out the whole timeout while fewer than n are queued, which adds
        # the timeout to every message's latency; wait only for the first message, then take
        # whatever else is already there.
        first = self._consumer.poll(timeout)
        if first is None:
            return []
        messages = [first, *self._consumer.consume(max_messages - 1, 0)] if max_messages > 1 else [first]
        good = []
        for message in messages:
            error = message.error()
            if error is None:
                good.append(message)
            elif error.code() != KafkaError._PARTITION_EOF:
                log.warning("consumer error: %s", error)
        return good

    def decode(self, message: Message) -> dict[str, Any]:
        """The single-event record in ``message``. Raises SchemaDecodeError on bad bytes."""
        return self.codec.decode(self.logical(message.topic() or ""), message.value() or b"")

    def events(self, message: Message) -> list[dict[str, Any]]:
        """The events in ``message``: one for a single-event record, all of a batch record's.

        Raises:
            SchemaDecodeError: bad bytes, or a batch whose arrays do not line up (reason
                ``ragged_batch`` or ``empty_batch``), so callers dead-letter either the same way.
        """
        topic = self.logical(message.topic() or "")
        data = message.value() or b""
        record, batched = self.codec.decode_any(topic, data)
        if not batched:
            return [record]
        try:
            return to_rows(topic, record)
        except BatchShapeError as exc:
            raise SchemaDecodeError(topic, exc.reason, exc.detail, data) from exc

    def commit(self, message: Message | None = None) -> None:
        """Synchronously commit the current position (or the offset after ``message``)."""
        if message is None:
            self._consumer.commit(asynchronous=False)
        else:
            self._consumer.commit(message=message, asynchronous=False)

    def commit_offsets(self, offsets: list[TopicPartition]) -> None:
        """Synchronously commit explicit offsets (the next offset to read, per partition)."""
        self._consumer.commit(offsets=offsets, asynchronous=False)

    @property
    def raw(self) -> Consumer:
        """The underlying confluent-kafka consumer, for lag queries and seeks."""
        return self._consumer

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> EventConsumer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
