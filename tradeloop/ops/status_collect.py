"""Reads an :class:`~tradeloop.ops.status_model.Observation` from Kafka: the I/O half of ``tradeloop status``.

Everything comes from the bus, so status works from any machine that reaches the brokers:
heartbeats and dead letters from the newest records of their topics, published models from the
model-updates topic, end offsets and each consumer group's committed offsets (offsets, not
timestamps: Tansu's ListOffsets by timestamp is unreliable, DESIGN.md section 3).

Example:
    >>> with BusReader(settings) as bus:                              # doctest: +SKIP
    ...     status = evaluate(bus.observe(window=3.0), limits)
"""

from __future__ import annotations

import hmac
import json
import logging
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from streams.config.health import HealthSettings
from streams.errors import BrokerError, ConfigError, SchemaDecodeError
from streams.kafka.config import consumer_config
from streams.kafka.consumer import EventConsumer
from streams.kafka.offsets import OffsetReader
from streams.settings import Settings
from streams.topics import (
    ALL_TOPICS,
    DEAD_LETTER,
    EXPERIENCES,
    HEARTBEATS,
    MODEL_UPDATES,
    SIZING_REQUESTS,
)
from tradeloop.ops.status_model import (
    INPUT_TOPICS,
    Beat,
    ConsumerGroup,
    DeadLetterCounts,
    GroupOffsets,
    Observation,
    OffsetSample,
    PublishedModel,
)

__all__ = [
    "DEV_SIGNING_KEY_WARNING",
    "BusReader",
    "BusState",
    "consumer_groups",
    "disk_free_ratio",
    "health_settings",
    "settings_warnings",
]

log = logging.getLogger(__name__)

_STATUS_GROUP = "tradeloop-status"  # never joined: only a name for the client's offset requests

DEV_SIGNING_KEY_WARNING = (
    "models are signed with the built-in development key, which anyone can read: set "
    "TRADELOOP_MODEL_SIGNING_KEY (setting model_signing_key) or TRADELOOP_MODEL_SIGNING_KEY_FILE "
    "(model_signing_key_file) to a secret of your own on every trainer and inference worker"
)


def health_settings(settings: Settings) -> HealthSettings:
    """The ``health`` section of the settings."""
    return settings.health


def consumer_groups(settings: Settings) -> tuple[ConsumerGroup, ...]:
    """The consumer groups tradeloop's components run, with the topics each one commits."""
    # The inference workers derive their group from the prefix when none is set (agents/inference).
    inference = settings.inference.group_id or f"{settings.topic_prefix}inference"
    return (
        ConsumerGroup(settings.agents.app_id, "worker", tuple(INPUT_TOPICS)),
        ConsumerGroup(settings.trainer.group_id, "trainer", (EXPERIENCES,)),
        ConsumerGroup(inference, "inference", (SIZING_REQUESTS,)),
    )


def settings_warnings(settings: Settings) -> tuple[str, ...]:
    """Warnings about the configuration itself, for ``tradeloop status`` and ``tradeloop up``.

    Flags the development signing key, whether by default or set explicitly to the same value.
    The messages name settings, never a key.
    """
    try:
        key = settings.signing_key()
    except ConfigError as exc:  # an unreadable or empty key file; the message names no key
        return (f"models can be neither signed nor verified: {exc}",)
    unset = {"model_signing_key": None, "model_signing_key_file": None}
    dev_key = settings.model_copy(update=unset).signing_key()
    if settings.uses_dev_signing_key or hmac.compare_digest(key, dev_key):
        return (DEV_SIGNING_KEY_WARNING,)
    return ()


def disk_free_ratio(settings: Settings) -> float | None:
    """Free share of the disk holding the data directory; None when it is not on this host."""
    path = settings.data_dir
    if not path.exists():
        return None
    usage = shutil.disk_usage(path)
    return usage.free / usage.total if usage.total else None


