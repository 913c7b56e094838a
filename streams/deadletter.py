"""Dead letters are data: an input a component could not use, kept with its bytes and a reason.

The one builder of ``DeadLetter`` records, used by the stream worker, the serving core (inference
workers and the engine's sizer) and the trainer's ingest. Ids are derived from where the input was
(topic, partition, offset, batch index) and why it failed, so a copy sent again after a crash is
the same record.

Example:
    >>> letter = DeadLetter("validate", "t.trades", 0, 7, b"BTC", b"...", "non_positive_price", "price -1.0")
    >>> record = letter.record("worker-1", now=1_700_000_000_000_000)
    >>> record["reason"], record["offset"]
    ('non_positive_price', 7)
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Final

from confluent_kafka import Message

__all__ = [
    "DEAD_LETTER_NAMESPACE",
    "STAGE_DECODE",
    "STAGE_DEDUP",
    "STAGE_INFERENCE",
    "STAGE_JOIN",
    "STAGE_TRAINER_INGEST",
    "STAGE_VALIDATE",
    "DeadLetter",
]

# Where an input was rejected (DeadLetter.stage).
STAGE_DECODE: Final = "decode"  # the stream worker could not decode it
STAGE_VALIDATE: Final = "validate"  # decoded, but a field is out of range or inconsistent
STAGE_DEDUP: Final = "dedup"  # the same event id again
STAGE_JOIN: Final = "join"  # the join's verdict: duplicate signal or outcome, orphan outcome
STAGE_INFERENCE: Final = "inference"  # a serving process could not read a record it follows
STAGE_TRAINER_INGEST: Final = "trainer-ingest"  # the trainer's ingest rejected an experience or period

# uuid5 namespace of dead-letter event ids: the same rejected offset always gets the same id.
DEAD_LETTER_NAMESPACE: Final = uuid.UUID("5b0c3a52-7f0e-4a53-9a0c-0d1e64b5e1a1")


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One rejected input: where it came from, the original bytes and a machine-readable reason.

    Attributes:
        stage: one of the ``STAGE_*`` constants.
        topic: the full source topic name.
        partition: source partition.
        offset: source offset.
        key: original key bytes.
        raw: original value bytes, unchanged; for one event of a batch record, that event alone
            encoded with its single-event schema.
        reason: machine-readable code, e.g. ``non_finite`` or ``duplicate``.
        error: human-readable detail.
        batch_index: the event's index in its batch record; None for a whole record.
    """

    stage: str
    topic: str
    partition: int
    offset: int
    key: bytes | None
    raw: bytes
    reason: str
    error: str
    batch_index: int | None = None

    @classmethod
    def of(cls, message: Message, stage: str, reason: str, error: str, raw: bytes | None = None) -> DeadLetter:
        """The dead letter of a consumed confluent-kafka ``message`` (its value unless ``raw``)."""
        value = raw if raw is not None else (message.value() or b"")
        return cls(stage, message.topic() or "", message.partition() or 0, message.offset() or 0, message.key(),
                   value, reason, error)  # fmt: skip

    def record(self, component: str, now: int) -> dict[str, Any]:
        """The DeadLetter Avro record; ``now`` (microseconds) is when it was rejected."""
        where = f"{self.offset}" if self.batch_index is None else f"{self.offset}[{self.batch_index}]"
        name = f"{self.topic}/{self.partition}/{where}/{self.stage}/{self.reason}"
        return {
            "event_id": uuid.uuid5(DEAD_LETTER_NAMESPACE, name).hex,
            "ts": now,
            "stage": self.stage,
            "component": component,
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "key": self.key,
            "raw": self.raw,
            "reason": self.reason,
            "error": self.error,
            "batch_index": self.batch_index,
        }
