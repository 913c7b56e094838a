"""The replay store: every experience the trainer has seen, durable on disk (SQLite in WAL mode).

One row per ``signal_id``. A record replaces the stored row only when its ``revision`` is higher
(a CORRECTION, revision 1, replaces the CENSORED row, revision 0); an equal or lower revision is
a duplicate and changes nothing, so re-delivered messages never duplicate a row. The Kafka
offsets of the experiences topic are written in the same transaction as the rows: after a crash
the store restarts exactly where its data ends, and the consumer commits to Kafka only after that
transaction is durable (``synchronous=FULL``).

Censored rows (no outcome, so no reward) are stored and counted but never trained or evaluated
on; :meth:`ReplayStore.trainable` leaves them out.

Example:
    >>> store = ReplayStore(Path(tmp) / "replay.sqlite")            # doctest: +SKIP
    >>> store.write([record], {("tradeloop.experiences", 0): 1})     # doctest: +SKIP
    WriteResult(inserted=1, corrected=0, duplicates=0, censored=0)
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from streams.clock import now_us
from streams.datadir import DataDir
from streams.features import SIZER_SPEC
from trainers.store.sqlite import SqliteStore, WriteResult

__all__ = ["COLUMNS", "ExperienceArrays", "ReplayStore", "validate_experience"]

# Stored columns in order; ``state`` is a float64 blob, ``validation_flags`` JSON text.
COLUMNS: Final = (
    "signal_id", "revision", "status", "ts", "event_id", "strategy", "family", "portfolio",
    "symbol", "side", "score", "feature_spec_version", "state", "snapshot_ts", "action",
    "model_version", "return_unit", "pnl", "outcome_ts", "premium", "completeness",
    "validation_flags", "profitability", "priority", "integrity_hash", "ingested_us", "seq",
)  # fmt: skip

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS experiences (
    signal_id TEXT PRIMARY KEY, revision INTEGER NOT NULL, status TEXT NOT NULL,
    ts INTEGER NOT NULL, event_id TEXT NOT NULL, strategy TEXT NOT NULL, family TEXT NOT NULL,
    portfolio TEXT NOT NULL, symbol TEXT NOT NULL, side TEXT NOT NULL, score REAL NOT NULL,
    feature_spec_version TEXT NOT NULL, state BLOB NOT NULL, snapshot_ts INTEGER,
    action REAL NOT NULL, model_version TEXT, return_unit REAL, pnl REAL, outcome_ts INTEGER,
    premium INTEGER NOT NULL, completeness REAL NOT NULL, validation_flags TEXT NOT NULL,
    profitability REAL NOT NULL, priority REAL NOT NULL, integrity_hash TEXT NOT NULL,
    ingested_us INTEGER NOT NULL, seq INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS experiences_ts ON experiences (ts);
CREATE INDEX IF NOT EXISTS experiences_seq ON experiences (seq);
CREATE INDEX IF NOT EXISTS experiences_model ON experiences (model_version, ts);
"""

_TRAINABLE: Final = "status != 'CENSORED' AND return_unit IS NOT NULL"
_ARRAY_COLUMNS: Final = (
    "signal_id, revision, ts, state, return_unit, score, premium, profitability, action, "
    "model_version, family, seq"
)


def validate_experience(record: Mapping[str, Any]) -> str | None:
    """The reason ``record`` cannot be stored, or None. Reasons are machine-readable codes."""
    if record.get("feature_spec_version") != SIZER_SPEC.version:
        return "feature_spec_mismatch"
    state = record.get("state")
    if not isinstance(state, Sequence) or len(state) != SIZER_SPEC.size:
        return "state_size"
    if not np.all(np.isfinite(np.asarray(state, dtype=np.float64))):
        return "non_finite_state"
    status = record.get("status")
    if status not in ("COMPLETE", "CENSORED", "CORRECTION"):
        return "unknown_status"
    ret = record.get("return_unit")
    if status != "CENSORED" and (ret is None or not np.isfinite(ret)):
        return "missing_return"
    if not np.isfinite(record.get("action", np.nan)):
        return "non_finite_action"
    return None


@dataclass(frozen=True, slots=True)
class ExperienceArrays:
    """Trainable experiences as column arrays, oldest first (chronological)."""

    signal_id: list[str]
    revision: np.ndarray
    ts: np.ndarray
    state: np.ndarray
    return_unit: np.ndarray
    score: np.ndarray
    premium: np.ndarray
    profitability: np.ndarray
    action: np.ndarray
    model_version: list[str | None]
    family: list[str]
    seq: np.ndarray

    def __len__(self) -> int:
        return len(self.signal_id)

    def take(self, index: slice | np.ndarray) -> ExperienceArrays:
        """The rows at ``index`` (a slice or an integer array)."""
        idx = np.arange(len(self))[index]
        return ExperienceArrays(
            signal_id=[self.signal_id[i] for i in idx],
            revision=self.revision[idx],
            ts=self.ts[idx],
            state=self.state[idx],
            return_unit=self.return_unit[idx],
            score=self.score[idx],
            premium=self.premium[idx],
            profitability=self.profitability[idx],
            action=self.action[idx],
            model_version=[self.model_version[i] for i in idx],
            family=[self.family[i] for i in idx],
            seq=self.seq[idx],
        )


