"""What the trainer's ingested stores share: a durable SQLite file with offsets and counters.

The replay store (:mod:`trainers.store.replay`) and the allocation store
(:mod:`trainers.store.allocation`) keep different rows but the same promise to
:class:`trainers.store.ingest.Ingestor`: rows and the next Kafka offsets are written in one
transaction that is durable before the consumer commits (WAL, ``synchronous=FULL``). This base
class holds that promise once: the connection, the ``offsets`` and ``counters`` tables, and the
write transaction; a subclass adds its own tables (``SCHEMA``) and what it reads and writes.

Example:
    >>> class Notes(SqliteStore):                                      # doctest: +SKIP
    ...     SCHEMA, FILENAME, WHAT = "CREATE TABLE IF NOT EXISTS notes (n TEXT);", "notes.sqlite", "notes"
    >>> with Notes.open(data_dir) as notes:                             # doctest: +SKIP
    ...     notes.offsets("tradeloop.notes")
    {}
"""

from __future__ import annotations

import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Final, Self

from streams.datadir import DataDir
from trainers.errors import ReplayStoreError

__all__ = ["SqliteStore", "WriteResult"]

# The tables every ingested store has: the consumer's next offsets and named counters (``seq``
# numbers stored rows in ingest order; the triggers count new rows with it).
_COMMON_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS offsets (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What one :meth:`SqliteStore.write` did with its records."""

    inserted: int = 0
    corrected: int = 0
    duplicates: int = 0
    censored: int = 0


class SqliteStore(ABC):
    """A durable SQLite store with offsets and counters. One instance per thread (SQLite connections are).

    Subclasses set ``SCHEMA`` (their own tables), ``FILENAME`` (under ``<data_dir>/replay/``) and
    ``WHAT`` (names the store in errors), and implement :meth:`_insert` and :meth:`count_since`.
    """

    SCHEMA: ClassVar[str]
    FILENAME: ClassVar[str]
    WHAT: ClassVar[str]

    def __init__(self, path: Path, timeout: float = 30.0) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, timeout=timeout, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed transaction survives power loss, so committing offsets after it is safe.
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(self.SCHEMA + _COMMON_SCHEMA)
        except sqlite3.Error as exc:
            raise ReplayStoreError(f"cannot open {self.WHAT} {path}: {exc}") from exc

    @classmethod
    def open(cls, data_dir: Path) -> Self:
        """The store of a data directory (``<data_dir>/replay/<FILENAME>``)."""
        return cls(DataDir(data_dir).replay / cls.FILENAME)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing -----------------------------------------------------------------------------

    def write(
        self,
        records: Sequence[Mapping[str, Any]],
        offsets: Mapping[tuple[str, int], int] | None = None,
        rejected: Mapping[str, int] | None = None,
    ) -> WriteResult:
        """Store valid ``records`` and the consumer's next ``offsets`` in one durable transaction.

        Args:
            records: records that passed the store's validation (see :mod:`trainers.store.ingest`).
            offsets: next offset to read per (full topic, partition), committed with the rows.
            rejected: counts of records rejected by reason, kept as counters.

        Raises:
            ReplayStoreError: SQLite failed; neither rows nor offsets were stored.
        """
        with self._transaction(f"{self.WHAT} write failed"):
            result, counts = self._insert(records)
            self._save_offsets(offsets or {})
            self._bump({**counts, **{f"rejected:{reason}": n for reason, n in (rejected or {}).items()}})
        return result

    @abstractmethod
    def _insert(self, records: Sequence[Mapping[str, Any]]) -> tuple[WriteResult, dict[str, int]]:
        """Insert or replace rows inside :meth:`write`'s transaction.

        Returns:
            What happened, and the counters to add (``seq`` by the number of rows stored).
        """

    @contextmanager
    def _transaction(self, failure: str) -> Iterator[None]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on any error.

        Raises:
            ReplayStoreError: SQLite failed (``failure: <error>``); nothing of the block is stored.
        """
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise ReplayStoreError(f"{failure}: {exc}") from exc

    def _counter(self, name: str) -> int:
        row = self._db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    def _bump(self, counts: Mapping[str, int]) -> None:
        self._db.executemany(
            "INSERT INTO counters (name, value) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
            [(k, v) for k, v in counts.items() if v],
        )

    def _save_offsets(self, offsets: Mapping[tuple[str, int], int]) -> None:
        """Store the consumer's next offsets (inside the rows' transaction); they never go back."""
        self._db.executemany(
            "INSERT INTO offsets VALUES (?, ?, ?) ON CONFLICT(topic, partition) "
            "DO UPDATE SET next_offset = max(next_offset, excluded.next_offset)",
            [(t, p, o) for (t, p), o in offsets.items()],
        )

    # -- reading -----------------------------------------------------------------------------

    def offsets(self, topic: str) -> dict[int, int]:
        """The next offset to read per partition of full ``topic``, as stored with the rows."""
        rows = self._db.execute("SELECT partition, next_offset FROM offsets WHERE topic = ?", (topic,))
        return {int(p): int(o) for p, o in rows.fetchall()}

    def max_seq(self) -> int:
        """The ingest sequence number of the newest stored (or replaced) row."""
        return self._counter("seq")

    @abstractmethod
    def count_since(self, seq: int) -> int:
        """Rows stored after ingest sequence ``seq`` that training would use (the triggers count them)."""

    def counters(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self._db.execute("SELECT name, value FROM counters")}
