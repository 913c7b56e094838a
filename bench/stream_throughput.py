"""Stream throughput: the Faust worker against a bare Faust agent and a plain loop, in one run.

Measured against one embedded broker, each figure timed from the first event processed to the last:

* ``features_events_per_s``: trades through validation + features in the worker
  (``python -m agents.worker``, a child process, timed from outside through its Prometheus
  counters), the trades produced through the engine SDK's default batching.
* ``plain_loop_events_per_s``: the same batch records, the same handler (:class:`agents.market.Market`),
  in one confluent-kafka consume-compute-produce loop in this process; ``ratio_to_plain_loop``.
* ``bare_faust_records_per_s``: a faust-streaming agent that only counts single-trade records
  (``bench/_bare_faust.py``), on the worker's event loop; ``single_record_events_per_s``: the worker
  fed those single-trade records (an engine that does not batch); ``single_record_ratio_to_bare``.
* ``joins_per_s``: batched signals and outcomes through the worker's join (COMPLETE experiences/s);
  ``join_handler_us``: CPU time per join of the pure join handler on its own thread (decode +
  validate + join + experience encoding and sealing), no Kafka; ``join_step_us`` adds routing and
  the period records.
* with ``--loops asyncio,uvloop`` (the default) the single-record worker runs on both event loops.

    python bench/stream_throughput.py --json bench/results/stream_throughput.json
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python bench/stream_throughput.py`: the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from rich.console import Console

from agents.inputs import InputDecoder
from agents.join import Joiner
from agents.market import Market
from agents.periods import period_inputs
from agents.routing import Router
from agents.validate import Inbound
from agents.worker import tune_gc
from bench._report import report
from streams.avro.batches import to_columns
from streams.avro.codec import Codec
from streams.batching import EventBatcher
from streams.config.agents import AgentSettings
from streams.features import ENGINE_FEATURES
from streams.kafka.admin import create_topics
from streams.kafka.broker import EmbeddedBroker, free_port
from streams.kafka.consumer import EventConsumer
from streams.kafka.producer import EventProducer
from streams.settings import Settings
from streams.topics import DEAD_LETTER, FEATURES, OUTCOMES, PRICE_MOVES, SIGNALS, TRADES
from tests.kit.agents.worker import WorkerProcess

console = Console()
T0 = 1_767_225_600_000_000
Event = tuple[str, str, dict[str, Any]]


def trades(n: int, symbols: int, per_second: float, seed: int = 1) -> list[Event]:
    """``n`` trades over ``symbols`` symbols, each trading ``per_second`` times per second of event time."""
    rng = np.random.default_rng(seed)
    names = [f"SYM{i}" for i in range(symbols)]
    step = int(1_000_000 / per_second)
    moves = np.exp(rng.normal(0, 0.0005, n))
    sizes = rng.uniform(0.1, 2.0, n)
    jitter = rng.integers(0, step, n)
    prices = dict.fromkeys(names, 100.0)
    out: list[Event] = []
    for i in range(n):
        symbol = names[i % symbols]
        prices[symbol] *= float(moves[i])
        out.append((TRADES, symbol, {
            "event_id": f"t{i}", "ts": T0 + (i // symbols) * step + int(jitter[i]), "symbol": symbol,
            "price": prices[symbol], "size": float(sizes[i]), "side": "BUY" if i % 3 else "SELL",
        }))  # fmt: skip
    return out


def joins(n: int, symbols: int, span_us: int) -> list[Event]:
    """``n`` signal/outcome pairs inside the traded span, keyed by symbol, in event-time order."""
    signals: list[Event] = []
    outcomes: list[Event] = []
    for i in range(n):
        ts = T0 + span_us // 5 + (3 * span_us // 5) * i // n
        sid, symbol = f"bench-{i}", f"SYM{i % symbols}"
        signals.append((SIGNALS, symbol, {
            "event_id": f"s{i}", "ts": ts, "signal_id": sid, "strategy": f"st{i % 4}", "family": "momentum",
            "portfolio": "main", "symbol": symbol, "side": "BUY", "price": 100.0, "score": 0.5,
            "features": dict.fromkeys(ENGINE_FEATURES, 0.1), "horizon_seconds": 60.0, "action": 1.0,
            "model_version": None,
        }))  # fmt: skip
        outcomes.append((OUTCOMES, symbol, {
            "event_id": f"o{i}", "ts": ts + 10_000_000, "signal_id": sid, "symbol": symbol, "strategy": f"st{i % 4}",
            "entry_price": 100.0, "exit_price": 100.5, "size_multiplier": 1.0, "return_unit": 0.005, "pnl": 5.0,
            "fees": 0.0, "exit_reason": "TIME", "side": "BUY",
        }))  # fmt: skip
    return signals + outcomes


def produce(settings: Settings, events: list[Event], batched: bool) -> None:
    """Through the SDK's batcher with its default settings, or one record per event."""
    with EventProducer(settings, "bench-engine", config={"linger.ms": 20}) as producer:
        batcher = EventBatcher(producer, settings.batching, producer.partitions)
        for topic, key, record in events:
            if batched:
                batcher.add(topic, key, record)
            else:
                producer.send(topic, key, record)
        batcher.close(120)


