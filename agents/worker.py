"""The stream worker: thin Faust agents over the pure handlers, plus timers, metrics and heartbeats.

Four agents, each reading batches with ``stream.take_events``:

* ``features`` (trades) -> :class:`agents.market.Market` -> features, price-moves, dead-letter.
* ``route`` (signals + outcomes) -> :class:`agents.routing.Router` -> the internal join-input
  topic, on the partition of each event's symbol, so the join runs beside that symbol's market
  state and any number of workers can share the partitions; invalid events -> dead-letter.
* ``join`` (join-input) -> :class:`agents.join.Joiner` -> experiences, dead-letter, and a copy of
  each experience keyed by portfolio on a second internal topic.
* ``periods`` (that internal topic) -> :class:`agents.periods.Periods` -> allocation-periods.

For every batch an agent produces its outputs, waits until the broker acknowledged them, and only
then writes the new state to its changelog-backed table; Faust commits the input offsets after its
producer flushed. docs/agents.md explains why this gives exactly-once experiences in effect.

Run it with ``tradeloop worker`` or ``python -m agents.worker`` (settings from ``TRADELOOP_*``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Iterable
from typing import Any, NamedTuple

import faust

from agents import metrics as m
from agents.app import create_app
from agents.deadletter import DeadLetter
from agents.join import JoinBatch, Joiner
from agents.market import Market
from agents.periods import Periods
from agents.routing import PROVENANCE_HEADER, Provenance, Router, partition_for
from agents.tables import apply_writes, read_all
from agents.validate import Inbound, Validator
from streams.clock import now_us
from streams.codec import Codec
from streams.heartbeat import Heartbeater, component_id
from streams.metrics import serve_metrics
from streams.settings import Settings
from streams.topics import (
    ALLOCATION_PERIODS,
    DEAD_LETTER,
    EXPERIENCES,
    FEATURES,
    OUTCOMES,
    PRICE_MOVES,
    SIGNALS,
    TRADES,
)

__all__ = ["JOIN_INPUT", "PERIODS_INPUT", "StreamWorker", "main", "run"]

log = logging.getLogger(__name__)

PERIODS_INPUT = "periods-by-portfolio"  # internal topic: experiences keyed by portfolio
JOIN_INPUT = "join-input"  # internal topic: signals and outcomes on their symbol's partition


class Send(NamedTuple):
    """One record to produce: full topic, key, value, event time (us), and optionally where."""

    topic: str
    key: bytes | None
    value: bytes
    ts: int | None
    partition: int | None = None
    headers: list[tuple[str, bytes]] | None = None


class StreamWorker:
    """The Faust app with its agents, tables and timer, built from the settings."""

    def __init__(self, settings: Settings, ident: str | None = None) -> None:
        self.settings = settings
        self.ident = ident or component_id("worker")
        self.codec = Codec.from_settings(settings)
        agents = settings.agents
        self.market = Market(agents, self.codec)
        self.joiner = Joiner(agents, self.codec, self.market)
        self.router = Router(Validator(self.codec, agents.max_future_seconds), settings.partitions)
        self._trade_partitions: dict[bytes | None, int] = {}
        self.periods = Periods(agents, self.codec)
        self.stats = m.WorkerStats()
        self.app = create_app(settings)
        self._loaded = self._recovered = False
        self._assigned_at = time.monotonic()
        self._next_pending_count = 0.0
        self._join_lock = asyncio.Lock()
        self._periods_lock = asyncio.Lock()
        self._positions: dict[Any, int] = {}
        self._build()

    # ---- wiring ----------------------------------------------------------------------------------

    def _build(self) -> None:
        app, agents, topic = self.app, self.settings.agents, self.settings.topic
        raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
        self.full = {name: topic(name) for name in (TRADES, SIGNALS, OUTCOMES)}
        internal: dict[str, Any] = {
            "internal": True, "partitions": self.settings.partitions,
            "replicas": self.settings.replication_factor, **raw,
        }  # fmt: skip
        self.full[JOIN_INPUT] = f"{agents.app_id}-{JOIN_INPUT}"
        self.full[PERIODS_INPUT] = f"{agents.app_id}-{PERIODS_INPUT}"
        self.logical = {full: name for name, full in self.full.items()}
        trades = app.topic(self.full[TRADES], **raw)
        signals_and_outcomes = app.topic(self.full[SIGNALS], self.full[OUTCOMES], **raw)
        join_input = app.topic(self.full[JOIN_INPUT], **internal)
        by_portfolio = app.topic(self.full[PERIODS_INPUT], **internal)
        # bytes key and value types make Faust use the raw codec for the changelog and its recovery.
        schema: faust.Schema = faust.Schema(key_type=bytes, value_type=bytes, **raw)
        table: dict[str, Any] = {
            "schema": schema, "key_type": bytes, "value_type": bytes, "partitions": self.settings.partitions,
        }  # fmt: skip
        self.market_table = app.Table("market", **table)
        self.join_table = app.Table("join", **table)
        self.periods_table = app.Table("periods", **table)
        app.agent(trades, name="features")(self._features_agent)
        app.agent(signals_and_outcomes, name="route")(self._route_agent)
        app.agent(join_input, name="join")(self._join_agent)
        app.agent(by_portfolio, name="periods")(self._periods_agent)
        app.timer(agents.tick_seconds)(self._tick)
        app.on_partitions_assigned.connect(self._on_assigned)
        app.on_rebalance_complete.connect(self._on_recovered)

    def _on_assigned(self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        # Reload the working state from the tables once their recovery for this assignment is done.
        # (Faust's ``recovery.completed`` event stays set after the first recovery, so it cannot
        # tell; ``on_rebalance_complete`` is sent when the streams resume after each recovery.)
        self._loaded = self._recovered = False
        self._assigned_at = time.monotonic()

    async def _on_recovered(self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        self._recovered = True

    async def _ready(self, events: list[Any]) -> list[Any]:
        """Wait for the state of the current assignment, then drop events of partitions given away.

        A batch buffered before a rebalance can reach the agent after it; events of partitions
        now held by another worker were not committed here, so that worker processes them.
        """
        while not self._ensure_loaded():
            await asyncio.sleep(0.05)
        held = self.app.consumer.assignment()
        return [e for e in events if e.message.tp in held]

    def _ensure_loaded(self) -> bool:
        """Load the handlers' working state from the recovered tables (once per assignment)."""
        if self._loaded:
            return True
        if not self._recovered:
            return False
        # Faust pauses every stream while more than 100 table writes wait to be produced; one batch
        # writes up to a few per event, so allow a few batches' worth before that back-pressure.
        self.app.producer.buffer.max_messages = max(10_000, 8 * self.settings.agents.batch_max)
        now = now_us()
        tables = {"market": read_all(self.market_table), "join": read_all(self.join_table),
                  "periods": read_all(self.periods_table)}  # fmt: skip
        self.market.load(tables["market"])
        self.joiner.load(tables["join"], now)
        self.periods.load(tables["periods"], now)
        self._loaded = True
        partitions = sorted(
            {tp.partition for tp in self.app.consumer.assignment() if tp.topic == self.full[TRADES]}
        )
        self.stats.partitions, self.stats.recovery_seconds = (
            len(partitions),
            time.monotonic() - self._assigned_at,
        )
        m.ASSIGNED_PARTITIONS.set(len(partitions))
        m.RECOVERY_SECONDS.set(self.stats.recovery_seconds)
        for name, items in tables.items():
            m.TABLE_KEYS.labels(name).set(len(items))
        log.info(
            "state loaded %.2fs after the assignment of partitions %s: %d table keys, %d symbols, "
            "%d join entries (%d pending), %d portfolios",
            self.stats.recovery_seconds, partitions, sum(len(t) for t in tables.values()),
            len(self.market.symbols), len(self.joiner.entries), self.joiner.pending(), len(self.periods.portfolios),
        )  # fmt: skip
        return True

    def _inbound(self, events: Iterable[Any]) -> list[Inbound]:
        out = []
        for event in events:
            msg = event.message
            out.append(
                Inbound(self.logical[msg.topic], msg.topic, msg.partition, msg.offset, msg.key, msg.value)
            )
            self._positions[msg.tp] = msg.offset + 1
        for name, count in _count(i.topic for i in out).items():
            m.EVENTS_IN.labels(name).inc(count)
        self.stats.events_in += len(out)
        return out

    def _join_inbound(self, events: Iterable[Any]) -> list[Inbound]:
        """Routed events as the join sees them: at their source coordinates, on their route."""
        out = []
        for event in events:
            msg = event.message
            source = Provenance.of(msg.headers)
            if source is None:  # only the route agent writes this topic, always with the header
                raise RuntimeError(f"{msg.topic}@{msg.partition}:{msg.offset} has no {PROVENANCE_HEADER}")
            full = self.full[source.topic]
            out.append(
                Inbound(
                    source.topic, full, source.partition, source.offset, msg.key, msg.value, msg.partition
                )
            )
            self._positions[msg.tp] = msg.offset + 1
        m.EVENTS_IN.labels(JOIN_INPUT).inc(len(out))
        return out

    def _count_misrouted(self, trades: list[Inbound]) -> None:
        """Count trades whose partition is not their symbol's: the join misses their features."""
        cache, partitions = self._trade_partitions, self.settings.partitions
        misrouted = 0
        for trade in trades:
            expected = cache.get(trade.key)
            if expected is None:
                expected = cache[trade.key] = partition_for(trade.key or b"", partitions)
                if expected != trade.partition:
                    log.warning(
                        "trades of %r arrive on partition %d, not %d: produce trades with Kafka's "
                        "default (murmur2) partitioner", trade.key, trade.partition, expected,
                    )  # fmt: skip
            misrouted += expected != trade.partition
        if misrouted:
            m.MISROUTED.inc(misrouted)

    # ---- output ----------------------------------------------------------------------------------

    def _encode(self, logical: str, keyed: Iterable[tuple[str, dict[str, Any]]]) -> list[Send]:
        """Encoded (topic, key, value, ts) sends of (key, record) pairs for logical topic ``logical``."""
        full = self.settings.topic(logical)
        sends = [Send(full, k.encode(), self.codec.encode(logical, r), r["ts"]) for k, r in keyed]
        m.EVENTS_OUT.labels(logical).inc(len(sends))
        return sends

    def _dead(self, letters: list[DeadLetter]) -> list[Send]:
        now = now_us()
        full = self.settings.topic(DEAD_LETTER)
        for letter in letters:
            m.DEAD_LETTERS.labels(letter.stage, letter.reason).inc()
            log.debug(
                "dead letter %s/%s from %s@%d", letter.stage, letter.reason, letter.topic, letter.offset
            )
        self.stats.dead_letters += len(letters)
        m.EVENTS_OUT.labels(DEAD_LETTER).inc(len(letters))
        return [
            Send(full, d.key, self.codec.encode(DEAD_LETTER, d.record(self.ident, now)), None)
            for d in letters
        ]

    async def _deliver(self, sends: list[Send]) -> None:
        """Produce and wait for the broker's acknowledgement of every record."""
        producer = self.app.producer
        futures: list[Awaitable[Any]] = []
        for send in sends:
            timestamp = send.ts / 1e6 if send.ts else None
            futures.append(
                await producer.send(send.topic, send.key, send.value, send.partition, timestamp, send.headers)
            )
        if futures:
            await asyncio.gather(*futures)

    # ---- agents ----------------------------------------------------------------------------------

    async def _features_agent(self, stream: Any) -> None:
        agents = self.settings.agents
        async for batch in stream.take_events(agents.batch_max, agents.batch_within_seconds):
            events = await self._ready(batch)
            start = time.perf_counter()
            now = now_us()
            self.joiner.last_input_us = now
            trades = self._inbound(events)
            self._count_misrouted(trades)
            out = self.market.handle(trades, now)
            sends = self._encode(FEATURES, out.snapshots) + self._encode(PRICE_MOVES, out.moves)
            for _, record in out.moves:
                m.PRICE_MOVES.labels(record["kind"]).inc()
            m.SNAPSHOTS.inc(len(out.snapshots))
            m.REDELIVERED.labels(TRADES).inc(out.redelivered)
            await self._deliver(sends + self._dead(out.dead))
            apply_writes(self.market_table, self.full[TRADES], out.writes)
            m.BATCH_SECONDS.labels("features").observe(time.perf_counter() - start)
            m.BATCH_EVENTS.labels("features").observe(len(events))

    async def _route_agent(self, stream: Any) -> None:
        agents, internal = self.settings.agents, self.full[JOIN_INPUT]
        async for batch in stream.take_events(agents.batch_max, agents.batch_within_seconds):
            events = await self._ready(batch)
            start = time.perf_counter()
            now = now_us()
            self.joiner.last_input_us = now
            out = self.router.handle(self._inbound(events), now)
            sends = [
                Send(internal, f.key, f.value, f.ts, f.partition, [(PROVENANCE_HEADER, f.provenance.header())])
                for f in out.forwards
            ]  # fmt: skip
            await self._deliver(sends + self._dead(out.dead))
            m.BATCH_SECONDS.labels("route").observe(time.perf_counter() - start)
            m.BATCH_EVENTS.labels("route").observe(len(events))

    async def _join_agent(self, stream: Any) -> None:
        agents = self.settings.agents
        async for batch in stream.take_events(agents.batch_max, agents.batch_within_seconds):
            events = await self._ready(batch)
            start = time.perf_counter()
            self.joiner.last_input_us = now_us()
            async with self._join_lock:
                await self._emit_join(self.joiner.handle(self._join_inbound(events), now_us()))
            m.BATCH_SECONDS.labels("join").observe(time.perf_counter() - start)
            m.BATCH_EVENTS.labels("join").observe(len(events))

    async def _emit_join(self, out: JoinBatch) -> None:
        sends = self._encode(EXPERIENCES, out.experiences)
        internal = self.full[PERIODS_INPUT]
        for send, (_, record) in zip(list(sends), out.experiences, strict=True):
            sends.append(Send(internal, record["portfolio"].encode(), send.value, send.ts))
            m.EXPERIENCES.labels(record["status"]).inc()
        for result, count in out.results.items():
            m.JOIN_RESULTS.labels(result).inc(count)
        self.stats.experiences += len(out.experiences)
        await self._deliver(sends + self._dead(out.dead))
        apply_writes(self.join_table, self.full[JOIN_INPUT], out.writes)

    async def _periods_agent(self, stream: Any) -> None:
        agents = self.settings.agents
        async for batch in stream.take_events(agents.batch_max, agents.batch_within_seconds):
            events = await self._ready(batch)
            async with self._periods_lock:
                out = self.periods.handle(self._inbound(events), now_us())
                await self._emit_periods(out.periods, out.dead, out.writes)

    async def _emit_periods(self, periods: list[tuple[str, dict[str, Any]]], dead: list[DeadLetter],
                            writes: list[Any]) -> None:  # fmt: skip
        m.PERIODS.inc(len(periods))
        await self._deliver(self._encode(ALLOCATION_PERIODS, periods) + self._dead(dead))
        apply_writes(self.periods_table, self.full[PERIODS_INPUT], writes)

    async def _tick(self) -> None:
        """Wall-clock work: idle expiry, features-lagging resolutions, idle periods, lag gauges."""
        if not self._ensure_loaded():
            return
        now = now_us()
        async with self._join_lock:
            await self._emit_join(self.joiner.tick(now))
        async with self._periods_lock:
            out = self.periods.tick(now)
            await self._emit_periods(out.periods, out.dead, out.writes)
        self._update_lag()
        if time.monotonic() >= self._next_pending_count:
            # A scan of every join entry (hundreds of thousands in a long run): once per heartbeat.
            self._next_pending_count = time.monotonic() + self.settings.agents.heartbeat_seconds
            self.stats.pending = self.joiner.pending()
            m.JOIN_PENDING.set(self.stats.pending)

    def _update_lag(self) -> None:
        consumer = self.app.consumer
        lag: dict[str, int] = {}
        for tp in consumer.assignment():
            name = self.logical.get(tp.topic)
            position = self._positions.get(tp)
            if name is None or position is None:
                continue
            try:
                highwater = consumer.highwater(tp)
            except Exception as exc:  # not known until the first fetch answered; try next round
                log.debug("no highwater for %s yet: %s", tp, exc)
                continue
            if highwater is not None:
                lag[name] = lag.get(name, 0) + max(0, highwater - position)
        for name, value in lag.items():
            m.LAG.labels(name).set(value)
        self.stats.lag.clear()
        self.stats.lag.update(lag)

    # ---- running ---------------------------------------------------------------------------------

    def run(self) -> int:
        """Run until SIGINT/SIGTERM; serves metrics and publishes heartbeats meanwhile."""
        (self.settings.data_dir / "agents").mkdir(parents=True, exist_ok=True)
        serve_metrics(self.settings, "worker", self.ident)
        info = {"app_id": self.settings.agents.app_id, "store": self.settings.agents.store}
        beat = Heartbeater(
            self.settings, "worker", self.ident, gauges=self.stats.gauges, info=lambda: info,
            interval=self.settings.agents.heartbeat_seconds,
        )  # fmt: skip
        beat.start()
        worker = faust.Worker(
            self.app,
            loglevel=self.settings.log_level,
            quiet=True,
            redirect_stdouts=False,
            override_logging=False,
        )
        log.info("worker %s starting: broker %s, store %s", self.ident, self.settings.bootstrap,
                 self.settings.agents.store)  # fmt: skip
        try:
            worker.execute_from_commandline()
        except SystemExit as exc:
            return int(exc.code or 0)
        finally:
            beat.stop()
        return 0


def _count(items: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return counts


def run(settings: Settings) -> int:
    """Build and run the stream worker; returns its exit code."""
    return StreamWorker(settings).run()


def main() -> None:
    """``python -m agents.worker``: settings from the ``TRADELOOP_*`` environment."""
    settings = Settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("aiokafka", "faust", "mode", "kafka"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    raise SystemExit(run(settings))


if __name__ == "__main__":
    main()
