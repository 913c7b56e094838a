"""Routing signals and outcomes that arrive away from their symbol's partition (the 0.1 keying).

The join needs the market state of a signal's symbol, which lives with that symbol's trades. Since
0.2 engines key signals and outcomes by symbol, so they arrive on the symbol's partition and the
join reads them there directly. A single record keyed by signal id (the 0.1 contract) usually
lands elsewhere: the worker forwards it, key and value unchanged, to the internal ``join-input``
topic on the partition Kafka's default partitioner gives its symbol, with a header naming its
source (topic, partition, offset), so the join still recognises redeliveries and reports dead
letters against the original record. Faust assigns partition *p* of every input topic with
equal partition counts to the same worker, so any number of workers can share the partitions.

An event inside a batch record must already sit on its symbol's partition (the decoder
dead-letters it otherwise), so only single records are ever forwarded.

Example:
    >>> Provenance.parse(Provenance("signals", 3, 17).header())
    Provenance(topic='signals', partition=3, offset=17)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final, NamedTuple

from agents.inputs import Event
from streams.kafka.partitioning import KeyPartitioner

__all__ = ["PROVENANCE_HEADER", "Forward", "Provenance", "Router"]

PROVENANCE_HEADER: Final = "tradeloop-source"


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
    key: bytes | None  # the original key (the signal id)
    value: bytes
    ts: int
    provenance: Provenance


class Router:
    """Splits valid signals and outcomes into those the join takes here and those to forward."""

    def __init__(self, partitions: int) -> None:
        self.partition_of = KeyPartitioner(partitions)

    def split(self, events: Iterable[Event]) -> tuple[list[Event], list[Forward]]:
        """(events on their symbol's partition, forwards of single records that are not)."""
        here: list[Event] = []
        forwards: list[Forward] = []
        for event in events:
            partition = self.partition_of(event.record["symbol"])
            if event.route is not None or partition == event.partition or event.raw is None:
                here.append(event)
            else:
                source = Provenance(event.topic, event.partition, event.offset)
                forwards.append(Forward(partition, event.key, event.raw, event.record["ts"], source))
        return here, forwards