def plain_loop(settings: Settings, n: int) -> float:
    """Events/s of one confluent-kafka loop doing what the features agent does, same handler."""
    codec = Codec.from_settings(settings)
    market = Market(settings.agents, codec, settings.partitions)
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
        seen += out.accepted + out.redelivered + len(out.dead)
    producer.flush(60)
    elapsed = time.perf_counter() - start
    consumer.close()
    return n / elapsed


def join_handler_us(
    settings: Settings, trade_events: list[Event], join_events: list[Event], runs: int = 3
) -> tuple[float, float]:
    """CPU microseconds per join without Kafka, on batch records as produced: (handler, whole step).

    The handler is what 0.1's figure measured: decode, validate, join, and encode the experience
    (sealed with its hash, here). The whole step adds routing and the period records. Each is the
    best of ``runs`` passes with a fresh join over the same market state (the join only reads it):
    the least disturbed pass on a shared machine. Runs with the worker's garbage-collector settings
    (:func:`agents.worker.tune_gc`).
    """
    tune_gc()
    codec = Codec.from_settings(settings)
    market = Market(settings.agents, codec, 1)
    now = time.time_ns() // 1000
    trade_records = [r for _, _, r in trade_events]
    market.handle([Inbound(TRADES, "t", 0, i, b"", codec.encode_batch(TRADES, to_columns(TRADES, trade_records[i : i + 500])))
                   for i in range(0, len(trade_records), 500)], now)  # fmt: skip
    size = settings.batching.max_events
    messages = []
    for topic in (SIGNALS, OUTCOMES):
        records = [r for t, _, r in join_events if t == topic]
        messages += [Inbound(topic, topic, 0, i, b"", codec.encode_batch(topic, to_columns(topic, records[i : i + size])))
                     for i in range(0, len(records), size)]  # fmt: skip
    # Signals and outcomes interleaved batch by batch, as a live stream brings them.
    half = len(messages) // 2
    ordered = [m for pair in zip(messages[:half], messages[half:], strict=False) for m in pair]
    best = {True: float("inf"), False: float("inf")}
    for whole in (False, True) * runs:
        decoder, router = InputDecoder(codec, settings.agents, 1), Router(1)
        joiner = Joiner(settings.agents, codec, market)
        # CPU time of this thread: the handler is single-threaded; other processes and this process's
        # client threads do not count.
        start = time.thread_time()
        joined = 0
        for first in range(0, len(ordered), 4):
            events, _ = decoder.events(ordered[first : first + 4], now)
            if whole:
                events, _ = router.split(events)
            out = joiner.handle(events, now)
            if whole:
                period_inputs(e.record for e in out.experiences)
            joined += sum(1 for e in out.experiences if e.record["status"] == "COMPLETE")
        best[whole] = min(best[whole], (time.thread_time() - start) / max(1, joined) * 1e6)
    return best[False], best[True]


def scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    values: dict[str, float] = {}
    for line in text.splitlines():
        match = re.match(r"^([a-z_]+(?:\{[^}]*\})?) ([0-9.eE+-]+)$", line)
        if match:
            values[match.group(1)] = float(match.group(2))
    return values


def wait_rate(
    port: int, counter: str, target: float, timeout: float, proc: subprocess.Popen, every: float = 1.0
) -> float:
    """Rate of ``counter`` from its first non-zero scrape to the scrape where it reaches ``target``.

    Scrapes ``every`` seconds: rendering /metrics takes the worker's GIL (which a bare agent does
    not pay), so the single-record runs scrape once a second; batch records cost the worker so
    little per record that a quarter second is fine, and keeps the timing error small.
    """
    first: tuple[float, float] | None = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the worker exited during the benchmark")
        try:
            value = scrape(port).get(counter, 0.0)
        except OSError:
            time.sleep(0.25)
            continue
        now = time.perf_counter()
        if first is None and value > 0:
            first = (now, value)
        elif first is not None and value >= target:
            return (value - first[1]) / (now - first[0])
        time.sleep(every if first is not None else 0.1)
    raise SystemExit(f"timed out waiting for {counter} >= {target}")