class BusState:
    """What the newest records of the status topics say (everything but offsets)."""

    def __init__(self) -> None:
        self.beats: dict[str, Beat] = {}
        self.dead_reasons: Counter[str] = Counter()
        self.dead_stages: Counter[str] = Counter()
        self.dead_window = 0
        self.models: list[tuple[int, int, PublishedModel]] = []  # (partition, offset, model)
        self.newest_input: float | None = None
        self.unreadable: Counter[str] = Counter()

    def add(self, topic: str, message: Message, decode: Callable[[Message], dict[str, Any]]) -> None:
        if topic in INPUT_TOPICS:
            kind, ms = message.timestamp()
            if kind != 0 and ms > 0:  # 0 = TIMESTAMP_NOT_AVAILABLE
                self.newest_input = max(self.newest_input or 0.0, ms / 1000)
            return
        try:
            record = decode(message)
        except SchemaDecodeError as exc:
            self.unreadable[topic] += 1
            log.debug("unreadable %s record at %s: %s", topic, message.offset(), exc)
            return
        if topic == HEARTBEATS:
            beat = Beat.from_record(record)
            known = self.beats.get(beat.component_id)
            if known is None or beat.ts >= known.ts:
                self.beats[beat.component_id] = beat
        elif topic == DEAD_LETTER:
            self.dead_window += 1
            self.dead_reasons[str(record["reason"])] += 1
            self.dead_stages[str(record["stage"])] += 1
        elif topic == MODEL_UPDATES:
            if record.get("role", "SERVE") != "SERVE" or record.get("reason") == "clear":
                return  # shadows and their clear records are not the newest *published* model
            created = _created(record.get("manifest_json", ""))
            model = PublishedModel(
                str(record["model_name"]),
                str(record["version"]),
                created,
                int(record["ts"]) / 1e6,
                str(record.get("reason", "")),
            )
            self.models.append((message.partition() or 0, message.offset() or 0, model))

    def dead_letters(self, total: int) -> DeadLetterCounts:
        return DeadLetterCounts(total, self.dead_window, dict(self.dead_reasons), dict(self.dead_stages))

    def published(self) -> tuple[PublishedModel, ...]:
        """Published models oldest first (by publication time, then position)."""
        return tuple(m for _p, _o, m in sorted(self.models, key=lambda x: (x[2].published, x[0], x[1])))


def _created(manifest_json: str) -> float | None:
    try:
        created = json.loads(manifest_json).get("created_us")
    except (json.JSONDecodeError, AttributeError):
        return None
    return created / 1e6 if isinstance(created, int | float) else None


