"""Export of the replay store as Parquet or CSV (``tradeloop data export``), streamed in batches.

Parquet keeps ``state`` as a list of doubles and ``validation_flags`` as a list of strings. CSV has
no lists, so ``state`` becomes one column per feature (``state.<name>`` in feature-spec order) and
the flags one ``|``-joined text column. Censored rows are included, with empty returns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from streams.features import SIZER_SPEC
from trainers.store.replay import COLUMNS, ReplayStore

__all__ = ["export_store"]

_TYPES: dict[str, pa.DataType] = {
    "signal_id": pa.string(), "revision": pa.int32(), "status": pa.string(), "ts": pa.int64(),
    "event_id": pa.string(), "strategy": pa.string(), "family": pa.string(), "portfolio": pa.string(),
    "symbol": pa.string(), "side": pa.string(), "score": pa.float64(), "feature_spec_version": pa.string(),
    "state": pa.list_(pa.float64()), "snapshot_ts": pa.int64(), "action": pa.float64(),
    "model_version": pa.string(), "return_unit": pa.float64(), "pnl": pa.float64(), "outcome_ts": pa.int64(),
    "premium": pa.bool_(), "completeness": pa.float64(), "validation_flags": pa.list_(pa.string()),
    "profitability": pa.float64(), "priority": pa.float64(), "integrity_hash": pa.string(),
    "ingested_us": pa.int64(), "seq": pa.int64(),
}  # fmt: skip


def _parquet_table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.table({c: pa.array([r[c] for r in rows], type=_TYPES[c]) for c in COLUMNS})


def _csv_table(rows: list[dict[str, Any]]) -> pa.Table:
    columns: dict[str, pa.Array] = {}
    for c in COLUMNS:
        if c == "state":
            for j, name in enumerate(SIZER_SPEC.names):
                columns[f"state.{name}"] = pa.array([r["state"][j] for r in rows], type=pa.float64())
        elif c == "validation_flags":
            columns[c] = pa.array(["|".join(r[c]) for r in rows], type=pa.string())
        else:
            columns[c] = pa.array([r[c] for r in rows], type=_TYPES[c])
    return pa.table(columns)


def export_store(store: ReplayStore, path: Path, fmt: Literal["csv", "parquet"], batch: int = 20_000) -> int:
    """Write every stored row to ``path``; returns the number of rows written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    build = _parquet_table if fmt == "parquet" else _csv_table
    written = 0
    writer: pq.ParquetWriter | pacsv.CSVWriter | None = None
    try:
        for rows in store.iter_rows(batch):
            table = build(rows)
            if writer is None:
                writer = (
                    pq.ParquetWriter(path, table.schema)
                    if fmt == "parquet"
                    else pacsv.CSVWriter(path, table.schema)
                )
            writer.write_table(table)
            written += len(rows)
        if writer is None:  # an empty store still gets a file with the header / schema
            empty = build([])
            if fmt == "parquet":
                pq.write_table(empty, path)
            else:
                pacsv.write_csv(empty, path)
    finally:
        if writer is not None:
            writer.close()
    return written
