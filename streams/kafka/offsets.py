"""Topic end offsets and consumer-group lag, read with a group-less consumer.

Used by the live panel of ``tradeloop up`` and by ``tradeloop status``. Offsets, not timestamps:
Tansu's ListOffsets by timestamp is unreliable (DESIGN.md section 3).
"""

from __future__ import annotations

from collections.abc import Iterable
from types import TracebackType

from confluent_kafka import Consumer, KafkaException, TopicPartition

from streams.errors import BrokerError
from streams.kafka.config import consumer_config
from streams.kafka.metadata import partition_ids
from streams.settings import Settings

__all__ = ["OffsetReader"]


class OffsetReader:
    """Reads high watermarks per topic and committed offsets per group."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._consumer = Consumer(consumer_config(settings, "tradeloop-offsets", "tradeloop-offsets"))
        self._partitions: dict[str, list[int]] = {}

    def partitions(self, topic: str, timeout: float = 5.0) -> list[int]:
        """Partition ids of logical ``topic`` (cached); empty when it does not exist."""
        cached = self._partitions.get(topic)
        if cached:
            return cached
        ids = self._partitions[topic] = partition_ids(self._consumer, self.settings.topic(topic), timeout)
        return ids

    def end_offsets(self, topic: str, timeout: float = 5.0) -> dict[int, int]:
        """High watermark per partition of logical ``topic``."""
        full = self.settings.topic(topic)
        ends = {}
        for partition in self.partitions(topic, timeout):
            try:
                _low, high = self._consumer.get_watermark_offsets(TopicPartition(full, partition), timeout)
            except KafkaException as exc:
                raise BrokerError(f"cannot read offsets of {full}: {exc.args[0]}") from exc
            ends[partition] = int(high)
        return ends

    def totals(self, topics: Iterable[str], timeout: float = 5.0) -> dict[str, int]:
        """Records ever written per logical topic (sum of high watermarks)."""
        return {topic: sum(self.end_offsets(topic, timeout).values()) for topic in topics}

    def group_lag(self, group: str, topics: Iterable[str], timeout: float = 5.0) -> dict[str, int]:
        """Records not yet committed by consumer ``group``, per logical topic.

        A partition the group never committed counts from offset 0.
        """
        lag: dict[str, int] = {}
        for topic in topics:
            ends = self.end_offsets(topic, timeout)
            if not ends:
                continue
            probe = Consumer(consumer_config(self.settings, group, "tradeloop-lag"))
            try:
                full = self.settings.topic(topic)
                committed = probe.committed([TopicPartition(full, p) for p in ends], timeout=timeout)
            except KafkaException as exc:
                raise BrokerError(f"cannot read committed offsets of {group}: {exc.args[0]}") from exc
            finally:
                probe.close()
            lag[topic] = sum(max(0, ends[tp.partition] - max(tp.offset, 0)) for tp in committed)
        return lag

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> OffsetReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
