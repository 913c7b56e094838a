"""Input records to validated events: single-event and batch records alike, one dead letter per bad event.

The engine sends trades, signals and outcomes as single-event records (``Trade``, ...) or as batch
records (``TradeBatch``, ..., parallel arrays; :mod:`streams.avro.batches`). This module turns a Faust
batch of either kind into what the handlers use:

* trades become :class:`TradeColumns` (numpy arrays), validated with vector operations;
* signals and outcomes become :class:`Event` s, each validated on its own.

A record that cannot be decoded, or a batch whose arrays do not line up, is one dead letter with the
original bytes. A bad event inside a batch is a dead letter of its own, carrying its index in the
batch (``batch_index``) and, as ``raw``, the event alone encoded with its single-event schema; the
rest of the batch goes on.

Keys and partitions: a single record is keyed by its symbol (signals and outcomes may still be keyed
by signal id, the 0.1 contract); every event of a batch record must map to the record's partition
under Kafka's default partitioner, or it is dead-lettered as ``wrong_partition``.

Example:
    >>> from streams.avro.codec import Codec
    >>> from streams.config.agents import AgentSettings
    >>> from streams.kafka.partitioning import partition_for
    >>> from streams.avro.batches import to_columns
    >>> codec = Codec()
    >>> rows = [{"event_id": f"e{i}", "ts": 10, "symbol": "X", "price": p, "size": 1.0, "side": "BUY"}
    ...         for i, p in enumerate([10.0, -1.0, 11.0])]
    >>> value = codec.encode_batch("trades", to_columns("trades", rows))
    >>> msg = Inbound("trades", "t.trades", partition_for(b"X", 3), 0, b"X", value)
    >>> trades, dead = InputDecoder(codec, AgentSettings(), 3).trades([msg], now=100)
    >>> trades.price.tolist(), [(d.reason, d.batch_index) for d in dead]
    ([10.0, 11.0], [('non_positive_price', 1)])
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

import numpy as np

from agents.validate import (
    BAD_TIMESTAMP,
    FUTURE_TIMESTAMP,
    KEY_MISMATCH,
    MISSING_FIELD,
    NON_FINITE,
    NON_POSITIVE_PRICE,
    NON_POSITIVE_SIZE,
    Inbound,
    Validator,
)
from streams.avro.batches import batch_length, to_rows
from streams.avro.codec import Codec
from streams.config.agents import AgentSettings
from streams.deadletter import STAGE_DECODE, STAGE_VALIDATE, DeadLetter
from streams.errors import BatchShapeError, SchemaDecodeError
from streams.kafka.partitioning import KeyPartitioner
from streams.topics import TRADES

__all__ = ["BATCH_TOO_LARGE", "SINGLE", "WRONG_PARTITION", "Event", "InputDecoder", "TradeColumns"]

BATCH_TOO_LARGE: Final = "batch_too_large"
WRONG_PARTITION: Final = "wrong_partition"
SINGLE: Final = -1  # the batch index of an event that came in a single-event record


class Event(NamedTuple):
    """One valid signal or outcome and where it came from."""

    topic: str  # logical: signals or outcomes
    source: str  # full topic name, for dead letters
    partition: int  # source partition
    offset: int
    position: int  # index in its batch record; SINGLE for a single-event record
    key: bytes | None
    record: dict[str, Any]
    raw: bytes | None  # the single record's bytes; None inside a batch (re-encoded for a dead letter)
    route: int | None = None  # the join-input partition, for an event the worker forwarded there

    @property
    def src(self) -> tuple[int, int, int]:
        """(partition, offset, index): what identifies this event for redelivery checks."""
        return self.partition, self.offset, self.position

    def reject(self, codec: Codec, stage: str, reason: str, error: str) -> DeadLetter:
        raw = self.raw if self.raw is not None else codec.encode(self.topic, self.record)
        index = None if self.position == SINGLE else self.position
        return DeadLetter(stage, self.source, self.partition, self.offset, self.key, raw, reason, error, index)


@dataclass(slots=True)
class TradeColumns:
    """Valid trades of one Faust batch as columns, in arrival order, with their coordinates."""

    source: str = ""
    event_id: list[str] = field(default_factory=list)
    symbol: list[str] = field(default_factory=list)
    ts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    price: np.ndarray = field(default_factory=lambda: np.zeros(0))
    size: np.ndarray = field(default_factory=lambda: np.zeros(0))
    buy: np.ndarray = field(default_factory=lambda: np.zeros(0))
    partition: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    offset: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    index: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    keys: list[bytes | None] = field(default_factory=list)
    raws: list[bytes | None] = field(default_factory=list)
    misrouted: int = 0  # single records on another partition than their symbol's (counted, kept)

    def __len__(self) -> int:
        return len(self.event_id)

    def reject(self, i: int, codec: Codec, stage: str, reason: str, error: str) -> DeadLetter:
        """The dead letter of trade ``i``."""
        raw = self.raws[i]
        index = int(self.index[i])
        if raw is None:
            side = "BUY" if self.buy[i] else "SELL"
            row = {"event_id": self.event_id[i], "ts": int(self.ts[i]), "symbol": self.symbol[i],
                   "price": float(self.price[i]), "size": float(self.size[i]), "side": side}  # fmt: skip
            raw = codec.encode(TRADES, row)
        return DeadLetter(
            stage, self.source, int(self.partition[i]), int(self.offset[i]), self.keys[i], raw, reason, error,
            None if index == SINGLE else index,
        )  # fmt: skip


class _TradeBuilder:
    """Collects trade columns from records; ``side`` becomes ``buy`` (1.0 / 0.0)."""

    def __init__(self) -> None:
        self.cols: dict[str, list[Any]] = {k: [] for k in ("event_id", "ts", "symbol", "price", "size")}
        self.buy: list[bool] = []
        self.partition: list[int] = []
        self.offset: list[int] = []
        self.index: list[int] = []
        self.keys: list[bytes | None] = []
        self.raws: list[bytes | None] = []
        self.key_bad: list[bool] = []
        self.check_partition: list[bool] = []

    def single(self, msg: Inbound, record: dict[str, Any]) -> None:
        for name, column in self.cols.items():
            column.append(record[name])
        self.buy.append(record["side"] == "BUY")
        self.partition.append(msg.partition)
        self.offset.append(msg.offset)
        self.index.append(SINGLE)
        self.keys.append(msg.key)
        self.raws.append(msg.value)
        self.key_bad.append(msg.key is None or msg.key.decode("utf-8", "replace") != record["symbol"])
        self.check_partition.append(False)

    def batch(self, msg: Inbound, columns: dict[str, Any], n: int) -> None:
        for name, column in self.cols.items():
            column.extend(columns[name])
        self.buy.extend(side == "BUY" for side in columns["side"])
        self.partition.extend([msg.partition] * n)
        self.offset.extend([msg.offset] * n)
        self.index.extend(range(n))
        self.keys.extend([msg.key] * n)
        self.raws.extend([None] * n)
        self.key_bad.extend([False] * n)
        self.check_partition.extend([True] * n)

    def columns(self, source: str) -> TradeColumns:
        c = self.cols
        return TradeColumns(
            source, c["event_id"], c["symbol"], np.array(c["ts"], dtype=np.int64),
            np.array(c["price"], dtype=np.float64), np.array(c["size"], dtype=np.float64),
            np.array(self.buy, dtype=np.float64), np.array(self.partition, dtype=np.int64),
            np.array(self.offset, dtype=np.int64), np.array(self.index, dtype=np.int64), self.keys, self.raws,
        )  # fmt: skip


def _subset(trades: TradeColumns, keep: np.ndarray) -> TradeColumns:
    where = np.flatnonzero(keep).tolist()
    return TradeColumns(
        trades.source, [trades.event_id[i] for i in where], [trades.symbol[i] for i in where],
        trades.ts[keep], trades.price[keep], trades.size[keep], trades.buy[keep], trades.partition[keep],
        trades.offset[keep], trades.index[keep], [trades.keys[i] for i in where], [trades.raws[i] for i in where],
        trades.misrouted,
    )  # fmt: skip


class InputDecoder:
    """Decodes and validates the input records of one worker (or one plain-loop benchmark).

    Args:
        codec: the process's codec.
        settings: ``max_future_seconds`` and ``max_batch_events``.
        partitions: the input topics' partition count, for the partition check of batch events.
    """

    def __init__(self, codec: Codec, settings: AgentSettings, partitions: int) -> None:
        self.codec = codec
        self.validator = Validator(codec, settings.max_future_seconds)
        self.max_future_us = int(settings.max_future_seconds * 1_000_000)
        self.max_events = settings.max_batch_events
        self.partition_of = KeyPartitioner(partitions)

    def _open(self, msg: Inbound, out: list[DeadLetter]) -> tuple[dict[str, Any] | None, int]:
        """The decoded record and its event count (-1 for a single-event record), or None."""
        try:
            record, batched = self.codec.decode_any(msg.topic, msg.value)
            if not batched:
                return record, SINGLE
            n = batch_length(msg.topic, record)
        except (SchemaDecodeError, BatchShapeError) as exc:
            out.append(msg.reject(STAGE_DECODE, exc.reason, exc.detail))
            return None, 0
        if n > self.max_events:
            out.append(msg.reject(STAGE_DECODE, BATCH_TOO_LARGE, f"{n} events, at most {self.max_events}"))
            return None, 0
        return record, n

    # ---- signals and outcomes --------------------------------------------------------------------

    def events(self, messages: Iterable[Inbound], now: int) -> tuple[list[Event], list[DeadLetter]]:
        """The valid signals and outcomes of ``messages`` in order, and the dead letters."""
        events: list[Event] = []
        dead: list[DeadLetter] = []
        problem = self.validator.problem
        for msg in messages:
            record, n = self._open(msg, dead)
            if record is None:
                continue
            if n == SINGLE:
                found = problem(msg.topic, record, msg.key, now)
                if found is not None:
                    dead.append(msg.reject(STAGE_VALIDATE, *found))
                else:
                    events.append(Event(msg.topic, msg.source, msg.partition, msg.offset, SINGLE, msg.key,
                                        record, msg.value, msg.route))  # fmt: skip
                continue
            suspects = self.validator.suspects(msg.topic, record, now).tolist()
            partition_of = self.partition_of
            for i, row in enumerate(to_rows(msg.topic, record)):
                event = Event(msg.topic, msg.source, msg.partition, msg.offset, i, msg.key, row, None, msg.route)
                found = problem(msg.topic, row, None, now, check_key=False) if suspects[i] else None
                if found is None and msg.route is None and partition_of(row["symbol"]) != msg.partition:
                    found = WRONG_PARTITION, self._wrong_partition(row["symbol"], msg.partition)
                if found is not None:
                    dead.append(event.reject(self.codec, STAGE_VALIDATE, *found))
                else:
                    events.append(event)
        return events, dead

    def _wrong_partition(self, symbol: str, partition: int) -> str:
        return (f"{symbol!r} belongs on partition {self.partition_of(symbol)} of "
                f"{self.partition_of.partitions}, the batch record is on {partition}")  # fmt: skip

    # ---- trades ----------------------------------------------------------------------------------

    def trades(self, messages: Iterable[Inbound], now: int) -> tuple[TradeColumns, list[DeadLetter]]:
        """The valid trades of ``messages`` as columns in arrival order, and the dead letters."""
        dead: list[DeadLetter] = []
        build = _TradeBuilder()
        source = ""
        for msg in messages:
            source = msg.source
            record, n = self._open(msg, dead)
            if record is None:
                continue
            if n == SINGLE:
                build.single(msg, record)
            else:
                build.batch(msg, record, n)
        trades = build.columns(source)
        if not len(trades):
            return trades, dead
        partition_of = self.partition_of
        home = np.fromiter((partition_of(s) for s in trades.symbol), np.int64, len(trades))
        elsewhere = home != trades.partition
        checked = np.array(build.check_partition, dtype=bool)
        trades.misrouted = int((elsewhere & ~checked).sum())
        checks: list[tuple[str, np.ndarray]] = [
            (MISSING_FIELD, np.fromiter((not e or not s for e, s in zip(trades.event_id, trades.symbol,
                                                                           strict=True)), bool, len(trades))),
            (KEY_MISMATCH, np.array(build.key_bad, dtype=bool)),
            (WRONG_PARTITION, elsewhere & checked),
            (NON_FINITE, ~np.isfinite(trades.price) | ~np.isfinite(trades.size)),
            (BAD_TIMESTAMP, trades.ts <= 0),
            (FUTURE_TIMESTAMP, trades.ts > now + self.max_future_us),
            (NON_POSITIVE_PRICE, trades.price <= 0),
            (NON_POSITIVE_SIZE, trades.size <= 0),
        ]  # fmt: skip
        bad = np.zeros(len(trades), dtype=bool)
        for reason, mask in checks:
            new = mask & ~bad
            for i in np.flatnonzero(new).tolist():
                dead.append(trades.reject(i, self.codec, STAGE_VALIDATE, reason, self._trade_detail(trades, i,
                                                                                                  reason, now)))
            bad |= new
        return (_subset(trades, ~bad) if bad.any() else trades), dead

    def _trade_detail(self, t: TradeColumns, i: int, reason: str, now: int) -> str:
        if reason == MISSING_FIELD:
            return "event_id is empty" if not t.event_id[i] else "symbol is empty"
        if reason == KEY_MISMATCH:
            return f"key {t.keys[i]!r} is not the record's symbol {t.symbol[i]!r}"
        if reason == WRONG_PARTITION:
            return self._wrong_partition(t.symbol[i], int(t.partition[i]))
        if reason == NON_FINITE:
            return f"price = {t.price[i]}, size = {t.size[i]}"
        if reason == FUTURE_TIMESTAMP:
            return f"ts {t.ts[i]} is {(int(t.ts[i]) - now) / 1e6:.0f}s ahead of the wall clock"
        if reason == BAD_TIMESTAMP:
            return f"ts {t.ts[i]}"
        return f"price {t.price[i]}" if reason == NON_POSITIVE_PRICE else f"size {t.size[i]}"
