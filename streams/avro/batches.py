"""Batch records: many events of one topic in one Kafka record, as parallel arrays.

A batch schema (``TradeBatch``, ``SignalBatch``, ``OutcomeBatch``; see
:data:`streams.topics.BATCH_SCHEMA_OF_TOPIC`) has one array per field of the topic's single-event
schema, in the same order: element *i* of every array is event *i*. Parallel arrays were chosen
over an array of records by measuring decode cost per event (``bench/batch_layout.py``): fastavro
reads a column of doubles without building a dict per event, and numpy takes it from there.

A column added to a batch schema in a later version has the default ``[]``: an empty column in a
non-empty batch means "the single schema's default for every event", so older writers' batches stay
readable.

Example:
    >>> columns = to_columns("trades", [
    ...     {"event_id": "a", "ts": 1, "symbol": "X", "price": 1.0, "size": 2.0, "side": "BUY"},
    ...     {"event_id": "b", "ts": 2, "symbol": "X", "price": 1.5, "size": 1.0, "side": "SELL"}])
    >>> columns["price"], batch_length("trades", columns)
    ([1.0, 1.5], 2)
    >>> [row["event_id"] for row in to_rows("trades", columns)]
    ['a', 'b']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any, Final

from streams.avro.schemas import SchemaRegistry
from streams.errors import BatchShapeError

__all__ = ["EMPTY_BATCH", "RAGGED_BATCH", "batch_length", "fields_of", "to_columns", "to_rows"]

RAGGED_BATCH: Final = "ragged_batch"
EMPTY_BATCH: Final = "empty_batch"
_NO_DEFAULT: Final = object()


@cache
def fields_of(topic: str) -> tuple[tuple[str, Any], ...]:
    """(name, default or a sentinel) of every field of ``topic``'s single-event schema, in order."""
    schema = SchemaRegistry.default().for_topic(topic).json
    return tuple((f["name"], f.get("default", _NO_DEFAULT)) for f in schema["fields"])


def to_columns(topic: str, records: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """The batch record of ``records`` (single-event dicts of ``topic``): one list per field.

    A field a record lacks takes the schema's default (as the single-event encoder would);
    a field without a default must be present.
    """
    columns: dict[str, list[Any]] = {}
    for name, default in fields_of(topic):
        if default is _NO_DEFAULT:
            columns[name] = [r[name] for r in records]
        else:
            columns[name] = [r.get(name, default) for r in records]
    return columns


def batch_length(topic: str, columns: Mapping[str, Sequence[Any]]) -> int:
    """The number of events in a decoded batch record.

    Raises:
        BatchShapeError: the arrays have different lengths (``ragged_batch``; an empty column of a
            field with a default is allowed) or there are no events (``empty_batch``).
    """
    lengths = {name: len(columns[name]) for name, _ in fields_of(topic)}
    n = max(lengths.values(), default=0)
    if n == 0:
        raise BatchShapeError(EMPTY_BATCH, "a batch record with no events")
    fields = dict(fields_of(topic))
    ragged = [
        f"{name}={length}"
        for name, length in lengths.items()
        if length != n and not (length == 0 and fields[name] is not _NO_DEFAULT)
    ]
    if ragged:
        raise BatchShapeError(RAGGED_BATCH, f"{n} events but {', '.join(ragged)}")
    return n


def to_rows(topic: str, columns: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """The events of a decoded batch record as single-event dicts, in order.

    Raises:
        BatchShapeError: as :func:`batch_length`.
    """
    n = batch_length(topic, columns)
    filled = [
        columns[name] if len(columns[name]) == n else [default] * n for name, default in fields_of(topic)
    ]
    names = [name for name, _ in fields_of(topic)]
    # batch_length checked the lengths: plain zips, which are measurably faster on this hot path.
    return [dict(zip(names, values)) for values in zip(*filled)]  # noqa: B905
