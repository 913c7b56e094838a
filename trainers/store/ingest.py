"""Consumes the experiences topic into the replay store (and the allocation-periods topic into the
allocation store, :data:`PERIODS`), committing only what is durable.

Each poll batch is decoded and validated; bad records go to the dead-letter topic with a reason
(and that producer is flushed first), then the good rows and the next offsets are written to the
store in one transaction, and only then are the offsets committed to Kafka. The store's offsets
are authoritative: on start the consumer is assigned every partition at the offset the store
holds (or the beginning), so a crash anywhere in that sequence re-reads at most the last batch,
and the store's revision rules turn the re-read into duplicates that change nothing. Kafka
commits are kept for lag tooling.

Partitions are assigned, not subscribed: one trainer owns the topic and a group join would cost
seconds on the embedded broker (DESIGN.md section 3).
"""

from __future__ import annotations

import logging
import time
from collections import Counter as Tally
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from confluent_kafka import OFFSET_BEGINNING, KafkaException, Message, TopicPartition

from streams.clock import now_us
from streams.deadletter import STAGE_TRAINER_INGEST, DeadLetter
from streams.errors import SchemaDecodeError
from streams.kafka.consumer import EventConsumer
from streams.kafka.metadata import require_partitions
from streams.kafka.producer import EventProducer
from streams.settings import Settings
from streams.topics import ALLOCATION_PERIODS, DEAD_LETTER, EXPERIENCES
from trainers import metrics
from trainers.store.allocation import validate_period
from trainers.store.replay import validate_experience
from trainers.store.sqlite import WriteResult

__all__ = ["EXPERIENCES_SOURCE", "PERIODS", "IngestSource", "IngestTotals", "Ingestor", "Store"]


class Store(Protocol):
    """What the ingestor writes to: rows and their offsets in one durable transaction."""

    def offsets(self, topic: str) -> dict[int, int]: ...

    def write(
        self,
        records: Sequence[Mapping[str, Any]],
        offsets: Mapping[tuple[str, int], int] | None = None,
        rejected: Mapping[str, int] | None = None,
    ) -> WriteResult: ...


@dataclass(frozen=True, slots=True)
class IngestSource:
    """One ingested topic: its logical name, record check, and the counter of what happened."""

    topic: str
    validate: Callable[[Mapping[str, Any]], str | None]
    what: str  # names the records in dead-letter errors
    counter: Any  # a prometheus Counter with an ``outcome`` label
    lag: Any  # a prometheus Gauge of the messages not yet ingested


EXPERIENCES_SOURCE = IngestSource(
    EXPERIENCES, validate_experience, "experience", metrics.INGESTED, metrics.CONSUMER_LAG
)
PERIODS = IngestSource(
    ALLOCATION_PERIODS, validate_period, "allocation period", metrics.PERIODS_INGESTED, metrics.PERIODS_LAG
)

log = logging.getLogger(__name__)


@dataclass
class IngestTotals:
    """Running totals of what ingestion did."""

    messages: int = 0
    inserted: int = 0
    corrected: int = 0
    duplicates: int = 0
    censored: int = 0
    rejected: Tally[str] = field(default_factory=Tally)

    def add(self, other: IngestTotals) -> None:
        self.messages += other.messages
        self.inserted += other.inserted
        self.corrected += other.corrected
        self.duplicates += other.duplicates
        self.censored += other.censored
        self.rejected.update(other.rejected)


