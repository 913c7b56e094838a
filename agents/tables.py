"""Writing handler results into Faust tables with an explicit partition.

Faust tables pick the changelog partition (and, for RocksDB, the partition database) from the
event being processed. Batches from ``stream.take_events`` and timers have no single current
event, so each write sets a stand-in whose ``message`` names the source topic and partition the
key belongs to. This is the one place that touches Faust's ``current_event`` context variable.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from types import SimpleNamespace
from typing import Any

from faust.streams import _current_event

from agents.journal import Write

__all__ = ["apply_writes", "read_all"]


class _PartitionEvent:
    """What Faust tables read of an event: ``message.topic`` and ``message.partition``."""

    __slots__ = ("__weakref__", "message")

    def __init__(self, topic: str, partition: int) -> None:
        self.message = SimpleNamespace(topic=topic, partition=partition)


def apply_writes(table: Any, source_topic: str, writes: Iterable[Write]) -> int:
    """Apply (partition, key, value-or-None) writes to ``table``; returns how many were applied."""
    count = 0
    for partition, key, value in writes:
        event = _PartitionEvent(source_topic, partition)
        token = _current_event.set(weakref.ref(event))  # type: ignore[arg-type]
        try:
            if value is not None:
                table[key] = value
            elif key in table:
                del table[key]
        finally:
            _current_event.reset(token)
        count += 1
    return count


def read_all(table: Any) -> list[tuple[bytes, bytes]]:
    """Every (key, value) of ``table`` across the partitions this worker holds."""
    token = _current_event.set(None)
    try:
        return [(bytes(k), bytes(v)) for k, v in table.items()]
    finally:
        _current_event.reset(token)
