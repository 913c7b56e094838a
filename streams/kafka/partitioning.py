"""Kafka's default partitioner: where a key lands, as the Java client places it.

Every input topic is co-partitioned by symbol: trades, signals and outcomes of one symbol share a
partition number, so the worker holding partition *p* of the trades also holds that symbol's
signals and outcomes. docs/wire-format.md states the contract; the tests check it against
murmur2 written from Kafka's Java client.

Example:
    >>> partition_for(b"BTC-USD", 4), partition_for(b"ETH-USD", 4)
    (1, 0)
    >>> partitioner = KeyPartitioner(3)
    >>> partitioner("BTC-USD") == partition_for(b"BTC-USD", 3)
    True
"""

from __future__ import annotations

from aiokafka.partitioner import murmur2

__all__ = ["KeyPartitioner", "partition_for"]


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2, as the Java client) gives ``key``."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


class KeyPartitioner:
    """:func:`partition_for` of string keys for one partition count, cached (symbols repeat)."""

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self._cache: dict[str, int] = {}

    def __call__(self, key: str) -> int:
        found = self._cache.get(key)
        if found is None:
            if len(self._cache) > 100_000:
                self._cache.clear()  # unbounded key sets (signal ids) must not grow it for ever
            found = self._cache[key] = partition_for(key.encode(), self.partitions)
        return found
