"""Following the control and model-updates topics, and the helpers a serving process reads with.

Every serving process (each inference worker, each engine's in-process sizer) reads without a
consumer group: each sees everything. The control reader replays the control and model-updates
topics from the beginning: at start it catches up on the history in event-time order (so a freeze
issued before a model update holds that update back), then loads the newest good record per model
and role at once, without a canary (a shadow only if no later SERVE record promoted its version,
none if the newest good shadow record is a clear); after that every record applies live.
:meth:`streams.serving.core.ServingCore.follow_control` runs it.

Example:
    >>> reader = ControlReader(consumer, store, control, dead_letters, metrics, on_change=print)  # doctest: +SKIP
    >>> reader.catch_up(timeout=30.0)                                                               # doctest: +SKIP
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from confluent_kafka import Message, TopicPartition

from streams.clock import now_us
from streams.deadletter import STAGE_INFERENCE, DeadLetter
from streams.errors import SchemaDecodeError
from streams.kafka.consumer import EventConsumer
from streams.kafka.metadata import require_partitions
from streams.kafka.producer import DeliveryCallback, EventProducer
from streams.serving.constants import SERVE, SHADOW
from streams.serving.control import FREEZE_UPDATES, UNFREEZE_UPDATES, ControlState
from streams.serving.metrics import WorkerMetrics
from streams.serving.model_store import Applied, ModelStore
from streams.serving.updates import is_clear
from streams.topics import CONTROL, DEAD_LETTER, MODEL_UPDATES

__all__ = [
    "ControlReader",
    "DeadLetters",
    "apply_history",
    "assign_tail",
    "end_offsets",
    "replay_history",
]

log = logging.getLogger(__name__)


class DeadLetters:
    """Sends undecodable records to the dead-letter topic with their bytes and reason."""

    def __init__(self, producer: EventProducer, worker_id: str, metrics: WorkerMetrics) -> None:
        self.producer = producer
        self.worker_id = worker_id
        self.metrics = metrics

    def send(
        self, message: Message, error: SchemaDecodeError, on_delivery: DeliveryCallback | None = None
    ) -> None:
        letter = DeadLetter.of(message, STAGE_INFERENCE, error.reason, str(error), raw=error.raw)
        self.producer.send(DEAD_LETTER, letter.key, letter.record(self.worker_id, now_us()), on_delivery)
        self.metrics.dead_letter(error.reason)
        log.warning(
            "dead letter from %s[%s]@%s: %s", message.topic(), message.partition(), message.offset(), error
        )


def end_offsets(
    consumer: EventConsumer, topics: Iterable[str], timeout: float = 10.0
) -> dict[tuple[str, int], int]:
    """The high watermark of every partition of the logical ``topics``, keyed by (full topic, partition)."""
    raw = consumer.raw
    ends = {}
    for topic in topics:
        full = consumer.settings.topic(topic)
        for p in require_partitions(raw, full, timeout):
            ends[(full, p)] = raw.get_watermark_offsets(TopicPartition(full, p), timeout=timeout)[1]
    return ends


def assign_tail(consumer: EventConsumer, tails: Mapping[str, int | None], timeout: float = 10.0) -> None:
    """Assign every partition of each logical topic at ``tail`` records before its end (None: the end)."""
    assignment = []
    raw = consumer.raw
    for topic, tail in tails.items():
        full = consumer.settings.topic(topic)
        for p in require_partitions(raw, full, timeout):
            low, high = raw.get_watermark_offsets(TopicPartition(full, p), timeout=timeout)
            start = high if tail is None else max(low, high - tail)
            assignment.append(TopicPartition(full, p, start))
    raw.assign(assignment)


def replay_history(
    history: list[tuple[str, dict[str, Any]]], control: ControlState
) -> tuple[list[list[dict[str, Any]]], list[dict[str, Any]]]:
    """Replay control commands and model updates in event-time order.

    Applies the control commands to ``control`` and returns, per (model, role), the updates to try
    newest first (SERVE roles first, so a shadow of the version that ends up serving is recognised
    as such), and the updates still held by a freeze. A shadow record whose version a later SERVE
    record promoted is dropped with every shadow record before it: live, that SERVE update ended
    the shadow.
    """
    history = sorted(history, key=lambda item: item[1]["ts"])
    pending: dict[tuple[str, str], list[dict[str, Any]]] = {}
    held: dict[tuple[str, str], dict[str, Any]] = {}
    for topic, record in history:
        if topic == CONTROL:
            control.apply(record)
            if record["command"] == UNFREEZE_UPDATES and not control.frozen:
                for key, update in held.items():
                    pending.setdefault(key, []).append(update)
                held.clear()
            continue
        key = (record["model_name"], record["role"])
        if control.frozen:
            held[key] = record
        else:
            pending.setdefault(key, []).append(record)
    candidates = []
    for (model, role), records in sorted(pending.items(), key=lambda item: item[0][1] != SERVE):
        if role == SHADOW:
            served: dict[str, int] = {}
            for update in pending.get((model, SERVE), []):
                if not is_clear(update):
                    served[update["version"]] = max(served.get(update["version"], 0), update["ts"])
            promoted = [
                i
                for i, r in enumerate(records)
                if not is_clear(r) and served.get(r["version"], -1) >= r["ts"]
            ]
            if promoted:  # that shadow replaced the ones before it, and then ended
                records = records[promoted[-1] + 1 :]
        candidates.append(list(reversed(records)))
    return candidates, list(held.values())


def apply_history(
    history: list[tuple[str, dict[str, Any]]], store: ModelStore, control: ControlState
) -> None:
    """Load what the history leaves: the newest good record per model and role, without a canary."""
    candidates, held = replay_history(history, control)
    for records in candidates:
        # A valid clear record is good too: the role stays empty.
        for record in records:
            if store.apply(record, live=False).kind != "rejected":
                break
    for record in held:
        store.hold(record)


class ControlReader:
    """Applies control commands and model updates to one worker's state."""

    def __init__(
        self,
        consumer: EventConsumer,
        store: ModelStore,
        control: ControlState,
        dead_letters: DeadLetters | None,
        metrics: WorkerMetrics,
        on_change: Callable[[], None],
    ) -> None:
        self.consumer = consumer
        self.store = store
        self.control = control
        self.dead_letters = dead_letters
        self.metrics = metrics
        self.on_change = on_change

    def _decode(self, message: Message) -> tuple[str, dict[str, Any]] | None:
        topic = self.consumer.logical(message.topic() or "")
        try:
            return topic, self.consumer.decode(message)
        except SchemaDecodeError as exc:
            if self.dead_letters is not None:
                self.dead_letters.send(message, exc)
            if topic == MODEL_UPDATES:
                key = message.key()
                self.metrics.rejected(key.decode(errors="replace") if key else "", "bad_record")
            return None

    def catch_up(self, timeout: float) -> None:
        """Read the history up to its current end; apply it in event-time order, newest good model first."""
        ends = end_offsets(self.consumer, [CONTROL, MODEL_UPDATES])
        seen: dict[tuple[str, int], int] = {}
        history: list[tuple[str, dict[str, Any]]] = []
        deadline = time.monotonic() + timeout
        while any(seen.get(tp, 0) < end for tp, end in ends.items()):
            if time.monotonic() > deadline:
                log.warning("history not fully read within %.0fs; continuing live", timeout)
                break
            for message in self.consumer.poll_batch(1000, 0.1):
                seen[(message.topic() or "", message.partition() or 0)] = (message.offset() or 0) + 1
                decoded = self._decode(message)
                if decoded is not None:
                    history.append(decoded)
        apply_history(history, self.store, self.control)
        self.metrics.control(self.control.frozen, self.control.kill_switch)
        log.info("caught up on %d control and model records: %s", len(history), self.store.info())

    def poll(self, timeout: float) -> None:
        """Apply what arrived live."""
        for message in self.consumer.poll_batch(100, timeout):
            decoded = self._decode(message)
            if decoded is None:
                continue
            topic, record = decoded
            if topic == CONTROL:
                self._control(record)
            else:
                self._update(record)

    def _control(self, record: Mapping[str, Any]) -> None:
        if not self.control.apply(record):
            return
        self.metrics.control(self.control.frozen, self.control.kill_switch)
        if record["command"] == UNFREEZE_UPDATES and self.store.held:
            for applied in self.store.release_held():
                log.info("released held update: %s", applied)
        elif record["command"] == FREEZE_UPDATES:
            log.warning("model updates frozen; new updates are held until UNFREEZE_UPDATES")
        self.on_change()

    def _update(self, record: Mapping[str, Any]) -> None:
        if self.control.frozen:
            self.store.hold(record)
            log.info("held %s:%s (updates frozen)", record["model_name"], record["version"])
            return
        applied: Applied = self.store.apply(record, live=True)
        if applied.changed:
            self.on_change()
