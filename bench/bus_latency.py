"""Sizing request -> decision over the bus, against the bare round trip on the same broker, one run.

One inference worker runs as its own process (``python -m agents.inference.worker``), as in
production; this process plays the engine through the SDK: ``EngineClient.request_size_async`` at
a steady ``--rate``, each request timed from just before the call until its future resolves (the
SDK's decision reader has read and matched the decision). The baseline is a bare produce ->
consume round trip on a topic of its own with the same partition count, the same record bytes and
the same client settings as the request path (``streams.sdk.REQUEST_PRODUCER_CONFIG`` producer,
``DECISION_READER_CONFIG`` reader): the broker's own cost for one hop.

The two alternate in windows of ``--window`` seconds (bare, bus, bare, bus, ...) until each has
run ``--seconds``, so both see the same machine: this 2-core machine is shared, and a quiet
second for one and a busy one for the other would otherwise decide the ratio. Each path writes
its own topics, which grow at the same pace. ``--relay`` adds a third path, a plain
confluent-kafka process copying each record from one topic to another (no tradeloop code): the
least any two-hop request path costs on this broker. The JSON also has each process's CPU share
while each path runs.

The embedded broker (Tansu 0.6, memory storage) shapes the numbers in two ways
(``docs/inference.md``, "Latency on the embedded broker"):

* it answers a fetch only when ``fetch.wait.max.ms`` expires, so every consumer on the request
  path sets it low (the worker's request reader, ``inference.request_fetch_wait_ms``, and the
  SDK's decision reader: 5 ms);
* every fetch that finds new data lists every record batch of the partition, and nothing ever
  deletes one, so a hop slows down as its partitions fill: the per-window p99 in the JSON shows
  it. ``--repro`` runs the plain confluent-kafka reproduction (no tradeloop code).

    python bench/bus_latency.py --json out.json [--rate 1000 --seconds 5 --window 1 --relay]
    python bench/bus_latency.py --repro

Target (DESIGN.md section 8): request -> decision within 2.5 x the bare round trip, p50 and p99.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.unit.inference, bench

from agents.inference.rollout import RolloutWatcher
from bench._cluster import add_bootstrap_option, cluster
from bench._report import report
from streams.clock import new_event_id, now_us
from streams.kafka.admin import create_topics
from streams.kafka.broker import EmbeddedBroker, free_port
from streams.kafka.consumer import EventConsumer
from streams.kafka.producer import EventProducer
from streams.sdk import DECISION_READER_CONFIG, REQUEST_PRODUCER_CONFIG, EngineClient, SizingDecision
from streams.settings import Settings
from streams.topics import SIZING_REQUESTS, TopicSpec
from tests.kit.components import component_env, spawn
from tests.kit.inference.harness import ENGINE_VALUES, publish, request_record
from tests.kit.inference.model_factory import sizer_update

ROUND_TRIP = "bench-round-trip"  # the baseline's own topic: partitions like sizing-requests, same bytes
RELAY_IN, RELAY_OUT = "bench-relay-in", "bench-relay-out"  # --relay: a plain two-hop path
TARGET_RATIO = 2.5


class BarePath:
    """Produce to ``send_to``, consume ``read_from``, with the request path's client settings.

    With one topic it is the bare round trip; with ``--relay`` a plain relay process copies each
    record from one topic to another in between: the least any two-hop path costs on this broker.
    """

    def __init__(self, settings: Settings, send_to: str = ROUND_TRIP, read_from: str = ROUND_TRIP) -> None:
        self.send_to = send_to
        self.producer = EventProducer(settings, f"bench-{send_to}", config=REQUEST_PRODUCER_CONFIG)
        self.consumer = EventConsumer(settings, f"bench-{new_event_id()[:6]}", f"bench-{read_from}",
                                      config=DECISION_READER_CONFIG)  # fmt: skip
        self.consumer.assign_all([read_from], from_beginning=False)
        self.arrived: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            for message in self.consumer.poll_batch(1000, 0.01):
                self.arrived.setdefault((message.key() or b"").decode(), time.perf_counter())

    def send(self, key: str, sent: dict[str, float]) -> None:
        value = self.producer.codec.encode(SIZING_REQUESTS, request_record(key, "bench-engine", score=0.6))
        sent[key] = time.perf_counter()
        self.producer.send_raw(self.send_to, key, value)
        self.producer.poll(0)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
        self.producer.flush(10.0)
        self.consumer.close()


def relay_process(bootstrap: str, source: str, target: str) -> None:
    """Copy every record from ``source`` to ``target`` with plain confluent-kafka, as the worker's
    request reader and decision producer are configured (no decoding, no model)."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-relay", "fetch.wait.max.ms": 5,
                         "socket.nagle.disable": True})  # fmt: skip
    partitions = consumer.list_topics(source, timeout=10).topics[source].partitions
    consumer.assign([TopicPartition(source, p, -1) for p in partitions])  # -1: the end
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "enable.idempotence": True,
                         "partitioner": "murmur2_random", "socket.nagle.disable": True})  # fmt: skip
    while True:
        first = consumer.poll(0.05)
        if first is None:
            continue
        for message in [first, *consumer.consume(255, 0)]:
            if message.error() is None:
                producer.produce(target, key=message.key(), value=message.value())
        producer.poll(0)


