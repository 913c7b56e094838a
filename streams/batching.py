"""The engine side of batch records: collect events per partition, produce one record per batch.

:class:`EventBatcher` keeps one open batch per (topic, partition) (the partition Kafka's default
partitioner gives the event's key, :mod:`streams.kafka.partitioning`) and produces it as a batch record
(:mod:`streams.avro.batches`) once ``max_events`` wait or the oldest has waited ``linger_ms``. Each
event is checked against its schema when it is added, so a bad event fails in the caller's
:meth:`~EventBatcher.add`, never later inside a batch. Delivery is tracked per event: a batch that
fails delivery counts all its events as failed, and :meth:`EventBatcher.flush` raises for them.
Batches leave in the order they were closed, whichever thread closed them (the caller's for a full
batch, the linger thread's for an old one), so a partition's events keep the order they were added.

Example:
    >>> check = RecordCheck("trades")
    >>> check.problem({"event_id": "a", "ts": 1, "symbol": "X", "price": 1.0, "size": 1.0, "side": "BUY"})
    >>> check.problem({"event_id": "a", "ts": 1, "symbol": "X", "price": "1", "size": 1.0, "side": "BUY"})
    "field 'price': expected double, got str"
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, Message

from streams.avro.batches import to_columns
from streams.avro.schemas import SchemaRegistry
from streams.config.batching import BatchingSettings
from streams.errors import DeliveryError, SchemaEncodeError
from streams.kafka.partitioning import KeyPartitioner
from streams.kafka.producer import EventProducer

__all__ = ["EventBatcher", "RecordCheck"]

log = logging.getLogger(__name__)

Check = Callable[[Any], bool]
_PRIMITIVE: dict[str, Check] = {
    "string": lambda v: type(v) is str,
    "int": lambda v: type(v) is int,
    "long": lambda v: type(v) is int,
    "double": lambda v: type(v) is float or type(v) is int,
    "float": lambda v: type(v) is float or type(v) is int,
    "boolean": lambda v: type(v) is bool,
    "null": lambda v: v is None,
}


def _compile(schema: Any) -> tuple[Check, str]:
    """A fast type check of one value and the type's name, for the types the input schemas use."""
    if isinstance(schema, str):
        return _PRIMITIVE[schema], schema
    if isinstance(schema, list):
        parts = [_compile(s) for s in schema]
        return (lambda v: any(check(v) for check, _ in parts)), " or ".join(name for _, name in parts)
    kind = schema["type"]
    if kind == "enum":
        symbols = frozenset(schema["symbols"])
        return (lambda v: v in symbols if type(v) is str else False), f"one of {sorted(symbols)}"
    if kind == "map":
        values, name = _compile(schema["values"])
        return (
            lambda v: type(v) is dict and all(type(k) is str and values(x) for k, x in v.items())
        ), f"map of {name}"
    if isinstance(kind, str) and kind in _PRIMITIVE:  # {"type": "long", "logicalType": ...}
        return _PRIMITIVE[kind], kind
    raise SchemaEncodeError(str(schema), f"no fast check for type {kind!r}")


class RecordCheck:
    """Checks a single-event record of ``topic`` field by field, as the encoder would see it."""

    def __init__(self, topic: str) -> None:
        schema = SchemaRegistry.default().for_topic(topic).json
        self.topic = topic
        self.fields = [(f["name"], "default" in f, *_compile(f["type"])) for f in schema["fields"]]

    def problem(self, record: Mapping[str, Any]) -> str | None:
        """What is wrong with ``record``, or None when it encodes."""
        for name, has_default, check, type_name in self.fields:
            if name not in record:
                if has_default:
                    continue
                return f"field {name!r} is missing"
            value = record[name]
            if not check(value):
                return f"field {name!r}: expected {type_name}, got {type(value).__name__}"
        return None


@dataclass(slots=True)
class _Open:
    key: str
    since: float
    rows: list[Mapping[str, Any]] = field(default_factory=list)