def _row(record: Mapping[str, Any], seq: int, ingested: int) -> tuple[Any, ...]:
    state = np.asarray(record["state"], dtype=np.float64).tobytes()
    return (
        record["signal_id"], int(record["revision"]), record["status"], int(record["ts"]),
        record["event_id"], record["strategy"], record["family"], record["portfolio"],
        record["symbol"], record["side"], float(record["score"]), record["feature_spec_version"],
        state, record.get("snapshot_ts"), float(record["action"]), record.get("model_version"),
        record.get("return_unit"), record.get("pnl"), record.get("outcome_ts"),
        int(bool(record["premium"])), float(record["completeness"]),
        json.dumps(list(record.get("validation_flags", []))), float(record["profitability"]),
        float(record["priority"]), record["integrity_hash"], ingested, seq,
    )  # fmt: skip


def _latest_revisions(records: Sequence[Mapping[str, Any]]) -> tuple[dict[str, Mapping[str, Any]], int]:
    """Each signal's highest revision in a batch, and how many earlier copies were duplicates."""
    latest: dict[str, Mapping[str, Any]] = {}
    duplicates = 0
    for record in records:
        held = latest.get(record["signal_id"])
        if held is None or record["revision"] > held["revision"]:
            duplicates += held is not None
            latest[record["signal_id"]] = record
        else:
            duplicates += 1
    return latest, duplicates


