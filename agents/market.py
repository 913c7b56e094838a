"""The pure handler of the trades stream: validation, rolling features, price moves, snapshots.

:meth:`Market.handle` takes a batch of consumed trade records (single trades or batch records,
:mod:`agents.inputs`) and returns everything the Faust agent (or the plain-loop benchmark) must
do: snapshots and alerts to produce, dead letters, and the table writes that persist the new
state. It also serves the join's point-in-time lookups (:meth:`Market.view`).

Per symbol the state is a journal (:mod:`agents.journal`): one record per batch with the parts it
changed (``core`` scalars as JSON, bucket rows ``F<id>``/``C<id>``, chunks of recent trade ids
``D<i>``, snapshots ``S<trade count>``), so a crash never persists half a batch, and a restore
reads a few records per symbol however many trades and snapshots it saw.

Example:
    >>> from streams.avro.codec import Codec
    >>> from streams.config.agents import AgentSettings
    >>> from agents.validate import Inbound
    >>> codec = Codec()
    >>> trade = {"event_id": "e1", "ts": 1_700_000_000_000_000, "symbol": "X", "price": 10.0, "size": 1.0,
    ...          "side": "BUY"}
    >>> market = Market(AgentSettings(), codec)
    >>> out = market.handle([Inbound("trades", "t.trades", 0, 0, b"X", codec.encode("trades", trade))],
    ...                     now=1_700_000_000_000_000)
    >>> len(out.snapshots), market.view("X").watermark
    (1, 1700000000000000)
"""

from __future__ import annotations

import bisect
import json
import struct
import uuid
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

from agents.features import FeatureState, clamp_monotonic
from agents.inputs import InputDecoder, TradeColumns
from agents.journal import Journal, Write
from agents.price_moves import MoveDetector
from agents.validate import DUPLICATE, Inbound, RecentIds
from streams.avro.codec import Codec
from streams.config.agents import AgentSettings
from streams.deadletter import STAGE_DEDUP, DeadLetter
from streams.features import SIZER_SPEC

__all__ = ["SNAPSHOT_NAMESPACE", "Market", "MarketBatch", "Snapshot", "SymbolMarket", "Write"]

SNAPSHOT_NAMESPACE: Final = uuid.UUID("9f3b7c1e-5a2d-4b8e-a6f0-3c9d2e1b4a57")
_SNAP_HEADER = struct.Struct("<qq")  # ts, trade count


@dataclass(frozen=True, slots=True)
class Snapshot:
    ts: int
    trade_count: int
    values: np.ndarray


@dataclass(slots=True)
class MarketBatch:
    """What one batch of trades produced."""

    snapshots: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    moves: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)
    accepted: int = 0
    redelivered: int = 0
    misrouted: int = 0


def _snap_part(trade_count: int) -> str:
    return f"S{trade_count:012d}"


class SymbolMarket:
    """Everything the worker keeps for one symbol."""

    def __init__(self, symbol: str, settings: AgentSettings) -> None:
        self.symbol = symbol
        self.features = FeatureState()
        self.moves = MoveDetector(settings)
        self.ids = RecentIds(settings.dedup_window)
        self.offsets: dict[int, int] = {}  # partition -> last offset applied (redelivery filter)
        self.partition = 0
        self.last_slot = -1
        self.snap_ts: list[int] = []
        self.snaps: list[Snapshot] = []
        self.snap_changes: dict[str, bytes | None] = {}  # journal parts of new and expired snapshots

    @property
    def watermark(self) -> int:
        """Event time of the newest trade applied (0 before any)."""
        return self.features.last_ts

    def snapshot_at(self, ts: int) -> Snapshot | None:
        """The newest snapshot at or before ``ts``, never a later one."""
        i = bisect.bisect_right(self.snap_ts, ts) - 1
        return self.snaps[i] if i >= 0 else None

    def core(self) -> bytes:
        doc = {
            "features": self.features.core(), "moves": self.moves.core(), "ids": self.ids.count,
            "offsets": self.offsets, "partition": self.partition, "last_slot": self.last_slot,
        }  # fmt: skip
        return json.dumps(doc, separators=(",", ":")).encode()

    def restore_core(self, data: bytes) -> None:
        doc = json.loads(data)
        self.features.restore_core(doc["features"])
        self.moves.restore_core(doc["moves"])
        self.ids.count = doc["ids"]
        self.offsets = {int(p): o for p, o in doc["offsets"].items()}
        self.partition = doc["partition"]
        self.last_slot = doc["last_slot"]


