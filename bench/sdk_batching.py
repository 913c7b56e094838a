"""The engine SDK's batching: engine CPU, records and latency per event for linger and batch size.

For each (linger_ms, max_events) the engine SDK produces trades paced at ``--rate`` events/s over
``--symbols`` symbols for ``--seconds``, each trade stamped with the wall clock when it was made;
a plain confluent-kafka consumer on the same broker reads them and takes, per event, the time
from its making to its arrival. Reported per setting: the engine's CPU per event (the producing
thread's process time), events per Kafka record, and the p50/p99 of that latency. The defaults
(``batching.linger_ms`` 5, ``max_events`` 500) were chosen from this table: the CPU per event
and the records per second level off there, and the latency stays a few milliseconds above the
broker's own.

    python bench/sdk_batching.py --json bench/results/sdk_batching.json
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python bench/sdk_batching.py`: the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from bench._report import report
from streams.avro.batches import to_rows
from streams.avro.codec import Codec
from streams.clock import now_us
from streams.config.batching import BatchingSettings
from streams.kafka.admin import create_topics
from streams.kafka.broker import EmbeddedBroker, free_port
from streams.kafka.consumer import EventConsumer
from streams.sdk import EngineClient
from streams.settings import Settings
from streams.topics import TRADES

SETTINGS: tuple[tuple[float, int], ...] = ((0.0, 1), (1.0, 50), (5.0, 50), (5.0, 500), (20.0, 500), (5.0, 5000))


def read(settings: Settings, expected: int, latencies: list[int], records: list[int], stop: threading.Event) -> None:
    """Collect the latency of every event until ``expected`` arrived (or ``stop``)."""
    consumer = EventConsumer(settings, f"latency-{uuid.uuid4().hex[:6]}", config={"fetch.wait.max.ms": 5})
    consumer.assign_all([TRADES], from_beginning=True)
    codec = Codec()
    try:
        while len(latencies) < expected and not stop.is_set():
            for message in consumer.poll_batch(1000, 0.05):
                arrived = now_us()
                record, batched = codec.decode_any(TRADES, message.value() or b"")
                made = [r["ts"] for r in to_rows(TRADES, record)] if batched else [record["ts"]]
                latencies.extend(arrived - ts for ts in made)
                records.append(len(made))
    finally:
        consumer.close()


def run_one(base: Settings, linger: float, max_events: int, rate: float, seconds: float, symbols: int) -> dict[str, Any]:
    settings = base.model_copy(update={
        "topic_prefix": f"sb{uuid.uuid4().hex[:6]}.", "batching": BatchingSettings(linger_ms=linger, max_events=max_events),
    })  # fmt: skip
    create_topics(settings)
    n = int(rate * seconds)
    latencies: list[int] = []
    records: list[int] = []
    stop = threading.Event()
    reader = threading.Thread(target=read, args=(settings, n, latencies, records, stop), daemon=True)
    reader.start()
    time.sleep(2.0)  # the reader is assigned before the first event
    names = [f"SYM{i}" for i in range(symbols)]
    engine = EngineClient(settings, client_id="bench-engine")
    cpu = 0.0
    start = time.perf_counter()
    for i in range(n):
        due = start + i / rate
        wait = due - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        t = time.thread_time()
        engine.trade(names[i % symbols], price=100.0, size=1.0, side="BUY", ts=now_us())
        cpu += time.thread_time() - t
    engine.close()
    reader.join(30)
    stop.set()
    lat = np.array(latencies, dtype=np.float64) / 1000.0
    return {
        "linger_ms": linger, "max_events": max_events, "events": n, "received": len(latencies),
        "engine_cpu_us_per_event": round(cpu / n * 1e6, 2),
        "events_per_record": round(len(latencies) / max(1, len(records)), 1),
        "latency_p50_ms": round(float(np.percentile(lat, 50)), 2) if len(lat) else None,
        "latency_p99_ms": round(float(np.percentile(lat, 99)), 2) if len(lat) else None,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=5000.0, help="events/s the engine makes")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--symbols", type=int, default=16)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with EmbeddedBroker(port=free_port()) as broker:
        base = Settings(kafka_bootstrap=broker.bootstrap, metrics_enabled=False)
        results = [run_one(base, linger, size, args.rate, args.seconds, args.symbols) for linger, size in SETTINGS]
    rows = [(f"linger {r['linger_ms']:g} ms, max {r['max_events']}",
             f"{r['engine_cpu_us_per_event']:.1f} us CPU, {r['events_per_record']:.0f} ev/record, "
             f"p50 {r['latency_p50_ms']} / p99 {r['latency_p99_ms']} ms", "") for r in results]  # fmt: skip
    report(f"engine SDK batching at {args.rate:,.0f} events/s", rows, {"settings": results}, args.json)


if __name__ == "__main__":
    main()
