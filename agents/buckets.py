"""Event-time bucket rings: per-symbol rolling aggregates without storing every trade.

A ring keeps ``n`` consecutive buckets of ``width`` microseconds (bucket id = ts // width). Each
bucket holds count, volume, buy volume, price x size, the sum of squared trade-to-trade log
returns, and open/high/low/close. Sums are accumulated strictly left to right (``np.cumsum``), so
the result does not depend on how a stream of trades was cut into batches: replaying the same
trades gives the same bits.

Example:
    >>> ring = Buckets(width=5_000_000, n=3)
    >>> ring.add_run(0, np.array([10.0, 11.0]), np.array([1.0, 2.0]), np.array([1.0, 0.0]), np.zeros(2))
    >>> ring.row(0)[[COUNT, VOLUME, CLOSE]].tolist()
    [2.0, 3.0, 11.0]
"""

from __future__ import annotations

from typing import Final

import numpy as np

__all__ = ["BUY_VOLUME", "CLOSE", "COUNT", "FIELDS", "HIGH", "LOW", "OPEN", "PV", "R2", "VOLUME", "Buckets"]

COUNT, VOLUME, BUY_VOLUME, PV, R2, OPEN, HIGH, LOW, CLOSE = range(9)
FIELDS: Final = 9
_SUMS: Final = [VOLUME, BUY_VOLUME, PV, R2]


class Buckets:
    """A ring of ``n`` event-time buckets ending at bucket id :attr:`head`.

    Attributes:
        carry: close of the newest bucket that left the ring (NaN until one did): the last price
            before the ring's window, which returns over the whole ring are measured from.
    """

    def __init__(self, width: int, n: int) -> None:
        self.width = width
        self.n = n
        self.data = np.zeros((n, FIELDS))
        self.ids = np.full(n, -1, dtype=np.int64)
        self.head = -1
        self.carry = float("nan")
        self.changed: set[int] = set()
        self.evicted: set[int] = set()

    def advance(self, bucket: int) -> None:
        """Make ``bucket`` the head; buckets older than ``bucket - n + 1`` leave the ring."""
        if bucket <= self.head:
            return
        leaving = (self.ids >= 0) & (self.ids <= bucket - self.n)
        if leaving.any():
            newest = int(np.argmax(np.where(leaving, self.ids, -1)))
            self.carry = float(self.data[newest, CLOSE])
            self.evicted.update(int(i) for i in self.ids[leaving])
            self.changed.difference_update(self.evicted)
            self.data[leaving] = 0.0
            self.ids[leaving] = -1
        self.head = bucket

    def add_run(
        self, bucket: int, price: np.ndarray, size: np.ndarray, buy: np.ndarray, r2: np.ndarray
    ) -> None:
        """Add trades that all fall in ``bucket`` (the head), in arrival order."""
        slot = bucket % self.n
        row = self.data[slot]
        if self.ids[slot] != bucket:
            row[:] = 0.0
            row[OPEN] = price[0]
            row[HIGH] = -np.inf
            row[LOW] = np.inf
            self.ids[slot] = bucket
        stacked = np.empty((len(price) + 1, 4))
        stacked[0] = row[_SUMS]
        stacked[1:, 0] = size
        stacked[1:, 1] = size * buy
        stacked[1:, 2] = price * size
        stacked[1:, 3] = r2
        row[_SUMS] = np.cumsum(stacked, axis=0)[-1]  # sequential: independent of batch cuts
        row[COUNT] += len(price)
        row[HIGH] = max(row[HIGH], float(price.max()))
        row[LOW] = min(row[LOW], float(price.min()))
        row[CLOSE] = price[-1]
        self.changed.add(bucket)
        self.evicted.discard(bucket)

    def row(self, bucket: int) -> np.ndarray:
        """The aggregates of ``bucket`` (zeros when it is empty or outside the ring)."""
        slot = bucket % self.n
        if self.ids[slot] != bucket:
            return np.zeros(FIELDS)
        return self.data[slot]

    def ordered(self) -> tuple[np.ndarray, np.ndarray]:
        """Non-empty buckets oldest first: (ids, rows)."""
        order = (np.arange(self.n) + (self.head + 1)) % self.n
        ids = self.ids[order]
        keep = ids >= 0
        return ids[keep], self.data[order][keep]

    def take_changes(self) -> tuple[dict[int, bytes], set[int]]:
        """Buckets written since the last call (id -> row bytes) and ids that left the ring."""
        rows = {b: self.row(b).tobytes() for b in sorted(self.changed)}
        gone = set(self.evicted)
        self.changed.clear()
        self.evicted.clear()
        return rows, gone

    def restore_row(self, bucket: int, data: bytes) -> bool:
        """Put a persisted bucket back; False when it is outside the ring (stale)."""
        if not self.head - self.n < bucket <= self.head:
            return False
        slot = bucket % self.n
        self.data[slot] = np.frombuffer(data, dtype=np.float64)
        self.ids[slot] = bucket
        return True