class Market:
    """Validation, features and price moves for every symbol of the trades stream."""

    def __init__(self, settings: AgentSettings, codec: Codec, partitions: int = 1) -> None:
        self.settings = settings
        self.codec = codec
        self.inputs = InputDecoder(codec, settings, partitions)
        self.interval_us = int(settings.snapshot_interval_seconds * 1_000_000)
        self.retention_us = int(settings.snapshot_retention_seconds * 1_000_000)
        self.symbols: dict[str, SymbolMarket] = {}
        self.journal = Journal()

    def view(self, symbol: str) -> SymbolMarket | None:
        return self.symbols.get(symbol)

    def _symbol(self, symbol: str) -> SymbolMarket:
        found = self.symbols.get(symbol)
        if found is None:
            found = self.symbols[symbol] = SymbolMarket(symbol, self.settings)
        return found

    def handle(self, messages: Iterable[Inbound], now: int) -> MarketBatch:
        """Process a batch of trade records (single or batch records) in arrival order.

        Args:
            messages: consumed trade records.
            now: wall clock in microseconds (only for the future-timestamp check).
        """
        trades, dead = self.inputs.trades(messages, now)
        out = MarketBatch(dead=dead, misrouted=trades.misrouted)
        groups: dict[str, list[int]] = {}
        for i, symbol in enumerate(trades.symbol):
            groups.setdefault(symbol, []).append(i)
        touched: list[SymbolMarket] = []
        for symbol, rows in groups.items():
            sm = self._symbol(symbol)
            fresh = self._fresh(sm, trades, np.array(rows), out)
            if fresh is None:
                continue
            touched.append(sm)
            if len(fresh):
                self._update(sm, trades, fresh, out)
                out.accepted += len(fresh)
        for sm in touched:
            out.writes.extend(self._writes(sm))
        return out

    def _fresh(self, sm: SymbolMarket, trades: TradeColumns, rows: np.ndarray, out: MarketBatch) -> np.ndarray | None:
        """The rows not applied before (by record offset) and not duplicates (by event id).

        None when every row is a redelivery: the state already has them and nothing changes.
        """
        partitions, offsets = trades.partition[rows], trades.offset[rows]
        keep = np.ones(len(rows), dtype=bool)
        for p in np.unique(partitions).tolist():
            here = partitions == p
            last = sm.offsets.get(p, -1)
            keep &= ~(here & (offsets <= last))  # the records of a batch share their offset
            sm.offsets[p] = max(last, int(offsets[here].max()))
        out.redelivered += int(len(rows) - keep.sum())
        if not keep.any():
            return None
        sm.partition = int(partitions[keep][-1])
        fresh = []
        for i in rows[keep].tolist():
            if sm.ids.add(trades.event_id[i]):
                fresh.append(i)
            else:
                error = f"event_id {trades.event_id[i]} seen"
                out.dead.append(trades.reject(i, self.codec, STAGE_DEDUP, DUPLICATE, error))
        return np.array(fresh, dtype=np.int64)

    def _update(self, sm: SymbolMarket, trades: TradeColumns, rows: np.ndarray, out: MarketBatch) -> None:
        ts = clamp_monotonic(trades.ts[rows], sm.features.last_ts)
        if self.interval_us > 0:
            slots = ts // self.interval_us
            emit = slots != np.concatenate(([sm.last_slot], slots[:-1]))
            sm.last_slot = int(slots[-1])
        else:
            emit = np.ones(len(ts), dtype=bool)
        first_count = sm.features.count

        def on_emit(i: int, values: np.ndarray) -> None:
            count = first_count + i + 1
            snap = Snapshot(int(ts[i]), count, values)
            sm.snap_ts.append(snap.ts)
            sm.snaps.append(snap)
            out.snapshots.append((sm.symbol, self.snapshot_record(sm.symbol, snap)))
            sm.snap_changes[_snap_part(count)] = self._pack(snap)
            for move in sm.moves.check(sm.symbol, sm.features, values):
                out.moves.append((sm.symbol, move))

        sm.features.update(ts, trades.price[rows], trades.size[rows], trades.buy[rows], emit, on_emit)
        horizon = sm.features.last_ts - self.retention_us
        expired = 0
        while expired < len(sm.snaps) - 1 and sm.snaps[expired].ts < horizon:
            sm.snap_changes[_snap_part(sm.snaps[expired].trade_count)] = None
            expired += 1
        if expired:
            del sm.snaps[:expired], sm.snap_ts[:expired]

    @staticmethod
    def snapshot_record(symbol: str, snap: Snapshot) -> dict[str, Any]:
        return {
            "event_id": uuid.uuid5(SNAPSHOT_NAMESPACE, f"{symbol}/{snap.trade_count}").hex,
            "ts": snap.ts,
            "symbol": symbol,
            "spec_version": SIZER_SPEC.version,
            "values": snap.values.tolist(),
            "trade_count": snap.trade_count,
        }

    @staticmethod
    def _pack(snap: Snapshot) -> bytes:
        return _SNAP_HEADER.pack(snap.ts, snap.trade_count) + snap.values.tobytes()

    def _writes(self, sm: SymbolMarket) -> list[Write]:
        """One journal record with every part of ``sm`` this batch changed (atomic per symbol)."""
        parts: dict[str, bytes | None] = {}
        for kind, ring in (("F", sm.features.fine), ("C", sm.features.coarse)):
            rows, gone = ring.take_changes()
            parts.update({f"{kind}{b}": None for b in sorted(gone)})
            parts.update({f"{kind}{b}": data for b, data in rows.items()})
        parts.update({f"D{i}": data for i, data in sm.ids.dirty_chunks().items()})
        parts.update(sm.snap_changes)
        sm.snap_changes = {}
        parts["core"] = sm.core()
        return self.journal.record(sm.partition, sm.symbol, parts)

    def load(self, items: Iterable[tuple[bytes, bytes]], partitions: Collection[int] | None = None) -> None:
        """Rebuild every symbol from persisted keys (a table after changelog recovery).

        With ``partitions``, only symbols whose trades arrive on those partitions: a table can hold
        keys of partitions this worker gave away, and their state is another worker's now.
        """
        self.symbols.clear()
        for symbol, parts in self.journal.load(items).items():
            sm = SymbolMarket(symbol, self.settings)
            sm.restore_core(parts["core"])
            if partitions is not None and sm.partition not in partitions:
                self.journal.forget(symbol)
                continue
            self.symbols[symbol] = sm
            chunks, snapshots = [], []
            for name, value in parts.items():
                if name[0] == "F":
                    sm.features.fine.restore_row(int(name[1:]), value)
                elif name[0] == "C":
                    sm.features.coarse.restore_row(int(name[1:]), value)
                elif name[0] == "D":
                    chunks.append((int(name[1:]), value))
                elif name[0] == "S":
                    snapshots.append((name, value))
            sm.ids.restore(sm.ids.count, chunks)
            for _, value in sorted(snapshots):
                ts, count = _SNAP_HEADER.unpack_from(value)
                values = np.frombuffer(value, dtype=np.float64, offset=_SNAP_HEADER.size).copy()
                sm.snaps.append(Snapshot(ts, count, values))
                sm.snap_ts.append(ts)