class EventBatcher:
    """Batches events per (topic, partition) into batch records on ``producer``.

    Args:
        producer: where batch records go (its delivery reports are counted per event here).
        settings: linger and size; with ``enabled`` false every event is one single record.
        partitions: the partition count of a logical topic (the topics are co-partitioned).
    """

    def __init__(
        self, producer: EventProducer, settings: BatchingSettings, partitions: Callable[[str], int]
    ) -> None:
        self.producer = producer
        self.settings = settings
        self._partitions = partitions
        self._partitioners: dict[str, KeyPartitioner] = {}
        self._checks: dict[str, RecordCheck] = {}
        self._open: dict[tuple[str, int], _Open] = {}
        self._lock = threading.Lock()
        # Closed batches wait here in the order they were closed and leave in that order: the caller
        # (a full batch) and the linger thread (an old one) both close batches, and a batch encoded
        # by one must not be overtaken by a later batch of the same partition sent by the other.
        self._closed: deque[tuple[str, int, _Open]] = deque()
        self._send_lock = threading.Lock()
        self._linger = settings.linger_ms / 1000.0
        self.events_sent = 0
        self.events_acked = 0
        self.events_failed = 0
        self.records_sent = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _check(self, topic: str) -> RecordCheck:
        found = self._checks.get(topic)
        if found is None:
            found = self._checks[topic] = RecordCheck(topic)
        return found

    def _partitioner(self, topic: str) -> KeyPartitioner:
        found = self._partitioners.get(topic)
        if found is None:
            found = self._partitioners[topic] = KeyPartitioner(self._partitions(topic))
        return found

    def add(self, topic: str, key: str, record: Mapping[str, Any]) -> None:
        """Queue one event of ``topic`` with ``key`` (its symbol).

        Raises:
            SchemaEncodeError: the record does not fit the topic's schema (nothing is queued).
        """
        problem = self._check(topic).problem(record)
        if problem is not None:
            raise SchemaEncodeError(topic, problem)
        if not self.settings.enabled:
            self.producer.send(topic, key, record, self._on_delivery(1))
            self.events_sent += 1
            return
        partition = self._partitioner(topic)(key)
        full = False
        with self._lock:
            slot = (topic, partition)
            batch = self._open.get(slot)
            if batch is None:
                batch = self._open[slot] = _Open(key, time.monotonic())
            batch.rows.append(record)
            if len(batch.rows) >= self.settings.max_events:
                self._closed.append((topic, partition, self._open.pop(slot)))
                full = True
        if full:
            self._send_closed(raise_errors=True)
        else:
            self._ensure_thread()

    def _send_closed(self, raise_errors: bool = False) -> int:
        """Produce the closed batches in the order they were closed; returns how many this call sent.

        A batch that cannot be produced counts its events as failed (the next :meth:`flush` raises);
        with ``raise_errors`` the error also reaches the caller, after the other batches were sent.
        """
        sent, error = 0, None
        with self._send_lock:
            while True:
                with self._lock:
                    if not self._closed:
                        break
                    topic, partition, batch = self._closed.popleft()
                try:
                    self._produce(topic, partition, batch)
                    sent += 1
                except Exception as exc:  # counted, so the caller's next flush() raises for these events
                    self.events_failed += len(batch.rows)
                    log.exception("cannot produce a batch of %d %s events", len(batch.rows), topic)
                    error = error or exc
        if raise_errors and error is not None:
            raise error
        return sent

    def _produce(self, topic: str, partition: int, batch: _Open) -> None:
        value = self.producer.codec.encode_batch(topic, to_columns(topic, batch.rows))
        n = len(batch.rows)
        self.producer.send_raw(topic, batch.key, value, self._on_delivery(n), partition=partition)
        self.events_sent += n
        self.records_sent += 1

    def _on_delivery(self, events: int) -> Callable[[KafkaError | None, Message], None]:
        def done(error: KafkaError | None, message: Message) -> None:
            if error is None:
                self.events_acked += events
            else:
                self.events_failed += events

        return done

    def flush_due(self, now: float | None = None) -> int:
        """Produce every batch whose oldest event waited ``linger_ms``; returns how many."""
        now = time.monotonic() if now is None else now
        with self._lock:
            due = [slot for slot, b in self._open.items() if now - b.since >= self._linger]
            self._closed.extend(
                (topic, partition, self._open.pop((topic, partition))) for topic, partition in due
            )
        self._send_closed()
        return len(due)

    def pending_events(self) -> int:
        with self._lock:
            return sum(len(b.rows) for b in self._open.values()) + sum(
                len(b.rows) for _, _, b in self._closed
            )

    def flush(self, timeout: float = 30.0) -> None:
        """Produce every open batch and wait until every event is acknowledged.

        Raises:
            DeliveryError: events unacknowledged after ``timeout`` or failed since the last flush.
        """
        self.flush_due(now=float("inf"))
        failed_before = self.events_failed
        try:
            self.producer.flush(timeout)
        except DeliveryError as exc:
            raise DeliveryError(f"{exc} ({self.events_failed} events failed in all)") from exc
        if self.events_failed > failed_before:
            raise DeliveryError(f"{self.events_failed - failed_before} events failed delivery")

    def _ensure_thread(self) -> None:
        if self._thread is None and self._linger > 0:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="sdk-batcher", daemon=True)
                    self._thread.start()
        elif self._linger == 0:
            self.flush_due()

    def _run(self) -> None:
        """Produce batches whose linger expired, and serve delivery reports, until closed."""
        while not self._stop.wait(self._linger / 2):
            self.flush_due()
            self.producer.poll(0)

    def close(self, timeout: float = 30.0) -> None:
        """Stop the linger thread and flush (raises :class:`DeliveryError` like :meth:`flush`)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
        self.flush(timeout)
