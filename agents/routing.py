"""Routing signals and outcomes to the partition of their symbol's trades.

The join needs the market state of a signal's symbol, which lives with the trades of that symbol,
while signals and outcomes are keyed by signal id. So the worker re-partitions them: every valid
signal and outcome is forwarded, key and value unchanged, to an internal ``join-input`` topic on
the partition Kafka's default partitioner gives the symbol. Faust assigns partition *p* of every input
topic with equal partition counts to the same worker, so the join of partition *p* runs next to
the market state of the trades of partition *p*, and two workers can share the partitions.

This needs trades keyed by symbol with Kafka's default (murmur2) partitioner, as Java clients,
Faust and our SDK (``partitioner=murmur2_random``) do; the worker counts trades that arrive on
another partition. Each forwarded record names its source (topic, partition, offset) in a header,
so the join still recognises redeliveries and reports dead letters against the original event.

Example:
    >>> partition_for(b"BTC-USD", 4), partition_for(b"ETH-USD", 4)
    (1, 0)
    >>> Provenance.parse(Provenance("signals", 3, 17).header())
    Provenance(topic='signals', partition=3, offset=17)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

from aiokafka.partitioner import murmur2

from agents.deadletter import DeadLetter
from agents.validate import Inbound, Validator

__all__ = ["PROVENANCE_HEADER", "Forward", "Provenance", "RouteBatch", "Router", "partition_for"]

PROVENANCE_HEADER: Final = "tradeloop-source"


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2, as the Java client) gives ``key``."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


class Provenance(NamedTuple):
    """Where a routed record was first consumed: logical topic, partition, offset."""

    topic: str
    partition: int
    offset: int

    def header(self) -> bytes:
        return f"{self.topic}:{self.partition}:{self.offset}".encode()

    @classmethod
    def parse(cls, raw: bytes) -> Provenance:
        topic, partition, offset = raw.decode().rsplit(":", 2)
        return cls(topic, int(partition), int(offset))

    @classmethod
    def of(cls, headers: Sequence[tuple[str, bytes]] | dict[str, bytes] | None) -> Provenance | None:
        """The provenance in Kafka ``headers`` (a list of pairs or a mapping), if there is one."""
        items: Iterable[tuple[str, bytes]] = (headers.items() if isinstance(headers, dict) else headers) or ()
        for name, value in items:
            if name == PROVENANCE_HEADER and value is not None:
                return cls.parse(bytes(value))
        return None


class Forward(NamedTuple):
    """One record to send to the join-input topic."""

    partition: int  # the symbol's partition
    key: bytes | None  # the original key (the signal id), so the join checks it as before
    value: bytes
    ts: int
    provenance: Provenance


@dataclass(slots=True)
class RouteBatch:
    forwards: list[Forward] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)


class Router:
    """Validates signals and outcomes and assigns each the partition of its symbol."""

    def __init__(self, validator: Validator, partitions: int) -> None:
        self.validator = validator
        self.partitions = partitions

    def handle(self, messages: Iterable[Inbound], now: int) -> RouteBatch:
        out = RouteBatch()
        for msg in messages:
            record: Any = self.validator.check(msg, now)
            if isinstance(record, DeadLetter):
                out.dead.append(record)
                continue
            partition = partition_for(record["symbol"].encode(), self.partitions)
            source = Provenance(msg.topic, msg.partition, msg.offset)
            out.forwards.append(Forward(partition, msg.key, msg.value, record["ts"], source))
        return out