class ReplayStore(SqliteStore):
    """Durable, de-duplicating experience store. One instance per thread (SQLite connections are).

    :meth:`open` finds it at ``<data_dir>/replay/experiences.sqlite``.
    """

    SCHEMA = _SCHEMA
    FILENAME = DataDir.EXPERIENCES
    WHAT = "replay store"

    # -- writing -----------------------------------------------------------------------------

    def _insert(self, records: Sequence[Mapping[str, Any]]) -> tuple[WriteResult, dict[str, int]]:
        """Store each signal's highest revision unless the store already holds that revision or a
        higher one (then it is a duplicate): a CORRECTION replaces its CENSORED row."""
        latest, duplicates = _latest_revisions(records)
        stored: dict[str, int] = {}
        ids = list(latest)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            query = f"SELECT signal_id, revision FROM experiences WHERE signal_id IN ({marks})"  # noqa: S608
            stored.update(self._db.execute(query, chunk).fetchall())
        seq = self._counter("seq")
        ingested = now_us()
        rows, inserted, corrected, censored = [], 0, 0, 0
        for signal_id, record in latest.items():
            old = stored.get(signal_id)
            if old is not None and record["revision"] <= old:
                duplicates += 1
                continue
            seq += 1
            rows.append(_row(record, seq, ingested))
            corrected += old is not None
            inserted += old is None
            censored += record["status"] == "CENSORED"
        marks = ",".join("?" * len(COLUMNS))
        self._db.executemany(f"INSERT OR REPLACE INTO experiences VALUES ({marks})", rows)  # noqa: S608
        counts = {
            "seq": seq - self._counter("seq"), "inserted": inserted, "corrected": corrected,
            "duplicates": duplicates, "censored_received": censored,
        }  # fmt: skip
        return WriteResult(inserted, corrected, duplicates, censored), counts

    def enforce_retention(self, max_rows: int, max_age_us: int) -> int:
        """Delete rows older than ``max_age_us`` (event time, before the newest row) and the oldest
        rows beyond ``max_rows``. Returns how many rows were deleted."""
        with self._transaction("retention failed"):
            before = self._db.total_changes
            newest = self._db.execute("SELECT max(ts) FROM experiences").fetchone()[0]
            if newest is not None:
                self._db.execute("DELETE FROM experiences WHERE ts < ?", (newest - max_age_us,))
            excess = self.count() - max_rows
            if excess > 0:
                self._db.execute(
                    "DELETE FROM experiences WHERE signal_id IN "
                    "(SELECT signal_id FROM experiences ORDER BY ts, signal_id LIMIT ?)",
                    (excess,),
                )
            deleted = self._db.total_changes - before
            self._bump({"retention_deleted": deleted})
        return deleted

    # -- reading -----------------------------------------------------------------------------

    def count(self, trainable_only: bool = False) -> int:
        where = f" WHERE {_TRAINABLE}" if trainable_only else ""
        return int(self._db.execute(f"SELECT count(*) FROM experiences{where}").fetchone()[0])  # noqa: S608

    def count_since(self, seq: int) -> int:
        """Trainable rows stored or corrected after ingest sequence ``seq``."""
        query = f"SELECT count(*) FROM experiences WHERE seq > ? AND {_TRAINABLE}"  # noqa: S608
        return int(self._db.execute(query, (seq,)).fetchone()[0])

    def _arrays(self, query: str, params: Sequence[Any]) -> ExperienceArrays:
        rows = self._db.execute(query, params).fetchall()
        n, d = len(rows), SIZER_SPEC.size
        state = np.frombuffer(b"".join(r[3] for r in rows), dtype=np.float64).reshape(n, d)
        return ExperienceArrays(
            signal_id=[r[0] for r in rows],
            revision=np.array([r[1] for r in rows], dtype=np.int64),
            ts=np.array([r[2] for r in rows], dtype=np.int64),
            state=state.copy(),
            return_unit=np.array([r[4] for r in rows], dtype=np.float64),
            score=np.array([r[5] for r in rows], dtype=np.float64),
            premium=np.array([bool(r[6]) for r in rows], dtype=bool),
            profitability=np.array([r[7] for r in rows], dtype=np.float64),
            action=np.array([r[8] for r in rows], dtype=np.float64),
            model_version=[r[9] for r in rows],
            family=[r[10] for r in rows],
            seq=np.array([r[11] for r in rows], dtype=np.int64),
        )

    def trainable(self, limit: int | None = None) -> ExperienceArrays:
        """The newest ``limit`` trainable rows (all when None), oldest first. Censored rows excluded."""
        query = (
            f"SELECT * FROM (SELECT {_ARRAY_COLUMNS} FROM experiences WHERE {_TRAINABLE} "  # noqa: S608
            "ORDER BY ts DESC, signal_id DESC LIMIT ?) ORDER BY ts, signal_id"
        )
        return self._arrays(query, (-1 if limit is None else limit,))

    def served_by(self, model_version: str, limit: int) -> ExperienceArrays:
        """The newest ``limit`` trainable rows whose action came from ``model_version``, oldest first."""
        query = (
            f"SELECT * FROM (SELECT {_ARRAY_COLUMNS} FROM experiences "  # noqa: S608
            f"WHERE model_version = ? AND {_TRAINABLE} ORDER BY ts DESC LIMIT ?) ORDER BY ts"
        )
        return self._arrays(query, (model_version, limit))

    def recent(self, limit: int) -> ExperienceArrays:
        """The newest ``limit`` trainable rows by ingest order, oldest first (for drift checks)."""
        query = (
            f"SELECT * FROM (SELECT {_ARRAY_COLUMNS} FROM experiences WHERE {_TRAINABLE} "  # noqa: S608
            "ORDER BY seq DESC LIMIT ?) ORDER BY ts"
        )
        return self._arrays(query, (limit,))

    def iter_rows(self, batch: int = 10_000) -> Iterator[list[dict[str, Any]]]:
        """Every stored row (censored included) as dicts with ``state`` decoded, in ts order."""
        cursor = self._db.execute(f"SELECT {', '.join(COLUMNS)} FROM experiences ORDER BY ts, signal_id")  # noqa: S608
        while chunk := cursor.fetchmany(batch):
            out = []
            for row in chunk:
                item = dict(zip(COLUMNS, row, strict=True))
                item["state"] = np.frombuffer(item["state"], dtype=np.float64).tolist()
                item["validation_flags"] = json.loads(item["validation_flags"])
                item["premium"] = bool(item["premium"])
                out.append(item)
            yield out

    def stats(self) -> dict[str, Any]:
        """Counts by status, trainable rows, event-time range and data-quality counters."""
        by_status = dict(
            self._db.execute("SELECT status, count(*) FROM experiences GROUP BY status").fetchall()
        )
        first, last, premium = self._db.execute(
            "SELECT min(ts), max(ts), coalesce(sum(premium), 0) FROM experiences"
        ).fetchone()
        mean_ret, sd_ret = self._db.execute(
            f"SELECT avg(return_unit), avg(return_unit * return_unit) FROM experiences WHERE {_TRAINABLE}"  # noqa: S608
        ).fetchone()
        families = dict(
            self._db.execute(
                f"SELECT family, count(*) FROM experiences WHERE {_TRAINABLE} GROUP BY family"  # noqa: S608
            ).fetchall()
        )
        return {
            "path": str(self.path),
            "rows": self.count(),
            "trainable": self.count(trainable_only=True),
            "by_status": by_status,
            "censored": int(by_status.get("CENSORED", 0)),
            "premium": int(premium),
            "first_ts": first,
            "last_ts": last,
            "mean_return_unit": mean_ret,
            "rms_return_unit": float(np.sqrt(sd_ret)) if sd_ret is not None else None,
            "families": families,
            "counters": self.counters(),
        }
