"""Sizing request -> decision over the bus, at a steady 1,000 requests/s through the embedded broker.

One inference worker runs as its own process (``python -m agents.inference.worker``), as in
production; this process plays the engine: it produces requests at a steady rate and times each
one from just before produce to the moment its decision is consumed. The baseline, in the same
process and broker, is a bare produce -> consume round trip on a topic with no worker in between.

Two facts about the embedded broker (Tansu 0.6, memory storage) shape the numbers:

* it answers a fetch only when ``fetch.wait.max.ms`` expires (it does not wake a waiting fetch
  when data arrives), so every consumer on the request path sets it low: the worker's request
  reader (``inference.request_fetch_wait_ms``, 5 ms) and the engine's decision reader here (5 ms);
* its produce -> consume latency grows with the number of record batches in a partition (about
  +10 ms per 1,000 single-record batches, then seconds past ~5,000). At 1,000 requests/s with
  linger 0 that is reached within seconds per partition, so each run uses fresh topics and lasts
  ``--seconds`` (default 5); the per-second p99 in the JSON shows the drift. ``--repro`` runs the
  plain confluent-kafka reproduction of that growth (no tradeloop code). Apache Kafka has no such
  growth.

    python bench/bus_latency.py --json out.json [--rate 1000 --seconds 5]
    python bench/bus_latency.py --repro

Target (DESIGN.md section 8): p99 <= 20 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.unit.inference

from agents.inference.rollout import RolloutWatcher
from streams.admin import create_topics
from streams.broker import EmbeddedBroker, free_port
from streams.clock import new_event_id, now_us
from streams.consumer import EventConsumer
from streams.producer import EventProducer
from streams.serving.follow import poll_now
from streams.settings import Settings
from streams.topics import SIZING_DECISIONS, SIZING_REQUESTS, TopicSpec
from tests.unit.inference.harness import publish, request_record
from tests.unit.inference.model_factory import sizer_update

FETCH_WAIT_MS = 5
ROUND_TRIP = "bench-round-trip"  # the baseline's own topic: same partitions, same record bytes


def paced(rate: float, seconds: float, send: Any, label: str) -> int:
    """Call ``send(i)`` ``rate`` times a second for ``seconds``; returns how many were sent.

    Progress is one plain line per second: a live progress bar re-renders on a thread and holds
    the GIL for milliseconds, which would show up in the very latencies measured here.
    """
    total = int(rate * seconds)
    start = time.perf_counter()
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        send(i)
        if i and i % int(rate) == 0:
            print(f"{label}: {i}/{total} sent, {i / (time.perf_counter() - start):,.0f}/s", flush=True)
    return total


class Collector:
    """Reads a topic from its end and stamps the arrival time of each key."""

    def __init__(self, settings: Settings, topic: str, decode: bool) -> None:
        self.consumer = EventConsumer(
            settings, f"bench-{new_event_id()[:6]}", "bench", config={"fetch.wait.max.ms": FETCH_WAIT_MS}
        )
        self.consumer.assign_all([topic], from_beginning=False)
        self.decode = decode
        self.arrived: dict[str, float] = {}
        self.worker_latency_us: list[int] = []
        self.legs_ms: list[tuple[float, float]] = []  # (request -> decision made, decision made -> consumed)
        self.per_second_p99: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for message in poll_now(self.consumer, 1000, 0.01):
                now = time.perf_counter()
                wall_us = now_us()
                key = (message.key() or b"").decode()
                self.arrived.setdefault(key, now)
                if self.decode:
                    record = self.consumer.decode(message)
                    self.worker_latency_us.append(record["latency_us"])
                    self.legs_ms.append(
                        ((record["ts"] - record["request_ts"]) / 1e3, (wall_us - record["ts"]) / 1e3)
                    )

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
        self.consumer.close()


def measure(settings: Settings, topic: str, record_topic: str, decode: bool, rate: float, seconds: float,
            label: str) -> tuple[np.ndarray, Collector, int]:  # fmt: skip
    collector = Collector(settings, topic, decode)
    producer = EventProducer(settings, "bench-engine", config={"linger.ms": 0})
    sent: dict[str, float] = {}
    time.sleep(1.0)  # let the collector's assignment settle

    def send(i: int) -> None:
        signal_id = f"b{i}-{uuid.uuid4().hex[:6]}"
        record = request_record(signal_id, "bench-engine", score=0.6)
        value = producer.codec.encode(SIZING_REQUESTS, record)
        sent[signal_id] = time.perf_counter()
        producer.send_raw(record_topic, signal_id, value)
        producer.poll(0)

    total = paced(rate, seconds, send, label)
    producer.flush(30.0)
    deadline = time.monotonic() + 10.0
    while len(collector.arrived) < total and time.monotonic() < deadline:
        time.sleep(0.05)
    collector.close()
    latencies = np.array(
        [(collector.arrived[k] - t) * 1e3 for k, t in sent.items() if k in collector.arrived]
    )
    collector.per_second_p99 = [  # sent is in send order: one window per second of sending
        float(np.percentile(window, 99))
        for window in np.array_split(latencies, max(1, int(seconds)))
        if len(window)
    ]
    return latencies, collector, total - len(latencies)


def start_worker(settings: Settings, log_dir: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "TRADELOOP_KAFKA_BOOTSTRAP": settings.bootstrap,
        "TRADELOOP_TOPIC_PREFIX": settings.topic_prefix,
        "TRADELOOP_METRICS_ENABLED": "false",
        "TRADELOOP_LOG_LEVEL": "WARNING",
        "TRADELOOP_INFERENCE__CANARY_SHARE": "0",
    }
    log = (log_dir / "worker.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "agents.inference.worker"], env=env, stdout=log, stderr=log
    )


def run(settings: Settings, rate: float, seconds: float, console: Console) -> dict[str, Any]:
    create_topics(settings)
    create_topics(settings, (TopicSpec(ROUND_TRIP, "SizingRequest", "signal_id"),))
    publish(settings, sizer_update("bench", settings.signing_key(), seed=3))
    with tempfile.TemporaryDirectory() as tmp:
        worker = start_worker(settings, Path(tmp))
        try:
            with RolloutWatcher(settings) as watcher:
                if not watcher.wait_for("sizer", "bench", workers=1, timeout=30.0):
                    raise SystemExit(
                        f"worker did not come up: {(Path(tmp) / 'worker.log').read_text()[-2000:]}"
                    )
            time.sleep(4.0)  # the group join (about half of session.timeout.ms on Tansu)
            bare, _, bare_lost = measure(
                settings, ROUND_TRIP, ROUND_TRIP, False, rate, seconds, "bare round trip"
            )
            bus, collector, lost = measure(
                settings, SIZING_DECISIONS, SIZING_REQUESTS, True, rate, seconds, "request -> decision"
            )
        finally:
            worker.terminate()
            worker.wait(30)
    inside = collector.worker_latency_us
    to_worker = [a for a, _ in collector.legs_ms]
    from_worker = [b for _, b in collector.legs_ms]
    return {
        "to_worker_p50_ms": float(np.percentile(to_worker, 50)),
        "to_worker_p99_ms": float(np.percentile(to_worker, 99)),
        "from_worker_p50_ms": float(np.percentile(from_worker, 50)),
        "from_worker_p99_ms": float(np.percentile(from_worker, 99)),
        "bus_p50_ms": float(np.percentile(bus, 50)),
        "bus_p99_ms": float(np.percentile(bus, 99)),
        "bus_max_ms": float(bus.max()),
        "requests": int(rate * seconds),
        "unanswered": lost,
        "rate_per_s": rate,
        "partitions": settings.partitions,
        "worker_p99_us": float(np.percentile(inside, 99)) if inside else None,
        "bare_p50_ms": float(np.percentile(bare, 50)),
        "bare_p99_ms": float(np.percentile(bare, 99)),
        "bare_lost": bare_lost,
        "ratio_p99_vs_bare": float(np.percentile(bus, 99) / np.percentile(bare, 99)),
        "bus_p99_ms_per_second": collector.per_second_p99,
    }


def repro(seconds: int = 10) -> None:
    """Plain confluent-kafka: one partition, 1,000 single-record batches/s, latency per second."""
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    with EmbeddedBroker(port=free_port()) as broker:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        admin.create_topics([NewTopic("repro", 1, 1)])["repro"].result()
        time.sleep(1.0)
        consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "r", "fetch.wait.max.ms": 5})
        consumer.assign([TopicPartition("repro", 0, -1)])
        producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0})
        sent: dict[bytes, float] = {}
        got: dict[bytes, float] = {}
        stop = threading.Event()

        def read() -> None:
            while not stop.is_set():
                for message in consumer.consume(1000, 0.005):
                    if message.error() is None:
                        got[message.key() or b""] = time.perf_counter()

        reader = threading.Thread(target=read)
        reader.start()
        time.sleep(1.0)
        start = time.perf_counter()
        for i in range(1000 * seconds):
            delay = start + i / 1000 - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            key = str(i).encode()
            sent[key] = time.perf_counter()
            producer.produce("repro", key=key, value=b"x" * 200)
            producer.poll(0)
        producer.flush(30)
        time.sleep(3.0)
        stop.set()
        reader.join()
        consumer.close()
    for second in range(seconds):
        keys = [str(i).encode() for i in range(second * 1000, (second + 1) * 1000)]
        lat = [(got[k] - sent[k]) * 1e3 for k in keys if k in got]
        p50 = f"{np.percentile(lat, 50):8.1f}" if lat else "     n/a"
        print(f"second {second:2d} ({(second + 1) * 1000:5d} batches): p50 {p50} ms, {len(lat)}/1000 arrived")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--rate", type=float, default=1000.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each run")
    parser.add_argument("--partitions", type=int, default=3, help="partitions of the bench's topics")
    parser.add_argument("--repro", action="store_true", help="only run the plain-client Tansu reproduction")
    args = parser.parse_args()
    if args.repro:
        repro()
        return
    console = Console()
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    existing = os.environ.get("TRADELOOP_KAFKA_BOOTSTRAP")
    if existing:
        settings = Settings(kafka_bootstrap=existing, topic_prefix=prefix, partitions=args.partitions)
        results = run(settings, args.rate, args.seconds, console)
    else:
        with EmbeddedBroker(port=free_port()) as broker:
            settings = Settings(
                kafka_bootstrap=broker.bootstrap, topic_prefix=prefix, partitions=args.partitions
            )
            results = run(settings, args.rate, args.seconds, console)
    table = Table("measure", "request -> decision", "bare produce -> consume", "target",
                  title=f"sizing over the bus at {args.rate:,.0f}/s")  # fmt: skip
    table.add_row("p50 (ms)", f"{results['bus_p50_ms']:.2f}", f"{results['bare_p50_ms']:.2f}", "")
    table.add_row("p99 (ms)", f"{results['bus_p99_ms']:.2f}", f"{results['bare_p99_ms']:.2f}", "<= 20")
    table.add_row("unanswered", str(results["unanswered"]), str(results["bare_lost"]), "0")
    table.add_row("in-worker p99 (us)", f"{results['worker_p99_us']:.0f}", "", "")
    table.add_row("request -> decided p50/p99 (ms)",
                  f"{results['to_worker_p50_ms']:.2f} / {results['to_worker_p99_ms']:.2f}", "", "")  # fmt: skip
    table.add_row("decided -> consumed p50/p99 (ms)",
                  f"{results['from_worker_p50_ms']:.2f} / {results['from_worker_p99_ms']:.2f}", "", "")  # fmt: skip
    console.print(table)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
