"""Allocation periods for the allocator: a durable store, validation, and training pairs.

The store is a sibling of the replay store, ``<data_dir>/replay/allocation_periods.sqlite``
(:class:`trainers.sqlite_store.SqliteStore`: SQLite, WAL, ``synchronous=FULL``), with the same
guarantees: one row per ``(portfolio, period_start)``; a re-delivered period is a duplicate and changes nothing; the next offsets of the
allocation-periods topic are written in the same transaction as the rows, so
:class:`trainers.ingest.Ingestor` restarts exactly where the data ends.

Training pairs (:func:`build_pairs`): the observation of period ``t`` and the per-strategy returns
of period ``t + 1`` of the same portfolio (consecutive periods only), for one strategy list. A
period that lacks one of the strategies cannot form a pair and is counted, not used.

Example:
    >>> store = AllocationStore(Path(tmp) / "periods.sqlite")              # doctest: +SKIP
    >>> store.write([period], {("tradeloop.allocation-periods", 0): 1})    # doctest: +SKIP
    WriteResult(inserted=1, corrected=0, duplicates=0, censored=0)
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from streams.clock import now_us
from streams.datadir import DataDir
from trainers.allocator_env import N_MARKET, N_PORTFOLIO, N_REGIME, observation
from trainers.sqlite_store import SqliteStore, WriteResult

__all__ = ["AllocationStore", "PeriodPairs", "build_pairs", "choose_strategies", "validate_period"]

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


def choose_strategies(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """The strategy list an allocator trains for: the newest period's (agents keep it sorted)."""
    return list(records[-1]["strategies"]) if records else []


@dataclass(frozen=True, slots=True)
class PeriodPairs:
    """Training pairs in event-time order: state at the end of period t, returns of period t + 1."""

    strategies: list[str]
    obs: np.ndarray  # [n, d] raw observations
    next_returns: np.ndarray  # [n, k]
    trailing_std: np.ndarray  # [n, k] std of each strategy's last W returns up to period t
    ts: np.ndarray  # end of period t
    period_start: np.ndarray  # start of period t + 1 (the period the weights apply to)
    portfolio: list[str]
    skipped: int  # periods that could not form a pair (missing strategy, gap, last period)

    def __len__(self) -> int:
        return len(self.ts)

    def take(self, index: slice) -> PeriodPairs:
        return PeriodPairs(
            self.strategies, self.obs[index], self.next_returns[index], self.trailing_std[index],
            self.ts[index], self.period_start[index], self.portfolio[index], self.skipped,
        )  # fmt: skip

    def data_hash(self) -> str:
        """sha256 over (portfolio, period start) of every pair: identifies a run's exact data."""
        digest = hashlib.sha256("\n".join(self.strategies).encode())
        for name, start in zip(self.portfolio, self.period_start.tolist(), strict=True):
            digest.update(f"{name}\t{start}\n".encode())
        return digest.hexdigest()


def _returns(record: Mapping[str, Any], strategies: Sequence[str]) -> list[float] | None:
    index = {s: i for i, s in enumerate(record["strategies"])}
    if any(s not in index for s in strategies):
        return None
    return [float(record["strategy_returns"][index[s]]) for s in strategies]


def build_pairs(
    records: Sequence[Mapping[str, Any]], strategies: Sequence[str], vol_window: int = 24
) -> PeriodPairs:
    """Consecutive-period pairs of every portfolio for ``strategies``, in event-time order."""
    by_portfolio: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for record in records:
        by_portfolio[record["portfolio"]].append(record)
    rows: list[tuple[int, str, list[float], list[float], list[float], int]] = []
    skipped = 0
    for name, periods in by_portfolio.items():
        periods = sorted(periods, key=lambda r: r["period_start"])
        history: list[list[float]] = []
        for now, nxt in zip(periods, [*periods[1:], None], strict=True):
            own = _returns(now, strategies)
            history = [*history, own][-vol_window:] if own is not None else []
            obs = observation(now, strategies)
            step = round(now["period_seconds"] * 1e6)
            later = None if nxt is None else _returns(nxt, strategies)
            if (
                obs is None
                or later is None
                or nxt is None
                or nxt["period_start"] != now["period_start"] + step
            ):
                skipped += 1
                continue
            trailing = np.std(np.array(history), axis=0) if len(history) >= 2 else np.zeros(len(strategies))
            rows.append((int(now["ts"]), name, obs, later, trailing.tolist(), int(nxt["period_start"])))
    rows.sort(key=lambda r: (r[0], r[1]))
    k, d = len(strategies), 2 * len(strategies) + N_MARKET + N_PORTFOLIO + N_REGIME
    return PeriodPairs(
        strategies=list(strategies),
        obs=np.array([r[2] for r in rows], dtype=np.float64).reshape(len(rows), d),
        next_returns=np.array([r[3] for r in rows], dtype=np.float64).reshape(len(rows), k),
        trailing_std=np.array([r[4] for r in rows], dtype=np.float64).reshape(len(rows), k),
        ts=np.array([r[0] for r in rows], dtype=np.int64),
        period_start=np.array([r[5] for r in rows], dtype=np.int64),
        portfolio=[r[1] for r in rows],
        skipped=skipped,
    )
