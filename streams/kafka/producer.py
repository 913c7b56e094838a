"""A typed, codec-aware producer over confluent-kafka with delivery tracking.

Every tradeloop process produces through this class: it encodes with the codec, retries when the
local queue is full, counts delivery failures instead of losing them, and flushes on close.

Example:
    >>> with EventProducer(settings, "engine") as producer:          # doctest: +SKIP
    ...     producer.send(TRADES, key="BTC", record=trade)
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from streams.avro.codec import Codec
from streams.errors import DeliveryError
from streams.kafka.config import producer_config
from streams.kafka.metadata import require_partitions
from streams.settings import Settings

__all__ = ["DeliveryCallback", "EventProducer"]

log = logging.getLogger(__name__)

DeliveryCallback = Callable[[KafkaError | None, Message], None]


class EventProducer:
    """Produces framed Avro records to logical topics (the settings add the prefix)."""

    def __init__(
        self,
        settings: Settings,
        client_id: str = "tradeloop",
        codec: Codec | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        self.settings = settings
        self.codec = codec or Codec.from_settings(settings)
        self._client_id = client_id
        self._overrides = dict(config or {})
        # A caller's error callback still hears every error; ours tracks outages and renewals.
        self._user_error_cb = self._overrides.pop("error_cb", None)
        self._lock = threading.Lock()
        self.delivered = 0
        self.failed = 0
        self.replaced = 0
        self.last_error: str | None = None
        self.broker_down_since: float | None = None
        self._generation = 0
        self._retired: list[Producer] = []  # replaced clients, polled until their queues are empty
        self._partition_counts: dict[str, int] = {}
        self._producer = self._client()

    def _client(self) -> Producer:
        generation = self._generation

        def on_error(error: KafkaError) -> None:
            self._on_error(error, generation)
            if self._user_error_cb is not None:
                self._user_error_cb(error)

        return Producer(producer_config(self.settings, self._client_id, **self._overrides, error_cb=on_error))

    def _renew(self, generation: int, why: object) -> None:
        """Replace the client of ``generation`` with a fresh one (a fatal error or a delivery timeout).

        A broker that lost its producer state (Tansu keeps it in memory, so a restart does) answers
        UNKNOWN_PRODUCER_ID to every later batch of an idempotent client, which retries until its
        records time out; after a fatal error the client refuses every record. A new client gets a
        new producer id. The old one is purged and polled until empty: its records report as failed.
        """
        with self._lock:
            if generation != self._generation:
                return  # already replaced
            self._generation += 1
            self._retired.append(self._producer)
            self._producer = self._client()
            self.replaced += 1
        log.warning("producer client replaced after %s", why)

    def _poll_retired(self) -> None:
        # Purged outside any callback of the old client: what it still held reports as failed
        # (_PURGE_*), and an idle old client cannot re-register and fence its replacement.
        # Several threads poll one producer (the engine SDK's batcher, the caller's flush).
        for old in list(self._retired):
            old.purge()
            old.poll(0)
            if len(old) == 0:
                with self._lock:
                    if old in self._retired:
                        self._retired.remove(old)

    def _on_error(self, error: KafkaError, generation: int) -> None:
        # _ALL_BROKERS_DOWN and _TRANSPORT are how librdkafka reports an outage; keep it visible.
        self.last_error = str(error)
        if error.fatal():
            self._renew(generation, error)
        elif error.code() in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT):
            if self.broker_down_since is None:
                self.broker_down_since = time.monotonic()
                log.warning("broker unreachable: %s", error)
        else:
            log.warning("producer error: %s", error)

    def _on_delivery(self, error: KafkaError | None, message: Message, generation: int) -> None:
        with self._lock:
            if error is None:
                self.delivered += 1
                self.broker_down_since = None
                return
            self.failed += 1
            self.last_error = str(error)
        log.error("delivery to %s failed: %s", message.topic(), error)
        if error.code() == KafkaError._MSG_TIMED_OUT or error.fatal():
            self._renew(generation, error)

    def send_raw(
        self,
        topic: str,
        key: str | bytes | None,
        value: bytes,
        on_delivery: DeliveryCallback | None = None,
        timestamp_ms: int | None = None,
        partition: int | None = None,
    ) -> None:
        """Produce already-encoded bytes to logical ``topic``; waits while the local queue is full.

        ``partition`` None lets the partitioner (murmur2 of the key) choose.
        """
        generation = self._generation

        def callback(error: KafkaError | None, message: Message) -> None:
            self._on_delivery(error, message, generation)
            if on_delivery is not None:
                on_delivery(error, message)

        kwargs: dict[str, Any] = {"key": key, "value": value, "on_delivery": callback}
        if timestamp_ms is not None:
            kwargs["timestamp"] = timestamp_ms
        if partition is not None:
            kwargs["partition"] = partition
        full = self.settings.topic(topic)
        while True:
            producer = self._producer
            try:
                producer.produce(full, **kwargs)
                break
            except BufferError:
                producer.poll(0.05)
            except KafkaException as exc:
                if not exc.args[0].fatal():
                    raise
                self._renew(generation, exc.args[0])
                generation = self._generation
        self.poll(0)

    def send(
        self,
        topic: str,
        key: str | bytes | None,
        record: Mapping[str, Any],
        on_delivery: DeliveryCallback | None = None,
    ) -> None:
        """Encode ``record`` with ``topic``'s schema and produce it (asynchronously).

        Raises:
            SchemaEncodeError: the record does not fit the schema (nothing is produced).
        """
        # The Kafka timestamp stays the produce time: event time lives in the record's ``ts``, and a
        # backfill's old event times would otherwise fall straight out of time-based retention.
        self.send_raw(topic, key, self.codec.encode(topic, record), on_delivery)

    def partitions(self, topic: str, timeout: float = 10.0) -> int:
        """The partition count of logical ``topic`` (asked once, then cached).

        Raises:
            BrokerError: the topic does not exist or the broker did not answer in time.
        """
        cached = self._partition_counts.get(topic)
        if cached is not None:
            return cached
        ids = require_partitions(self._producer, self.settings.topic(topic), timeout)
        count = self._partition_counts[topic] = len(ids)
        return count

    def poll(self, timeout: float = 0.0) -> int:
        if self._retired:
            self._poll_retired()
        return int(self._producer.poll(timeout))

    def pending(self) -> int:
        return len(self._producer) + sum(len(old) for old in self._retired)

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until every produced record is acknowledged.

        Raises:
            DeliveryError: records still unacknowledged after ``timeout`` (e.g. broker down), or
                records that failed delivery since the last flush.
        """
        deadline = time.monotonic() + timeout
        remaining = 0
        for client in [*self._retired, self._producer]:
            remaining += client.flush(max(0.0, deadline - time.monotonic()))
        self._poll_retired()
        with self._lock:
            failed, self.failed = self.failed, 0
        if remaining:
            raise DeliveryError(
                f"{remaining} records unacknowledged after {timeout:.1f}s "
                f"(broker {self.settings.bootstrap}: {self.last_error or 'no answer'})"
            )
        if failed:
            raise DeliveryError(f"{failed} records failed delivery: {self.last_error}")

    def close(self, timeout: float = 30.0) -> None:
        self.flush(timeout)

    def __enter__(self) -> EventProducer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self._producer.flush(5.0)
