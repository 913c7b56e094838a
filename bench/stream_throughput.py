"""Stream throughput: trades through validation + features in the Faust worker vs a plain loop; joins/s.

Both sides do the same work with the same pure handler (:class:`agents.market.Market`): consume
raw trade bytes, decode and validate them, update the rolling features, produce snapshots, price
moves and dead letters. The plain loop is one confluent-kafka consume-compute-produce loop in this
process; the worker is ``python -m agents.worker`` in a child process, timed from the outside
through its Prometheus counters (first trade seen -> every trade's batch delivered). Then signals
and outcomes go through the worker's join and joins/s is timed the same way.

    python bench/stream_throughput.py --json bench-stream.json
    python bench/stream_throughput.py --profile /tmp/worker.spy   # py-spy samples of the worker
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from agents.join import Joiner
from agents.market import Market
from agents.validate import Inbound
from streams.admin import create_topics
from streams.broker import EmbeddedBroker, free_port
from streams.codec import Codec
from streams.config.agents import AgentSettings
from streams.consumer import EventConsumer
from streams.features import ENGINE_FEATURES
from streams.producer import EventProducer
from streams.settings import Settings
from streams.topics import DEAD_LETTER, FEATURES, PRICE_MOVES, TRADES

console = Console()
T0 = 1_767_225_600_000_000


def trade_bytes(
    codec: Codec, n: int, symbols: int, per_second: float, seed: int = 1
) -> list[tuple[str, bytes]]:
    """``n`` encoded trades over ``symbols`` symbols, each trading ``per_second`` times per second."""
    rng = np.random.default_rng(seed)
    names = [f"SYM{i}" for i in range(symbols)]
    step = int(1_000_000 / per_second)
    prices = {s: 100.0 for s in names}
    out = []
    for i in range(n):
        symbol = names[i % symbols]
        prices[symbol] *= float(np.exp(rng.normal(0, 0.0005)))
        record = {
            "event_id": f"t{i}", "ts": T0 + (i // symbols) * step + int(rng.integers(0, step)), "symbol": symbol,
            "price": prices[symbol], "size": float(rng.uniform(0.1, 2.0)), "side": "BUY" if i % 3 else "SELL",
        }  # fmt: skip
        out.append((symbol, codec.encode(TRADES, record)))
    return out


def join_events(n: int, symbols: int, span_us: int) -> list[tuple[str, str, dict[str, Any]]]:
    events: list[tuple[str, str, dict[str, Any]]] = []
    for i in range(n):
        ts = T0 + span_us // 5 + (3 * span_us // 5) * i // n  # inside the traded span, in order
        sid = f"bench-{i}"
        symbol = f"SYM{i % symbols}"
        events.append(("signals", sid, {
            "event_id": f"s{i}", "ts": ts, "signal_id": sid, "strategy": f"st{i % 4}", "family": "momentum",
            "portfolio": "main", "symbol": symbol, "side": "BUY", "price": 100.0, "score": 0.5,
            "features": dict.fromkeys(ENGINE_FEATURES, 0.1), "horizon_seconds": 60.0, "action": 1.0,
            "model_version": None,
        }))  # fmt: skip
        events.append(("outcomes", sid, {
            "event_id": f"o{i}", "ts": ts + 10_000_000, "signal_id": sid, "symbol": symbol, "strategy": f"st{i % 4}",
            "entry_price": 100.0, "exit_price": 100.5, "size_multiplier": 1.0, "return_unit": 0.005, "pnl": 0.5,
            "fees": 0.0, "exit_reason": "TIME",
        }))  # fmt: skip
    return events


def settings_env(settings: Settings) -> dict[str, str]:
    """The TRADELOOP_* variables that rebuild ``settings`` in the worker process."""
    env = {
        "TRADELOOP_KAFKA_BOOTSTRAP": settings.bootstrap, "TRADELOOP_TOPIC_PREFIX": settings.topic_prefix,
        "TRADELOOP_PARTITIONS": str(settings.partitions), "TRADELOOP_DATA_DIR": str(settings.data_dir),
        "TRADELOOP_METRICS_PORT": str(settings.metrics_port), "TRADELOOP_LOG_LEVEL": "WARNING",
    }  # fmt: skip
    for name, value in settings.agents.model_dump().items():
        env[f"TRADELOOP_AGENTS__{name.upper()}"] = (
            str(value).lower() if isinstance(value, bool) else str(value)
        )
    return env


def produce_raw(settings: Settings, items: list[tuple[str, bytes]]) -> None:
    with EventProducer(settings, "bench-engine", config={"linger.ms": 20}) as producer:
        for key, value in items:
            producer.send_raw(TRADES, key, value)


def plain_loop(settings: Settings, n: int) -> float:
    """Events/s of one confluent-kafka loop doing what the features agent does."""
    codec = Codec.from_settings(settings)
    market = Market(settings.agents, codec)
    consumer = EventConsumer(settings, f"bench-plain-{uuid.uuid4().hex[:6]}", config={"fetch.min.bytes": 1})
    consumer.assign_all([TRADES])
    producer = EventProducer(settings, "bench-plain-out", codec=codec, config={"linger.ms": 20})
    full = settings.topic(TRADES)
    seen, start = 0, 0.0
    while seen < n:
        messages = consumer.poll_batch(settings.agents.batch_max, timeout=0.5)
        if not messages:
            continue
        if not start:
            start = time.perf_counter()
        batch = [Inbound(TRADES, full, m.partition() or 0, m.offset() or 0, m.key(), m.value() or b"")
                 for m in messages]  # fmt: skip
        out = market.handle(batch, time.time_ns() // 1000)
        for symbol, record in out.snapshots:
            producer.send(FEATURES, symbol, record)
        for symbol, record in out.moves:
            producer.send(PRICE_MOVES, symbol, record)
        for letter in out.dead:
            producer.send(DEAD_LETTER, letter.key, letter.record("bench", time.time_ns() // 1000))
        seen += len(messages)
    producer.flush(60)
    elapsed = time.perf_counter() - start
    consumer.close()
    return n / elapsed


def handler_joins(settings: Settings, trades: list[tuple[str, bytes]], events: list) -> float:
    """Joins/s of the pure join handler in this process (no Kafka): the ceiling the worker could reach."""
    codec = Codec.from_settings(settings)
    market = Market(settings.agents, codec)
    now = time.time_ns() // 1000
    market.handle([Inbound(TRADES, "t", 0, i, k.encode(), v) for i, (k, v) in enumerate(trades)], now)
    joiner = Joiner(settings.agents, codec, market)
    messages = [Inbound(t, t, 0, i, k.encode(), codec.encode(t, r)) for i, (t, k, r) in enumerate(events)]
    start = time.perf_counter()
    joined = 0
    for first in range(0, len(messages), settings.agents.batch_max):
        out = joiner.handle(messages[first : first + settings.agents.batch_max], now)
        joined += sum(1 for _, r in out.experiences if r["status"] == "COMPLETE")
        for _, record in out.experiences:  # the worker encodes every experience too
            codec.encode("experiences", record)
    return joined / (time.perf_counter() - start)


def scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    values: dict[str, float] = {}
    for line in text.splitlines():
        match = re.match(r"^([a-z_]+(?:\{[^}]*\})?) ([0-9.eE+-]+)$", line)
        if match:
            values[match.group(1)] = float(match.group(2))
    return values


def wait_rate(port: int, counter: str, target: float, timeout: float, proc: subprocess.Popen) -> float:
    """Rate of ``counter`` from its first non-zero scrape to the scrape where it reaches ``target``.

    Scrapes every half second only: serving /metrics takes the worker's GIL, and scraping every
    few milliseconds measurably slowed the worker it was measuring.
    """
    first: tuple[float, float] | None = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the worker exited during the benchmark")
        try:
            value = scrape(port).get(counter, 0.0)
        except OSError:
            time.sleep(0.5)
            continue
        now = time.perf_counter()
        if first is None and value > 0:
            first = (now, value)
        elif first is not None and value >= target:
            return (value - first[1]) / (now - first[0])
        time.sleep(0.5)
    raise SystemExit(f"timed out waiting for {counter} >= {target}")


def summarize_profile(path: Path, top: int = 15) -> list[tuple[str, float]]:
    """Inclusive share of the worker's main-thread samples per function, from py-spy's raw output."""
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if not frames or "MainThread" not in frames[0]:
            continue
        n = int(count)
        total += n
        for frame in set(frames[1:]):
            inclusive[frame] += n
    return [(frame, n / total) for frame, n in inclusive.most_common(top)] if total else []


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trades", type=int, default=100_000)
    parser.add_argument("--joins", type=int, default=5_000)
    parser.add_argument("--symbols", type=int, default=4)
    parser.add_argument("--trades-per-second", type=float, default=50.0, help="event-time rate per symbol")
    parser.add_argument(
        "--bootstrap", default="", help="an existing Kafka; default starts the embedded broker"
    )
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument(
        "--profile", type=Path, help="record the worker with py-spy (raw samples) to this file"
    )
    args = parser.parse_args()

    broker = None
    if not args.bootstrap:
        broker = EmbeddedBroker(port=free_port()).start()
    bootstrap = args.bootstrap or broker.bootstrap  # type: ignore[union-attr]
    run = uuid.uuid4().hex[:6]
    agents = AgentSettings(app_id=f"bench-{run}")
    workdir = Path(tempfile.mkdtemp(prefix=f"tradeloop-bench-{run}-"))
    faust_settings = Settings(kafka_bootstrap=bootstrap, topic_prefix=f"bf{run}.", metrics_port=free_port(),
                              data_dir=workdir / "data", agents=agents)  # fmt: skip
    plain_settings = faust_settings.model_copy(update={"topic_prefix": f"bp{run}."})
    try:
        codec = Codec.from_settings(faust_settings)
        trades = trade_bytes(codec, args.trades, args.symbols, args.trades_per_second)
        with console.status(f"producing {2 * args.trades:,} trades"):
            for s in (faust_settings, plain_settings):
                create_topics(s)
                produce_raw(s, trades)
        with console.status("plain confluent-kafka loop"):
            plain = plain_loop(plain_settings, args.trades)
        console.print(f"plain loop: {plain:,.0f} events/s")
        span = (args.trades // args.symbols) * int(1_000_000 / args.trades_per_second)
        joined = join_events(args.joins, args.symbols, span)
        with console.status("pure join handler"):
            pure_joins = handler_joins(faust_settings, trades, joined)
        console.print(f"pure join handler: {pure_joins:,.0f} joins/s")

        env = {k: v for k, v in os.environ.items() if not k.startswith("TRADELOOP_")}
        env.update(settings_env(faust_settings))
        command = [sys.executable, "-m", "agents.worker"]
        if args.profile:
            spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
            command = [spy, "record", "-f", "raw", "-r", "100", "-t", "-o", str(args.profile), "--", *command]
        log = open(workdir / "worker.log", "wb")  # noqa: SIM115 - closed after the run
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        port = faust_settings.metrics_port
        assert port is not None
        try:
            with console.status("Faust worker: trades"):
                done = 'tradeloop_worker_batch_events_sum{agent="features"}'
                features = wait_rate(port, done, args.trades, 600, proc)
            console.print(f"Faust worker: {features:,.0f} events/s")
            with EventProducer(faust_settings, "bench-joins", config={"linger.ms": 20}) as producer:
                for topic, key, record in joined:
                    producer.send(topic, key, record)
            with console.status("Faust worker: joins"):
                joins = wait_rate(
                    port, 'tradeloop_join_experiences_total{status="COMPLETE"}', args.joins, 600, proc
                )
        finally:
            proc.send_signal(signal.SIGINT if args.profile else signal.SIGTERM)
            proc.wait(60)
            log.close()
        result = {
            "features_events_per_s": round(features, 1),
            "plain_loop_events_per_s": round(plain, 1),
            "ratio_to_plain_loop": round(features / plain, 4),
            "joins_per_s": round(joins, 1),
            "pure_join_handler_joins_per_s": round(pure_joins, 1),
            "trades": args.trades,
            "joins": args.joins,
            "symbols": args.symbols,
            "batch_max": agents.batch_max,
        }
        table = Table(title="stream throughput (one worker, this machine)")
        table.add_column("measure")
        table.add_column("value", justify="right")
        table.add_column("target", justify="right")
        table.add_row(
            "trades through validation + features, Faust worker", f"{features:,.0f}/s", ">= 20,000/s"
        )
        table.add_row("same work, plain confluent-kafka loop", f"{plain:,.0f}/s", "")
        table.add_row("ratio to the plain loop", f"{features / plain:.3f}", ">= 0.5")
        table.add_row("signal/outcome joins, Faust worker", f"{joins:,.0f}/s", ">= 10,000/s")
        table.add_row("same joins, pure handler in process (no Kafka)", f"{pure_joins:,.0f}/s", "")
        console.print(table)
        if args.profile and args.profile.exists():
            profile = Table(title="worker main thread: inclusive share of samples")
            profile.add_column("function")
            profile.add_column("share", justify="right")
            for frame, share in summarize_profile(args.profile):
                profile.add_row(frame, f"{share:.1%}")
            console.print(profile)
        if args.json:
            args.json.write_text(json.dumps(result, indent=2))
            console.print(f"wrote {args.json}")
    finally:
        if broker is not None:
            broker.stop()


if __name__ == "__main__":
    main()
