"""The allocation store: a durable store of allocation periods, and their validation.

The store is a sibling of the replay store, ``<data_dir>/replay/allocation_periods.sqlite``
(:class:`trainers.store.sqlite.SqliteStore`: SQLite, WAL, ``synchronous=FULL``), with the same
guarantees: one row per ``(portfolio, period_start)``; a re-delivered period is a duplicate and changes nothing; the next offsets of the
allocation-periods topic are written in the same transaction as the rows, so
:class:`trainers.store.ingest.Ingestor` restarts exactly where the data ends. The allocator's training
pairs are built from its periods by :mod:`trainers.allocator.pairs`.

Example:
    >>> store = AllocationStore(Path(tmp) / "periods.sqlite")              # doctest: +SKIP
    >>> store.write([period], {("tradeloop.allocation-periods", 0): 1})    # doctest: +SKIP
    WriteResult(inserted=1, corrected=0, duplicates=0, censored=0)
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

from streams.clock import now_us
from streams.datadir import DataDir
from trainers.allocator.env import N_MARKET, N_PORTFOLIO, N_REGIME
from trainers.store.sqlite import SqliteStore, WriteResult

__all__ = ["AllocationStore", "validate_period"]

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS periods (
    portfolio TEXT NOT NULL, period_start INTEGER NOT NULL, ts INTEGER NOT NULL,
    event_id TEXT NOT NULL, record TEXT NOT NULL, ingested_us INTEGER NOT NULL, seq INTEGER NOT NULL,
    PRIMARY KEY (portfolio, period_start)
);
CREATE INDEX IF NOT EXISTS periods_ts ON periods (ts);
CREATE INDEX IF NOT EXISTS periods_seq ON periods (seq);
"""
_FIXED: Final = {"market": N_MARKET, "portfolio_state": N_PORTFOLIO, "regime": N_REGIME}
_PER_STRATEGY: Final = ("strategy_returns", "strategy_sharpe", "strategy_drawdown")


def _finite(values: Any) -> bool:
    return all(isinstance(v, int | float) and math.isfinite(v) for v in values)


def validate_period(record: Mapping[str, Any]) -> str | None:
    """The reason ``record`` (an AllocationPeriod) cannot be stored, or None."""
    strategies = record.get("strategies")
    if not isinstance(strategies, Sequence) or not strategies or len(set(strategies)) != len(strategies):
        return "bad_strategies"
    for name, size in _FIXED.items():
        values = record.get(name)
        if not isinstance(values, Sequence) or len(values) != size:
            return f"{name}_size"
    for name in _PER_STRATEGY:
        values = record.get(name)
        if not isinstance(values, Sequence) or len(values) != len(strategies):
            return f"{name}_size"
    if not all(_finite(record[name]) for name in (*_FIXED, *_PER_STRATEGY)):
        return "non_finite"
    if not (isinstance(record.get("period_seconds"), int | float) and record["period_seconds"] > 0):
        return "bad_period"
    return None


class AllocationStore(SqliteStore):
    """Durable, de-duplicating store of AllocationPeriod records. One instance per thread.

    :meth:`open` finds it at ``<data_dir>/replay/allocation_periods.sqlite``.
    """

    SCHEMA = _SCHEMA
    FILENAME = DataDir.PERIODS
    WHAT = "allocation store"

    def _insert(self, records: Sequence[Mapping[str, Any]]) -> tuple[WriteResult, dict[str, int]]:
        """Insert periods not stored yet; a period already held is a duplicate and changes nothing."""
        seq = self._counter("seq")
        ingested, inserted, duplicates = now_us(), 0, 0
        for record in records:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO periods VALUES (?, ?, ?, ?, ?, ?, ?)",
                (record["portfolio"], int(record["period_start"]), int(record["ts"]),
                 record["event_id"], json.dumps(dict(record)), ingested, seq + 1),
            )  # fmt: skip
            if cursor.rowcount:
                seq += 1
                inserted += 1
            else:
                duplicates += 1
        counts = {"seq": inserted, "inserted": inserted, "duplicates": duplicates}
        return WriteResult(inserted=inserted, duplicates=duplicates), counts

    def enforce_retention(self, max_rows: int) -> int:
        """Delete the oldest periods beyond ``max_rows``; returns how many were deleted."""
        excess = self.count() - max_rows
        if excess <= 0:
            return 0
        self._db.execute(
            "DELETE FROM periods WHERE rowid IN (SELECT rowid FROM periods ORDER BY ts LIMIT ?)", (excess,)
        )
        self._bump({"retention_deleted": excess})
        return excess

    def count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM periods").fetchone()[0])

    def count_since(self, seq: int) -> int:
        """Periods stored after ingest sequence ``seq`` (the allocator's new-data trigger counts them)."""
        return int(self._db.execute("SELECT count(*) FROM periods WHERE seq > ?", (seq,)).fetchone()[0])

    def periods(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The newest ``limit`` periods (all when None) as records, oldest first."""
        rows = self._db.execute(
            "SELECT record FROM (SELECT record, ts, portfolio FROM periods "
            "ORDER BY ts DESC, portfolio DESC LIMIT ?) ORDER BY ts, portfolio",
            (-1 if limit is None else limit,),
        ).fetchall()
        return [json.loads(r[0]) for r in rows]

    def stats(self) -> dict[str, Any]:
        first, last = self._db.execute("SELECT min(ts), max(ts) FROM periods").fetchone()
        portfolios = dict(self._db.execute("SELECT portfolio, count(*) FROM periods GROUP BY portfolio"))
        return {"path": str(self.path), "periods": self.count(), "first_ts": first, "last_ts": last,
                "portfolios": portfolios, "counters": self.counters()}  # fmt: skip
