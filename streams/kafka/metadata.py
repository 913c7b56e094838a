"""A topic's partitions, asked of any client that holds a connection (consumer or producer).

One place for the metadata request and its two failures: a broker that does not answer (always a
:class:`~streams.errors.BrokerError`) and a topic that is missing (an empty list, or an error for
callers that cannot work without it).
"""

from __future__ import annotations

from typing import Protocol

from confluent_kafka import KafkaException
from confluent_kafka.admin import ClusterMetadata

from streams.errors import BrokerError

__all__ = ["partition_ids", "require_partitions"]


class MetadataClient(Protocol):
    def list_topics(self, topic: str | None = None, timeout: float = -1) -> ClusterMetadata: ...


def partition_ids(client: MetadataClient, topic: str, timeout: float = 10.0) -> list[int]:
    """Sorted partition ids of the full topic name ``topic``; empty when it does not exist.

    Raises:
        BrokerError: the broker did not answer in ``timeout`` seconds.
    """
    try:
        meta = client.list_topics(topic, timeout=timeout).topics.get(topic)
    except KafkaException as exc:
        raise BrokerError(
            f"broker unavailable: cannot read the metadata of {topic} within {timeout:g} s ({exc.args[0]})"
        ) from exc
    return sorted(meta.partitions) if meta is not None and meta.error is None else []


def require_partitions(client: MetadataClient, topic: str, timeout: float = 10.0) -> list[int]:
    """:func:`partition_ids`, for callers that cannot work without the topic.

    Raises:
        BrokerError: the broker did not answer, or the topic does not exist or has no partitions.
    """
    ids = partition_ids(client, topic, timeout)
    if not ids:
        raise BrokerError(f"topic {topic} not found; create it with `tradeloop topics create`")
    return ids