class Worker:
    """A stream worker child (the test kit's :class:`WorkerProcess`) timed through its metrics."""

    def __init__(self, settings: Settings, workdir: Path, name: str, profile: Path | None = None) -> None:
        self.settings = settings
        spy = None if profile is None else profile / f"{name}.spy"
        self.process = WorkerProcess(settings, workdir / f"{name}.log", spy).start()

    def rate(self, counter: str, target: float, timeout: float = 600, every: float = 1.0) -> float:
        assert self.settings.metrics_port is not None and self.process.process is not None
        return wait_rate(self.settings.metrics_port, counter, target, timeout, self.process.process, every)

    def stop(self) -> None:
        self.process.stop(60)


def bare_faust(bootstrap: str, topic: str, n: int, loop: str) -> dict[str, Any]:
    script = Path(__file__).with_name("_bare_faust.py")
    done = subprocess.run(
        [sys.executable, str(script), "--bootstrap", bootstrap, "--topic", topic, "--expect", str(n), "--loop", loop,
         "--fetch-bytes", str(AgentSettings().max_fetch_bytes), "--batch", str(AgentSettings().batch_max)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    # Faust may route the child's stdout through its logging: take the JSON from the line.
    output = (done.stdout or "") + "\n" + (done.stderr or "")
    lines = [line[line.index("{\"records\"") :] for line in output.splitlines() if "{\"records\"" in line]
    if not lines:
        raise SystemExit(f"bare Faust agent failed: {(done.stderr or done.stdout)[-2000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trades", type=int, default=600_000, help="batched trades through the worker")
    parser.add_argument("--single", type=int, default=100_000, help="single-record trades (bare Faust, worker)")
    parser.add_argument("--joins", type=int, default=40_000)
    parser.add_argument("--symbols", type=int, default=8)
    parser.add_argument("--trades-per-second", type=float, default=50.0, help="event-time rate per symbol")
    parser.add_argument("--loops", default="asyncio,uvloop", help="event loops for the single-record runs")
    parser.add_argument("--rounds", type=int, default=2, help="bare agent and single-record worker, best of N")
    parser.add_argument("--bootstrap", default="", help="an existing Kafka; default starts the embedded broker")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--profile", type=Path, help="record each worker with py-spy into this directory")
    args = parser.parse_args()
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    loops = [loop for loop in args.loops.split(",") if loop]

    broker = None if args.bootstrap else EmbeddedBroker(port=free_port()).start()
    bootstrap = args.bootstrap or broker.bootstrap  # type: ignore[union-attr]
    run = uuid.uuid4().hex[:6]
    workdir = Path(tempfile.mkdtemp(prefix=f"tradeloop-bench-{run}-"))

    def prefixed(name: str, **agents: Any) -> Settings:
        return Settings(
            kafka_bootstrap=bootstrap, topic_prefix=f"{name}{run}.", metrics_port=free_port(), log_level="WARNING",
            data_dir=workdir / name, agents=AgentSettings(app_id=f"bench-{name}-{run}", **agents),
        )  # fmt: skip

    try:
        trade_events = trades(args.trades, args.symbols, args.trades_per_second)
        span = (args.trades // args.symbols) * int(1_000_000 / args.trades_per_second)
        join_events = joins(args.joins, args.symbols, span)
        single_events = trade_events[: args.single]
        args.single = len(single_events)  # no more than there are trades
        batched, plain, bare = prefixed("bw"), prefixed("bp"), prefixed("bb")
        singles = {loop: prefixed(f"bs{loop[:2]}", event_loop=loop) for loop in loops}
        with console.status("producing"):
            for target in (batched, plain, bare, *singles.values()):
                create_topics(target)
            produce(batched, trade_events, batched=True)
            produce(plain, trade_events, batched=True)
            produce(bare, single_events, batched=False)
            for target in singles.values():
                produce(target, single_events, batched=False)

        console.print("pure join handler ...")  # no spinner: its refresh thread would share the interpreter
        handler_us, step_us = join_handler_us(batched, trade_events, join_events)
        console.print(f"pure join handler: {handler_us:.1f} us per join ({step_us:.1f} with routing and periods)")
        with console.status("plain confluent-kafka loop"):
            plain_rate = plain_loop(plain, args.trades)
        console.print(f"plain loop: {plain_rate:,.0f} events/s")
        bares: dict[str, dict[str, Any]] = {}
        for _ in range(args.rounds):  # a fresh group each time reads the topic from the start
            for loop in loops:
                with console.status(f"bare Faust agent ({loop})"):
                    got = bare_faust(bootstrap, bare.topic(TRADES), args.single, loop)
                console.print(f"bare Faust agent ({loop}): {got['records_per_s']:,.0f} records/s")
                if got["records_per_s"] > bares.get(loop, {}).get("records_per_s", 0.0):
                    bares[loop] = got

        worker = Worker(batched, workdir, "worker-batched", args.profile)
        try:
            with console.status("Faust worker: batched trades"):
                features = worker.rate('tradeloop_worker_events_in_total{topic="trades"}', args.trades, every=0.25)
            console.print(f"worker, batched trades: {features:,.0f} events/s")
            produce(batched, join_events, batched=True)
            with console.status("Faust worker: joins"):
                joins_rate = worker.rate('tradeloop_join_experiences_total{status="COMPLETE"}', args.joins, every=0.25)
            console.print(f"worker joins: {joins_rate:,.0f}/s")
        finally:
            worker.stop()
        single_rates: dict[str, float] = {}
        for round_ in range(args.rounds):
            for loop, target in singles.items():
                # A fresh consumer group (app id) each round reads the topic from the start.
                fresh = target.model_copy(update={
                    "agents": target.agents.model_copy(update={"app_id": f"{target.agents.app_id}-{round_}"}),
                    "data_dir": target.data_dir / str(round_),
                })  # fmt: skip
                worker = Worker(fresh, workdir, f"worker-single-{loop}-{round_}", args.profile)
                try:
                    with console.status(f"Faust worker: single-record trades ({loop})"):
                        got = worker.rate('tradeloop_worker_events_in_total{topic="trades"}', args.single)
                finally:
                    worker.stop()
                console.print(f"worker, single-record trades ({loop}): {got:,.0f} events/s")
                single_rates[loop] = max(single_rates.get(loop, 0.0), got)

        loop = AgentSettings().event_loop if AgentSettings().event_loop in loops else loops[-1]
        result: dict[str, Any] = {
            "features_events_per_s": round(features, 1),
            "plain_loop_events_per_s": round(plain_rate, 1),
            "ratio_to_plain_loop": round(features / plain_rate, 4),
            "bare_faust_records_per_s": round(bares[loop]["records_per_s"], 1),
            "bare_faust_cpu_us_per_record": round(bares[loop]["cpu_seconds"] / args.single * 1e6, 1),
            "single_record_events_per_s": round(single_rates[loop], 1),
            "single_record_ratio_to_bare": round(single_rates[loop] / bares[loop]["records_per_s"], 4),
            "event_loop": loop,
            "single_record_by_loop": {k: round(v, 1) for k, v in single_rates.items()},
            "bare_faust_by_loop": {k: round(v["records_per_s"], 1) for k, v in bares.items()},
            "joins_per_s": round(joins_rate, 1),
            "join_handler_us": round(handler_us, 2),
            "join_step_us": round(step_us, 2),
            "trades": args.trades, "single": args.single, "joins": args.joins, "symbols": args.symbols,
            "batch_linger_ms": batched.batching.linger_ms, "batch_max_events": batched.batching.max_events,
        }  # fmt: skip
        rows = [
            ("trades through validation + features, worker, SDK batching", f"{features:,.0f}/s", ">= 20,000/s"),
            ("same records and handler, plain confluent-kafka loop", f"{plain_rate:,.0f}/s", ""),
            ("ratio to the plain loop", f"{features / plain_rate:.3f}", ">= 0.5"),
            (f"bare Faust agent, single records ({loop})", f"{bares[loop]['records_per_s']:,.0f}/s", ""),
            (f"worker, single-record trades ({loop})", f"{single_rates[loop]:,.0f}/s", ""),
            ("single-record ratio to the bare agent", f"{result['single_record_ratio_to_bare']:.3f}", ">= 0.8"),
            *[(f"worker, single records on {k}", f"{v:,.0f}/s", "") for k, v in single_rates.items() if k != loop],
            ("signal/outcome joins, worker", f"{joins_rate:,.0f}/s", ">= 5,000/s"),
            ("pure join handler per join (decode, validate, join, encode)", f"{handler_us:.1f} us", "<= 50 us"),
            ("same plus routing and period records", f"{step_us:.1f} us", ""),
        ]  # fmt: skip
        report("stream throughput (one worker, this machine)", rows, result, args.json)
    finally:
        if broker is not None:
            broker.stop()


if __name__ == "__main__":
    main()
