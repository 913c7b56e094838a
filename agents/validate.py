"""Validation of every input event: decode, required fields, ranges, clock sanity, duplicates.

A check returns the decoded record or a :class:`~streams.deadletter.DeadLetter` with a
machine-readable reason; it never raises on bad input, so one bad record cannot stop a worker.

Example:
    >>> from streams.avro.codec import Codec
    >>> codec = Codec()
    >>> trade = {"event_id": "e1", "ts": 1, "symbol": "X", "price": -1.0, "size": 1.0, "side": "BUY"}
    >>> msg = Inbound("trades", "t.trades", 0, 5, b"X", codec.encode("trades", trade))
    >>> Validator(codec, max_future_seconds=300).check(msg, now=10).reason
    'non_positive_price'
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, NamedTuple

import numpy as np

from streams.avro.codec import Codec
from streams.deadletter import STAGE_DECODE, STAGE_VALIDATE, DeadLetter
from streams.errors import SchemaDecodeError
from streams.topics import OUTCOMES, SIGNALS, TRADES

__all__ = [
    "BAD_TIMESTAMP",
    "DUPLICATE",
    "FUTURE_TIMESTAMP",
    "KEY_MISMATCH",
    "MISSING_FIELD",
    "NEGATIVE_VALUE",
    "NON_FINITE",
    "NON_POSITIVE_HORIZON",
    "NON_POSITIVE_PRICE",
    "NON_POSITIVE_SIZE",
    "SCORE_OUT_OF_RANGE",
    "Inbound",
    "RecentIds",
    "Validator",
    "id_hash",
]


MISSING_FIELD: Final = "missing_field"
KEY_MISMATCH: Final = "key_mismatch"
NON_FINITE: Final = "non_finite"
BAD_TIMESTAMP: Final = "bad_timestamp"
FUTURE_TIMESTAMP: Final = "future_timestamp"
NON_POSITIVE_PRICE: Final = "non_positive_price"
NON_POSITIVE_SIZE: Final = "non_positive_size"
SCORE_OUT_OF_RANGE: Final = "score_out_of_range"
NON_POSITIVE_HORIZON: Final = "non_positive_horizon"
NEGATIVE_VALUE: Final = "negative_value"
DUPLICATE: Final = "duplicate"


class Inbound(NamedTuple):
    """One consumed message, independent of the Kafka client that read it."""

    topic: str  # logical topic: trades, signals, outcomes
    source: str  # full topic name, for dead letters
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    # The partition the join keeps this event's state on (the join-input partition of its
    # symbol); None when that is ``partition`` itself.
    route: int | None = None

    def reject(self, stage: str, reason: str, error: str) -> DeadLetter:
        return DeadLetter(
            stage, self.source, self.partition, self.offset, self.key, self.value, reason, error
        )


Problem = tuple[str, str]  # (reason, detail)

# Per topic: fields that must be non-empty strings, the key field, and the numeric fields.
_STRINGS: Final[dict[str, tuple[str, ...]]] = {
    TRADES: ("event_id", "symbol"),
    SIGNALS: ("event_id", "signal_id", "strategy", "symbol"),
    OUTCOMES: ("event_id", "signal_id", "symbol", "strategy"),
}
# The fields a single record's key may equal: the symbol (co-partitioned with its trades); signals
# and outcomes keyed by signal id (the 0.1 contract) are still accepted and routed by the worker.
_KEY_FIELDS: Final = {TRADES: ("symbol",), SIGNALS: ("symbol", "signal_id"), OUTCOMES: ("symbol", "signal_id")}
_NUMBERS: Final[dict[str, tuple[str, ...]]] = {
    TRADES: ("price", "size"),
    SIGNALS: ("price", "score", "horizon_seconds", "action"),
    OUTCOMES: ("entry_price", "exit_price", "size_multiplier", "return_unit", "pnl", "fees"),
}


def _trade_ranges(r: Mapping[str, Any]) -> Problem | None:
    if r["price"] <= 0:
        return NON_POSITIVE_PRICE, f"price {r['price']}"
    if r["size"] <= 0:
        return NON_POSITIVE_SIZE, f"size {r['size']}"
    return None


def _signal_ranges(r: Mapping[str, Any]) -> Problem | None:
    if r["price"] <= 0:
        return NON_POSITIVE_PRICE, f"price {r['price']}"
    if not 0.0 <= r["score"] <= 1.0:
        return SCORE_OUT_OF_RANGE, f"score {r['score']} not in [0, 1]"
    if r["horizon_seconds"] <= 0:
        return NON_POSITIVE_HORIZON, f"horizon_seconds {r['horizon_seconds']}"
    if r["action"] < 0:
        return NEGATIVE_VALUE, f"action {r['action']}"
    for name, value in r["features"].items():
        if not math.isfinite(value):
            return NON_FINITE, f"features[{name!r}] = {value}"
    return None


def _outcome_ranges(r: Mapping[str, Any]) -> Problem | None:
    if r["entry_price"] <= 0 or r["exit_price"] <= 0:
        return NON_POSITIVE_PRICE, f"entry {r['entry_price']} exit {r['exit_price']}"
    if r["fees"] < 0:
        return NEGATIVE_VALUE, f"fees {r['fees']}"
    if r["size_multiplier"] < 0:
        return NEGATIVE_VALUE, f"size_multiplier {r['size_multiplier']}"
    return None


_RANGES: Final[dict[str, Callable[[Mapping[str, Any]], Problem | None]]] = {
    TRADES: _trade_ranges,
    SIGNALS: _signal_ranges,
    OUTCOMES: _outcome_ranges,
}


def _range_suspects(topic: str, c: Mapping[str, Any], f: Callable[[str], np.ndarray]) -> np.ndarray:
    """Rows of a batch that may fail the range checks of ``topic`` (column-wise ``_RANGES``)."""
    if topic == TRADES:
        return (f("price") <= 0) | (f("size") <= 0)  # type: ignore[no-any-return]
    if topic == SIGNALS:
        score = f("score")
        bad_features = np.fromiter(
            (not all(map(math.isfinite, x.values())) for x in c["features"]), bool, len(c["features"])
        )
        return (  # type: ignore[no-any-return]
            (f("price") <= 0) | ~((score >= 0.0) & (score <= 1.0)) | (f("horizon_seconds") <= 0)
            | (f("action") < 0) | bad_features
        )  # fmt: skip
    return (f("entry_price") <= 0) | (f("exit_price") <= 0) | (f("fees") < 0) | (f("size_multiplier") < 0)  # type: ignore[no-any-return]


class Validator:
    """Decodes and checks trades, signals and outcomes (duplicates are the callers' job: see RecentIds).

    Args:
        codec: the process's codec.
        max_future_seconds: how far ahead of the wall clock an event time may be.
    """

    def __init__(self, codec: Codec, max_future_seconds: float) -> None:
        self.codec = codec
        self.max_future_us = int(max_future_seconds * 1_000_000)

    def problem(
        self, topic: str, record: Mapping[str, Any], key: bytes | None, now: int, *, check_key: bool = True
    ) -> Problem | None:
        """The first problem of a decoded ``record``, or None when it is valid.

        ``check_key`` is false for an event inside a batch record, whose key is the first event's.
        """
        for name in _STRINGS[topic]:
            if not record[name]:
                return MISSING_FIELD, f"{name} is empty"
        if check_key:
            fields = _KEY_FIELDS[topic]
            text = None if key is None else key.decode("utf-8", "replace")
            if text is None or all(text != record[f] for f in fields):
                expected = " or ".join(f"{f} {record[f]!r}" for f in fields)
                return KEY_MISMATCH, f"key {key!r} is not the record's {expected}"
        for name in _NUMBERS[topic]:
            if not math.isfinite(record[name]):
                return NON_FINITE, f"{name} = {record[name]}"
        ts = record["ts"]
        if ts <= 0:
            return BAD_TIMESTAMP, f"ts {ts}"
        if ts > now + self.max_future_us:
            return FUTURE_TIMESTAMP, f"ts {ts} is {(ts - now) / 1e6:.0f}s ahead of the wall clock"
        return _RANGES[topic](record)

    def suspects(self, topic: str, columns: Mapping[str, Any], now: int) -> np.ndarray:
        """Rows of a decoded batch record that may have a problem, checked column by column.

        Mirrors :meth:`problem` without the key check (a batch's key is its first event's): a row
        left unflagged passes :meth:`problem`; a flagged row gets its exact reason from it.
        """
        n = len(columns["event_id"])

        def floats(name: str) -> np.ndarray:
            return np.asarray(columns[name], dtype=np.float64)

        flagged = np.zeros(n, dtype=bool)
        for name in _STRINGS[topic]:
            flagged |= np.fromiter((not v for v in columns[name]), bool, n)
        for name in _NUMBERS[topic]:
            flagged |= ~np.isfinite(floats(name))
        ts = np.asarray(columns["ts"], dtype=np.int64)
        flagged |= (ts <= 0) | (ts > now + self.max_future_us)
        return flagged | _range_suspects(topic, columns, floats)

    def check(self, msg: Inbound, now: int) -> dict[str, Any] | DeadLetter:
        """The decoded record of ``msg``, or the dead letter that says why it is unusable.

        Args:
            msg: the consumed message; ``msg.topic`` is trades, signals or outcomes.
            now: wall-clock time in microseconds (only for the future-timestamp check).
        """
        try:
            record = self.codec.decode(msg.topic, msg.value)
        except SchemaDecodeError as exc:
            return msg.reject(STAGE_DECODE, exc.reason, exc.detail)
        found = self.problem(msg.topic, record, msg.key, now)
        if found is not None:
            return msg.reject(STAGE_VALIDATE, *found)
        return record


def id_hash(event_id: str) -> int:
    """A stable 63-bit hash of an event id (Python's ``hash`` changes between processes)."""
    digest = hashlib.blake2b(event_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


class RecentIds:
    """The last ``capacity`` event ids, as a ring of 63-bit hashes with a set for lookups.

    The ring is persisted in chunks so a batch rewrites only the chunks it touched.

    Example:
        >>> ids = RecentIds(capacity=2)
        >>> ids.add("a"), ids.add("a"), ids.add("b"), ids.add("c"), ids.add("a")
        (True, False, True, True, True)
    """

    CHUNK: Final = 64

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.ring = np.zeros(capacity, dtype=np.int64)  # 0 marks an empty slot
        self.count = 0  # ids ever added; the next slot is count % capacity
        self._set: set[int] = set()
        self._dirty: set[int] = set()

    def add(self, event_id: str) -> bool:
        """Remember ``event_id``; False when it is already among the recent ids."""
        h = id_hash(event_id) or 1
        if h in self._set:
            return False
        slot = self.count % self.capacity
        old = int(self.ring[slot])
        if old:
            self._set.discard(old)
        self.ring[slot] = h
        self._set.add(h)
        self.count += 1
        self._dirty.add(slot // self.CHUNK)
        return True

    def dirty_chunks(self) -> dict[int, bytes]:
        """Chunks changed since the last call, by chunk index, as bytes to persist."""
        out = {i: self.ring[i * self.CHUNK : (i + 1) * self.CHUNK].tobytes() for i in sorted(self._dirty)}
        self._dirty.clear()
        return out

    def restore(self, count: int, chunks: Iterable[tuple[int, bytes]]) -> None:
        """Rebuild from persisted chunks (see :meth:`dirty_chunks`) and the persisted ``count``."""
        self.count = count
        for index, data in chunks:
            values = np.frombuffer(data, dtype=np.int64)
            start = index * self.CHUNK
            if start < self.capacity:
                n = min(len(values), self.capacity - start)
                self.ring[start : start + n] = values[:n]
        self._set = {int(v) for v in self.ring if v}
        self._dirty.clear()