class Ingestor:
    """Experiences topic -> replay store (or another :class:`IngestSource` -> its store).

    Not thread-safe: use it from one thread.
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        component_id: str = "trainer",
        dead_letters: EventProducer | None = None,
        source: IngestSource = EXPERIENCES_SOURCE,
    ) -> None:
        self.settings = settings
        self.store = store
        self.component_id = component_id
        self.source = source
        self.topic = settings.topic(source.topic)
        self._consumer = EventConsumer(
            settings, settings.trainer.group_id, client_id=f"{component_id}-ingest-{source.topic}"
        )
        self._dead = dead_letters
        self._next: dict[int, int] = {}
        self.totals = IngestTotals()

    def start(self, timeout: float = 10.0) -> int:
        """Assign every partition at the store's offsets; returns the partition count.

        Raises:
            BrokerError: the experiences topic does not exist.
        """
        partitions = require_partitions(self._consumer.raw, self.topic, timeout)
        stored = self.store.offsets(self.topic)
        assignment = [TopicPartition(self.topic, p, stored.get(p, OFFSET_BEGINNING)) for p in partitions]
        self._consumer.raw.assign(assignment)
        self._next = {p: stored.get(p, 0) for p in partitions}
        if stored:
            # Bring Kafka's commits up to what the store holds (a crash may have left them behind).
            self._commit({(self.topic, p): o for p, o in stored.items()})
        log.info("ingesting %s from offsets %s", self.topic, self._next)
        return len(assignment)

    def _dead_letter(self, message: Message, reason: str, error: str) -> None:
        if self._dead is None:
            self._dead = EventProducer(self.settings, f"{self.component_id}-dead-letters")
        letter = DeadLetter.of(message, STAGE_TRAINER_INGEST, reason, error[:2000])
        self._dead.send(DEAD_LETTER, letter.key, letter.record(self.component_id, now_us()))

    def poll(self, max_messages: int = 5000, timeout: float = 0.5) -> IngestTotals:
        """Ingest one batch; returns what it did (all zero when nothing arrived)."""
        messages = self._consumer.poll_batch(max_messages, timeout)
        batch = IngestTotals(messages=len(messages))
        if not messages:
            return batch
        records: list[dict[str, Any]] = []
        offsets: dict[tuple[str, int], int] = {}
        for message in messages:
            offsets[(self.topic, int(message.partition() or 0))] = int(message.offset() or 0) + 1
            try:
                record = self._consumer.decode(message)
            except SchemaDecodeError as exc:
                batch.rejected[exc.reason] += 1
                self._dead_letter(message, exc.reason, str(exc))
                continue
            reason = self.source.validate(record)
            if reason is not None:
                batch.rejected[reason] += 1
                self._dead_letter(message, reason, f"{self.source.what} {message.key()!r} rejected: {reason}")
                continue
            records.append(record)
        if self._dead is not None and batch.rejected:
            self._dead.flush(30.0)  # dead letters must be durable before their offsets are
        result = self.store.write(records, offsets, dict(batch.rejected))
        for (_, partition), offset in offsets.items():
            self._next[partition] = max(self._next.get(partition, 0), offset)
        self._commit(offsets)
        batch.inserted, batch.corrected = result.inserted, result.corrected
        batch.duplicates, batch.censored = result.duplicates, result.censored
        self.totals.add(batch)
        self._count(batch)
        return batch

    def _commit(self, offsets: dict[tuple[str, int], int]) -> None:
        try:
            self._consumer.commit_offsets([TopicPartition(t, p, o) for (t, p), o in offsets.items()])
        except KafkaException as exc:
            # The store already holds these offsets durably; a failed commit only delays lag tooling.
            log.warning("offset commit failed (the store keeps the offsets): %s", exc)

    def _count(self, batch: IngestTotals) -> None:
        counter = self.source.counter
        counter.labels(outcome="inserted").inc(batch.inserted - batch.censored)
        counter.labels(outcome="censored").inc(batch.censored)
        counter.labels(outcome="corrected").inc(batch.corrected)
        counter.labels(outcome="duplicate").inc(batch.duplicates)
        counter.labels(outcome="rejected").inc(sum(batch.rejected.values()))

    def lag(self, timeout: float = 5.0) -> int:
        """Messages on the topic not yet ingested.

        The high watermark is the larger of the one the last fetch response carried (exact) and a
        ListOffsets query: Tansu 0.6 answers ListOffsets(latest) with the last *batch's* base
        offset + 1, which is too low when a batch holds several records (see docs/trainer.md).
        """
        total = 0
        for partition, position in self._next.items():
            tp = TopicPartition(self.topic, partition)
            _low, fetched = self._consumer.raw.get_watermark_offsets(tp, cached=True)
            _low, listed = self._consumer.raw.get_watermark_offsets(tp, timeout=timeout, cached=False)
            total += max(0, max(fetched, listed) - position)
        self.source.lag.set(total)
        return total

    def drain(self, deadline: float = 600.0) -> IngestTotals:
        """Ingest until caught up: a poll returned nothing and no lag is left (or ``deadline`` s)."""
        done = IngestTotals()
        stop = time.monotonic() + deadline
        while time.monotonic() < stop:
            batch = self.poll(timeout=1.0)
            done.add(batch)
            if batch.messages == 0 and self.lag() == 0:
                break
        return done

    def close(self) -> None:
        self._consumer.close()
        if self._dead is not None:
            self._dead.flush(10.0)
