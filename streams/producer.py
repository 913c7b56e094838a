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

from confluent_kafka import KafkaError, Message, Producer

from streams.codec import Codec
from streams.errors import DeliveryError
from streams.kafka import producer_config
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
        overrides = {"error_cb": self._on_error, **(config or {})}
        self._producer = Producer(producer_config(settings, client_id, **overrides))
        self._lock = threading.Lock()
        self.delivered = 0
        self.failed = 0
        self.last_error: str | None = None
        self.broker_down_since: float | None = None

    def _on_error(self, error: KafkaError) -> None:
        # _ALL_BROKERS_DOWN and _TRANSPORT are how librdkafka reports an outage; keep it visible.
        self.last_error = str(error)
        if error.code() in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT):
            if self.broker_down_since is None:
                self.broker_down_since = time.monotonic()
                log.warning("broker unreachable: %s", error)
        else:
            log.warning("producer error: %s", error)

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        with self._lock:
            if error is None:
                self.delivered += 1
                self.broker_down_since = None
            else:
                self.failed += 1
                self.last_error = str(error)
                log.error("delivery to %s failed: %s", message.topic(), error)

    def send_raw(
        self,
        topic: str,
        key: str | bytes | None,
        value: bytes,
        on_delivery: DeliveryCallback | None = None,
        timestamp_ms: int | None = None,
    ) -> None:
        """Produce already-encoded bytes to logical ``topic``; waits while the local queue is full."""
        callback = self._on_delivery
        if on_delivery is not None:
            user = on_delivery

            def callback(error: KafkaError | None, message: Message) -> None:
                self._on_delivery(error, message)
                user(error, message)

        kwargs: dict[str, Any] = {"key": key, "value": value, "on_delivery": callback}
        if timestamp_ms is not None:
            kwargs["timestamp"] = timestamp_ms
        full = self.settings.topic(topic)
        while True:
            try:
                self._producer.produce(full, **kwargs)
                break
            except BufferError:
                self._producer.poll(0.05)
        self._producer.poll(0)

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

    def poll(self, timeout: float = 0.0) -> int:
        return int(self._producer.poll(timeout))

    def pending(self) -> int:
        return len(self._producer)

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until every produced record is acknowledged.

        Raises:
            DeliveryError: records still unacknowledged after ``timeout`` (e.g. broker down), or
                records that failed delivery since the last flush.
        """
        remaining = self._producer.flush(timeout)
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