class BusReader:
    """Reads offsets, committed offsets and the status topics; keeps its clients between calls."""

    def __init__(
        self,
        settings: Settings,
        groups: Iterable[ConsumerGroup] | None = None,
        limits: HealthSettings | None = None,
        timeout: float = 5.0,
    ) -> None:
        self.settings = settings
        self.groups = tuple(groups if groups is not None else consumer_groups(settings))
        self.limits = limits or health_settings(settings)
        self.timeout = timeout
        self._offsets = OffsetReader(settings)
        self._reader = EventConsumer(settings, _STATUS_GROUP, "tradeloop-status")
        self._probes: dict[str, Consumer] = {}
        self._ends: Consumer | None = None
        self._models: list[tuple[int, int, PublishedModel]] = []  # (partition, offset, model) read so far
        self._model_next: dict[int, int] = {}

    def _probe(self, group: str) -> Consumer:
        probe = self._probes.get(group)
        if probe is None:
            probe = Consumer(consumer_config(self.settings, group, "tradeloop-status"))
            self._probes[group] = probe
        return probe

    def sample(self) -> OffsetSample:
        """End offsets of every topic and lag and committed offsets of every group, now.

        Raises:
            BrokerError: the broker cannot be reached.
        """
        ends = self._fetched_ends(
            {spec.name: self._offsets.end_offsets(spec.name, self.timeout) for spec in ALL_TOPICS}
        )
        groups = {}
        for group in self.groups:
            wanted = [
                TopicPartition(self.settings.topic(t), p) for t in group.topics for p in ends.get(t, {})
            ]
            if not wanted:
                continue
            try:
                committed = self._probe(group.name).committed(wanted, timeout=self.timeout)
            except KafkaException as exc:
                raise BrokerError(f"cannot read committed offsets of {group.name}: {exc.args[0]}") from exc
            lag: dict[str, int] = {}
            sums: dict[str, int] = {}
            for tp in committed:
                topic = tp.topic.removeprefix(self.settings.topic_prefix)
                end = ends[topic][tp.partition]
                lag[topic] = lag.get(topic, 0) + max(0, end - max(tp.offset, 0))
                if tp.offset >= 0:
                    sums[topic] = sums.get(topic, 0) + tp.offset
            groups[group.name] = GroupOffsets(lag, sums)
        totals = {topic: sum(parts.values()) for topic, parts in ends.items()}
        return OffsetSample(time.time(), totals, groups)

    def _fetched_ends(self, listed: dict[str, dict[int, int]]) -> dict[str, dict[int, int]]:
        """End offsets corrected by the high watermark of a fetch from the last listed batch.

        Tansu answers ListOffsets(latest) with the base offset of the last record batch plus one,
        so a batch of many records looks like one; its Fetch responses carry the true high
        watermark (tests/integration/test_status_offsets.py shows both). On Kafka both agree and
        this costs one small fetch per non-empty partition.
        """
        start = [
            TopicPartition(self.settings.topic(topic), partition, high - 1)
            for topic, parts in listed.items()
            for partition, high in parts.items()
            if high > 0
        ]
        if not start:
            return listed
        probe = self._end_probe()
        probe.assign(start)
        pending = {(tp.topic, tp.partition) for tp in start}
        deadline = time.monotonic() + self.timeout
        try:
            while pending and time.monotonic() < deadline:
                for message in probe.consume(1000, 0.1):
                    error = message.error()
                    if error is None or error.code() == KafkaError._PARTITION_EOF:
                        pending.discard((message.topic() or "", message.partition() or 0))
            ends = {topic: dict(parts) for topic, parts in listed.items()}
            for tp in start:
                if (tp.topic, tp.partition) in pending:
                    continue  # no answer in time: keep the listed offset
                _low, high = probe.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), cached=True)
                topic = tp.topic.removeprefix(self.settings.topic_prefix)
                ends[topic][tp.partition] = max(ends[topic][tp.partition], int(high))
        finally:
            probe.unassign()
        return ends

    def _end_probe(self) -> Consumer:
        if self._ends is None:
            config = consumer_config(self.settings, _STATUS_GROUP, "tradeloop-status-ends")
            # Only the high watermark of the fetch response matters: fetch one batch, prefetch nothing.
            config.update(
                {
                    "enable.partition.eof": True,
                    "fetch.wait.max.ms": 10,
                    "max.partition.fetch.bytes": 1,
                    "queued.min.messages": 1,
                    "queued.max.messages.kbytes": 64,
                }
            )
            self._ends = Consumer(config)
        return self._ends

    def read_state(self, deadline_seconds: float = 10.0) -> BusState:
        """The newest heartbeats and dead letters, every published model and the newest input times."""
        wanted: dict[str, int | None] = {
            HEARTBEATS: self.limits.heartbeat_window,
            DEAD_LETTER: self.limits.dead_letter_window,
            MODEL_UPDATES: None,  # all of it, read incrementally: models are kept between calls
            **dict.fromkeys(INPUT_TOPICS, 1),
        }
        state = BusState()
        targets: dict[tuple[str, int], int] = {}
        assignment = []
        ends = self._fetched_ends({topic: self._offsets.end_offsets(topic, self.timeout) for topic in wanted})
        for topic, newest in wanted.items():
            full = self.settings.topic(topic)
            for partition, high in ends.get(topic, {}).items():
                # Below the log start offset, auto.offset.reset=earliest starts at the oldest record.
                start = self._models_from(partition, high) if newest is None else max(0, high - newest)
                if high > start:
                    assignment.append(TopicPartition(full, partition, start))
                    targets[(full, partition)] = high
        if not assignment:
            return self._with_known_models(state)
        raw = self._reader.raw
        raw.assign(assignment)
        deadline = time.monotonic() + deadline_seconds
        try:
            while targets and time.monotonic() < deadline:
                for message in self._reader.poll_batch(2000, 0.2):
                    full, partition = message.topic() or "", message.partition() or 0
                    state.add(full.removeprefix(self.settings.topic_prefix), message, self._reader.decode)
                    if (message.offset() or 0) >= targets.get((full, partition), 0) - 1:
                        targets.pop((full, partition), None)
        finally:
            raw.unassign()
        if targets:
            log.warning("status read incomplete after %.0fs: %s", deadline_seconds, sorted(targets))
        return self._with_known_models(state)

    def _models_from(self, partition: int, high: int) -> int:
        """Where to resume reading model-updates; from 0 again when the partition was recreated."""
        start = self._model_next.get(partition, 0)
        if high < start:
            self._models = [m for m in self._models if m[0] != partition]
            start = 0
        return start

    def _with_known_models(self, state: BusState) -> BusState:
        for partition, offset, _model in state.models:
            self._model_next[partition] = max(self._model_next.get(partition, 0), offset + 1)
        self._models += state.models
        state.models = list(self._models)
        return state

    def observe(self, window: float | None = None, interval: float = 1.0) -> Observation:
        """Sample offsets over ``window`` seconds (default from the settings) and read the bus once."""
        span = self.limits.status_window_seconds if window is None else window
        started = time.monotonic()
        samples = [self.sample()]
        while (left := span - (time.monotonic() - started)) > 0:
            time.sleep(min(interval, left))
            samples.append(self.sample())
        # Read heartbeats last, so their age is measured against the moment they were read.
        return self.observation(samples, self.read_state())

    def observation(self, samples: list[OffsetSample], state: BusState) -> Observation:
        """Combine offset samples (oldest first) and a bus read into an Observation, now."""
        return Observation(
            now=time.time(),
            beats=tuple(state.beats.values()),
            groups=self.groups,
            samples=tuple(samples),
            dead_letters=state.dead_letters(samples[-1].totals.get(DEAD_LETTER, 0) if samples else 0),
            models=state.published(),
            newest_input=state.newest_input,
            disk_free_ratio=disk_free_ratio(self.settings),
            unreadable=dict(state.unreadable),
            warnings=settings_warnings(self.settings),
        )

    def close(self) -> None:
        for probe in self._probes.values():
            probe.close()
        if self._ends is not None:
            self._ends.close()
        self._reader.close()
        self._offsets.close()

    def __enter__(self) -> BusReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
