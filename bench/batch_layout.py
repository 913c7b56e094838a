"""Batch record layout: decode cost per event of parallel arrays against an array of records.

For each input topic, 500 events are encoded three ways and decoded to what the worker's handler
needs (columns of numbers for trades, one dict per event for signals and outcomes):

* ``parallel``: the batch schema as shipped (``TradeBatch``: one array per field);
* ``records``: an array of the single-event records;
* ``single``: one single-event record per event (what an engine that does not batch sends).

CPU time per event, best of ``--repeat`` passes (the least disturbed on a shared machine). Trades
carry the volume and decode to columns, where parallel arrays save a per-event dict; signals and
outcomes decode to one dict per event either way, so their two layouts cost the same within this
benchmark's noise (a few percent) and one layout rule serves every topic.

    python bench/batch_layout.py --json bench/results/batch_layout.json
"""

from __future__ import annotations

import argparse
import copy
import io
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python bench/batch_layout.py`: the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import fastavro
import numpy as np

from bench._report import report
from bench.stream_throughput import joins, trades
from streams.avro.batches import to_columns, to_rows
from streams.avro.codec import Codec
from streams.avro.schemas import SchemaRegistry, strip_logical_types
from streams.topics import OUTCOMES, SIGNALS, TRADES

N = 500


def cpu_us_per_event(fn: Callable[[], Any], repeat: int, inner: int = 20) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        for _ in range(inner):
            fn()
        best = min(best, (time.process_time() - start) / inner / N * 1e6)
    return best


def measure(topic: str, records: list[dict[str, Any]], repeat: int) -> dict[str, float]:
    codec = Codec()
    registry = SchemaRegistry.default()
    single = strip_logical_types(registry.for_topic(topic).json)
    array = fastavro.parse_schema({"type": "record", "name": "AsRecords", "namespace": "bench",
                                   "fields": [{"name": "events", "type": {"type": "array", "items": copy.deepcopy(single)}}]})  # fmt: skip
    packed = io.BytesIO()
    fastavro.schemaless_writer(packed, array, {"events": records})
    as_records = packed.getvalue()
    parallel = codec.encode_batch(topic, to_columns(topic, records))
    singles = [codec.encode(topic, r) for r in records]

    if topic == TRADES:

        def use(rows_or_columns: Any, columns: bool) -> Any:  # what the trades handler builds
            if columns:
                c = rows_or_columns
                return np.array(c["ts"], np.int64), np.array(c["price"]), np.array(c["size"])
            rows = rows_or_columns
            return (np.array([r["ts"] for r in rows], np.int64), np.array([r["price"] for r in rows]),
                    np.array([r["size"] for r in rows]))  # fmt: skip
    else:

        def use(rows_or_columns: Any, columns: bool) -> Any:  # the join wants one dict per event
            return to_rows(topic, rows_or_columns) if columns else rows_or_columns

    return {
        "parallel_us": cpu_us_per_event(lambda: use(codec.decode_any(topic, parallel)[0], True), repeat),
        "records_us": cpu_us_per_event(
            lambda: use(fastavro.schemaless_reader(io.BytesIO(as_records), array, None)["events"], False),
            repeat,
        ),
        "single_us": cpu_us_per_event(lambda: use([codec.decode(topic, v) for v in singles], False), repeat),
        "parallel_bytes_per_event": len(parallel) / N,
        "records_bytes_per_event": len(as_records) / N,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    join_events = joins(N, 8, 10**9)
    data = {
        TRADES: [r for _, _, r in trades(N, 8, 50.0)],
        SIGNALS: [r for t, _, r in join_events if t == SIGNALS],
        OUTCOMES: [r for t, _, r in join_events if t == OUTCOMES],
    }
    result: dict[str, Any] = {topic: measure(topic, records, args.repeat) for topic, records in data.items()}
    ratios = {topic: result[topic]["parallel_us"] / result[topic]["records_us"] for topic in data}
    result["trades_parallel_over_records"] = round(ratios[TRADES], 3)
    result["parallel_over_records"] = round(max(ratios.values()), 3)  # the worst topic
    rows = []
    for topic in data:
        r = result[topic]
        rows.append((f"{topic}: parallel arrays (shipped)", f"{r['parallel_us']:.2f} us/event", ""))
        rows.append((f"{topic}: array of records", f"{r['records_us']:.2f} us/event", ""))
        rows.append((f"{topic}: one record per event", f"{r['single_us']:.2f} us/event", ""))
        rows.append(
            (f"{topic}: parallel / records", f"{ratios[topic]:.3f}", "<= 1" if topic == TRADES else "")
        )
    report("batch layout: decode to what the handler needs, CPU per event", rows, result, args.json)


if __name__ == "__main__":
    main()