class BusPath:
    """``EngineClient.request_size_async``: the request path an engine uses."""

    def __init__(self, settings: Settings) -> None:
        self.engine = EngineClient(settings, client_id=f"bench-engine-{new_event_id()[:4]}")
        self.arrived: dict[str, float] = {}
        self.decisions: dict[str, tuple[int, SizingDecision]] = {}  # key -> (request ts, decision)

    def send(self, key: str, sent: dict[str, float]) -> None:
        requested = now_us()
        sent[key] = time.perf_counter()
        future = self.engine.request_size_async(key, strategy="momentum_fast", symbol="SYM", side="BUY",
                                                score=0.6, features=ENGINE_VALUES)  # fmt: skip

        def done(f: Any) -> None:  # runs in the SDK's decision reader, as soon as the future resolves
            self.arrived[key] = time.perf_counter()
            self.decisions[key] = (requested, f.result())

        future.add_done_callback(done)

    def close(self) -> None:
        self.engine.close(10.0)


def paced(rate: float, count: int, send: Callable[[int], None]) -> None:
    """Call ``send(i)`` ``count`` times at ``rate`` a second (a sleep between calls, no busy wait)."""
    start = time.perf_counter()
    for i in range(count):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        send(i)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuShares:
    """CPU used by some processes while each path runs, in % of one core."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = {name: pid for name, pid in pids.items() if Path(f"/proc/{pid}/stat").exists()}
        self.used: dict[tuple[str, str], float] = {}
        self.wall: dict[str, float] = {}

    def measure(self, path: str, run: Callable[[], None]) -> None:
        before = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        started = time.perf_counter()
        run()
        self.wall[path] = self.wall.get(path, 0.0) + time.perf_counter() - started
        for name, pid in self.pids.items():
            self.used[(path, name)] = self.used.get((path, name), 0.0) + cpu_seconds(pid) - before[name]

    def percent(self) -> dict[str, dict[str, float]]:
        return {path: {name: round(100 * self.used[(path, name)] / wall, 1) for name in self.pids}
                for path, wall in self.wall.items()}  # fmt: skip


def interleaved(
    paths: dict[str, Any], rate: float, seconds: float, window: float, cpu: CpuShares | None = None
) -> dict[str, list[np.ndarray]]:
    """Alternate the paths in windows; per path, the latencies (ms) of each window in send order."""
    sent: dict[str, dict[str, float]] = {name: {} for name in paths}
    windows: dict[str, list[list[str]]] = {name: [] for name in paths}
    per_window = int(rate * window)
    for w in range(max(1, round(seconds / window))):
        for name, path in paths.items():
            keys = [f"{name}{w}-{i}-{uuid.uuid4().hex[:6]}" for i in range(per_window)]
            windows[name].append(keys)

            def one_window(p: Any = path, k: list[str] = keys, s: dict[str, float] = sent[name]) -> None:
                paced(rate, per_window, lambda index: p.send(k[index], s))
                time.sleep(0.3)  # let the window's stragglers arrive before the other path starts

            if cpu is None:
                one_window()
            else:
                cpu.measure(name, one_window)
        print(f"window {w + 1}: {', '.join(f'{n} {len(paths[n].arrived)}/{len(sent[n])}' for n in paths)}",
              flush=True)  # fmt: skip
    deadline = time.monotonic() + 10.0
    while any(len(p.arrived) < len(sent[n]) for n, p in paths.items()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return {
        name: [np.array([(path.arrived[k] - sent[name][k]) * 1e3 for k in keys if k in path.arrived])
               for keys in windows[name]]
        for name, path in paths.items()
    }  # fmt: skip


def start_worker(settings: Settings, log_dir: Path) -> subprocess.Popen[bytes]:
    env = component_env(
        settings, TRADELOOP_LOG_LEVEL="WARNING", TRADELOOP_INFERENCE__CANARY_SHARE="0",
        TRADELOOP_INFERENCE__SIZING_PARTITIONS=str(settings.inference.sizing_partitions),
        TRADELOOP_INFERENCE__REQUEST_FETCH_WAIT_MS=str(settings.inference.request_fetch_wait_ms),
    )  # fmt: skip
    return spawn(["infer"], env, log_dir / "worker.log")


def percentile(values: Any, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


def run(
    settings: Settings, rate: float, seconds: float, window: float, broker_pid: int | None, relay: bool
) -> dict[str, Any]:
    create_topics(settings)
    extra = (ROUND_TRIP, RELAY_IN, RELAY_OUT) if relay else (ROUND_TRIP,)
    create_topics(
        settings, tuple(TopicSpec(t, "SizingRequest", "signal_id", sizing_path=True) for t in extra)
    )
    publish(settings, sizer_update("bench", settings.signing_key(), seed=3))
    with tempfile.TemporaryDirectory() as tmp:
        worker = start_worker(settings, Path(tmp))
        paths: dict[str, Any] = {"bare": BarePath(settings), "bus": BusPath(settings)}
        relayer = None
        if relay:
            relayer = subprocess.Popen([sys.executable, __file__, "--relay-process", settings.bootstrap,
                                        settings.topic(RELAY_IN), settings.topic(RELAY_OUT)])  # fmt: skip
            paths["relay"] = BarePath(settings, RELAY_IN, RELAY_OUT)
        try:
            with RolloutWatcher(settings) as watcher:
                if not watcher.wait_for("sizer", "bench", workers=1, timeout=30.0):
                    raise SystemExit(
                        f"worker did not come up: {(Path(tmp) / 'worker.log').read_text()[-2000:]}"
                    )
            time.sleep(4.0)  # the worker's group join (about half of session.timeout.ms on Tansu)
            # Warm every path up (connections, producer ids, the SDK's decision reader) untimed.
            interleaved(paths, 100.0, 1.0, 1.0)
            for path in paths.values():
                path.arrived.clear()
            paths["bus"].decisions.clear()
            pids = {"broker": broker_pid, "worker": worker.pid, "engine": os.getpid()}
            if relayer is not None:
                pids["relay"] = relayer.pid
            cpu = CpuShares({name: pid for name, pid in pids.items() if pid is not None})
            latencies = interleaved(paths, rate, seconds, window, cpu)
        finally:
            for path in paths.values():
                path.close()
            worker.terminate()
            worker.wait(30)
            if relayer is not None:
                relayer.kill()
    bare_ms, bus_ms = np.concatenate(latencies["bare"]), np.concatenate(latencies["bus"])
    decided = list(paths["bus"].decisions.values())
    to_worker = [(d.ts - d.latency_us - requested) / 1e3 for requested, d in decided]
    inside = [d.latency_us for _, d in decided]
    requests = int(rate * window) * len(latencies["bus"])
    relayed: dict[str, Any] = {}
    if relay:
        relay_ms = np.concatenate(latencies["relay"])
        relayed = {
            "relay_p50_ms": percentile(relay_ms, 50),
            "relay_p99_ms": percentile(relay_ms, 99),
            "relay_ratio_p50_vs_bare": percentile(relay_ms, 50) / percentile(bare_ms, 50),
            "relay_ratio_p99_vs_bare": percentile(relay_ms, 99) / percentile(bare_ms, 99),
            "relay_p99_ms_per_window": [percentile(w, 99) for w in latencies["relay"]],
        }
    return {
        "bus_p50_ms": percentile(bus_ms, 50),
        "bus_p99_ms": percentile(bus_ms, 99),
        "bus_max_ms": float(bus_ms.max()),
        "bare_p50_ms": percentile(bare_ms, 50),
        "bare_p99_ms": percentile(bare_ms, 99),
        "ratio_p50_vs_bare": percentile(bus_ms, 50) / percentile(bare_ms, 50),
        "ratio_p99_vs_bare": percentile(bus_ms, 99) / percentile(bare_ms, 99),
        "to_worker_p50_ms": percentile(to_worker, 50),
        "to_worker_p99_ms": percentile(to_worker, 99),
        "worker_p50_us": percentile(inside, 50),
        "worker_p99_us": percentile(inside, 99),
        "fallbacks": sum(d.fallback for _, d in decided),
        "requests": requests,
        "unanswered": requests - len(bus_ms),
        "bare_lost": requests - len(bare_ms),
        "rate_per_s": rate,
        "window_s": window,
        "sizing_partitions": settings.inference.sizing_partitions,
        "bus_p99_ms_per_window": [percentile(w, 99) for w in latencies["bus"]],
        "bare_p99_ms_per_window": [percentile(w, 99) for w in latencies["bare"]],
        **relayed,
        "cpu_percent_while": cpu.percent(),
        "load_average_1m": os.getloadavg()[0],
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
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds each path is measured")
    parser.add_argument("--window", type=float, default=1.0, help="seconds per window before switching path")
    parser.add_argument(
        "--partitions", type=int, default=None, help="partitions of the request path's topics "
        "(default: inference.sizing_partitions); the baseline's topic gets as many",
    )  # fmt: skip
    parser.add_argument(
        "--relay", action="store_true", help="also time a plain two-hop relay (no tradeloop code)"
    )
    parser.add_argument(
        "--relay-process", nargs=3, metavar=("BOOTSTRAP", "SOURCE", "TARGET"), help=argparse.SUPPRESS
    )
    parser.add_argument("--repro", action="store_true", help="only run the plain-client Tansu reproduction")
    add_bootstrap_option(parser)
    args = parser.parse_args()
    if args.relay_process:
        relay_process(*args.relay_process)
        return
    if args.repro:
        repro()
        return
    prefix = f"bench{uuid.uuid4().hex[:6]}."

    def configured(bootstrap: str) -> Settings:
        # TRADELOOP_INFERENCE__* from the environment apply (to this process and the worker).
        settings = Settings(kafka_bootstrap=bootstrap, topic_prefix=prefix)
        if args.partitions is None:
            return settings
        inference = settings.inference.model_copy(update={"sizing_partitions": args.partitions})
        return settings.model_copy(update={"inference": inference})

    with cluster(args.bootstrap) as (bootstrap, broker):
        pid = broker.pid if broker is not None else None
        r = run(configured(bootstrap), args.rate, args.seconds, args.window, pid, args.relay)
    rows = [
        ("request -> decision p50 / p99 (ms)", f"{r['bus_p50_ms']:.2f} / {r['bus_p99_ms']:.2f}", ""),
        ("bare produce -> consume p50 / p99 (ms)", f"{r['bare_p50_ms']:.2f} / {r['bare_p99_ms']:.2f}", ""),
        ("ratio p50", f"{r['ratio_p50_vs_bare']:.2f}", f"<= {TARGET_RATIO}"),
        ("ratio p99", f"{r['ratio_p99_vs_bare']:.2f}", f"<= {TARGET_RATIO}"),
        ("unanswered / bare lost", f"{r['unanswered']} / {r['bare_lost']}", "0"),
        *(
            [("plain relay (two hops, no tradeloop) p50 / p99 (ms)", f"{r['relay_p50_ms']:.2f} / {r['relay_p99_ms']:.2f}", ""),
             ("plain relay ratio p50 / p99", f"{r['relay_ratio_p50_vs_bare']:.2f} / {r['relay_ratio_p99_vs_bare']:.2f}", "")]
            if "relay_p50_ms" in r else []
        ),
        ("request -> worker decided p50 / p99 (ms)", f"{r['to_worker_p50_ms']:.2f} / {r['to_worker_p99_ms']:.2f}", ""),
        ("inside the worker p50 / p99 (us)", f"{r['worker_p50_us']:.0f} / {r['worker_p99_us']:.0f}", ""),
        ("bus p99 per window (ms)", " ".join(f"{v:.0f}" for v in r["bus_p99_ms_per_window"]), ""),
        ("bare p99 per window (ms)", " ".join(f"{v:.0f}" for v in r["bare_p99_ms_per_window"]), ""),
        *((f"CPU while {path} runs (% of a core)", ", ".join(f"{k} {v:.0f}" for k, v in shares.items()), "")
          for path, shares in r["cpu_percent_while"].items()),
    ]  # fmt: skip
    report(
        f"sizing over the bus at {args.rate:,.0f}/s, {r['sizing_partitions']} partitions", rows, r, args.json
    )


if __name__ == "__main__":
    main()
