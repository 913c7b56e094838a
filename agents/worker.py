"""The stream worker: thin Faust agents over the pure handlers, plus timers, metrics and heartbeats.

Three agents, each reading batches with ``stream.take_events``:

* ``features`` (trades) -> :class:`agents.market.Market` -> features, price-moves, dead-letter.
* ``join`` (signals + outcomes) -> :class:`agents.join.Joiner` -> experiences, dead-letter, and a
  copy of each experience keyed by portfolio on an internal topic.
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
from typing import Any

import faust

from agents import metrics as m
from agents.app import create_app
from agents.deadletter import DeadLetter
from agents.join import JoinBatch, Joiner
from agents.market import Market
from agents.periods import Periods
from agents.tables import apply_writes, read_all
from agents.validate import Inbound
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

__all__ = ["PERIODS_INPUT", "StreamWorker", "main", "run"]

log = logging.getLogger(__name__)

PERIODS_INPUT = "periods-by-portfolio"  # internal topic: experiences keyed by portfolio
Send = tuple[str, bytes | None, bytes, int | None]  # (full topic, key, value, event time us)


class StreamWorker:
    """The Faust app with its agents, tables and timer, built from the settings."""

    def __init__(self, settings: Settings, ident: str | None = None) -> None:
        self.settings = settings
        self.ident = ident or component_id("worker")
        self.codec = Codec.from_settings(settings)
        agents = settings.agents
        self.market = Market(agents, self.codec)
        self.joiner = Joiner(agents, self.codec, self.market)
        self.periods = Periods(agents, self.codec)
        self.stats = m.WorkerStats()
        self.app = create_app(settings)
        self._loaded = False
        self._join_lock = asyncio.Lock()
        self._periods_lock = asyncio.Lock()
        self._positions: dict[Any, int] = {}
        self._build()

    # ---- wiring ----------------------------------------------------------------------------------

    def _build(self) -> None:
        app, agents, topic = self.app, self.settings.agents, self.settings.topic
        raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
        self.full = {name: topic(name) for name in (TRADES, SIGNALS, OUTCOMES)}
        self.full[PERIODS_INPUT] = f"{agents.app_id}-{PERIODS_INPUT}"
        self.logical = {full: name for name, full in self.full.items()}
        trades = app.topic(self.full[TRADES], **raw)
        joined = app.topic(self.full[SIGNALS], self.full[OUTCOMES], **raw)
        by_portfolio = app.topic(
            self.full[PERIODS_INPUT],
            internal=True,
            partitions=self.settings.partitions,
            replicas=self.settings.replication_factor,
            **raw,
        )
        # bytes key and value types make Faust use the raw codec for the changelog and its recovery.
        schema: faust.Schema = faust.Schema(key_type=bytes, value_type=bytes, **raw)
        table: dict[str, Any] = {
            "schema": schema, "key_type": bytes, "value_type": bytes, "partitions": self.settings.partitions,
        }  # fmt: skip
        self.market_table = app.Table("market", **table)
        self.join_table = app.Table("join", **table)
        self.periods_table = app.Table("periods", **table)
        app.agent(trades, name="features")(self._features_agent)
        app.agent(joined, name="join")(self._join_agent)
        app.agent(by_portfolio, name="periods")(self._periods_agent)
        app.timer(agents.tick_seconds)(self._tick)
        app.on_partitions_assigned.connect(self._on_assigned)

    def _on_assigned(self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        self._loaded = False  # reload the working state from the tables once recovery is done

    def _ensure_loaded(self, force: bool = False) -> bool:
        """Load the handlers' working state from the recovered tables (once per assignment)."""
        if self._loaded:
            return True
        recovery: Any = self.app.tables.recovery  # type: ignore[attr-defined]
        if not force and not recovery.completed.is_set():
            return False
        # Faust pauses every stream while more than 100 table writes wait to be produced; one batch
        # writes up to a few per event, so allow a few batches' worth before that back-pressure.
        self.app.producer.buffer.max_messages = max(10_000, 8 * self.settings.agents.batch_max)
        now = now_us()
        self.market.load(read_all(self.market_table))
        self.joiner.load(read_all(self.join_table), now)
        self.periods.load(read_all(self.periods_table), now)
        self._loaded = True
        log.info(
            "state loaded: %d symbols, %d join entries (%d pending), %d portfolios",
            len(self.market.symbols), len(self.joiner.entries), self.joiner.pending(),
            len(self.periods.portfolios),
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

    # ---- output ----------------------------------------------------------------------------------

    def _encode(self, logical: str, keyed: Iterable[tuple[str, dict[str, Any]]]) -> list[Send]:
        """Encoded (topic, key, value, ts) sends of (key, record) pairs for logical topic ``logical``."""
        full = self.settings.topic(logical)
        sends: list[Send] = [(full, k.encode(), self.codec.encode(logical, r), r["ts"]) for k, r in keyed]
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
            (full, d.key, self.codec.encode(DEAD_LETTER, d.record(self.ident, now)), None) for d in letters
        ]

    async def _deliver(self, sends: list[Send]) -> None:
        """Produce and wait for the broker's acknowledgement of every record."""
        producer = self.app.producer
        futures: list[Awaitable[Any]] = []
        for topic, key, value, ts in sends:
            timestamp = ts / 1e6 if ts else None
            futures.append(await producer.send(topic, key, value, None, timestamp, None))
        if futures:
            await asyncio.gather(*futures)

    # ---- agents ----------------------------------------------------------------------------------

    async def _features_agent(self, stream: Any) -> None:
        agents = self.settings.agents
        async for events in stream.take_events(agents.batch_max, agents.batch_within_seconds):
            self._ensure_loaded(force=True)
            start = time.perf_counter()
            now = now_us()
            self.joiner.last_input_us = now
            out = self.market.handle(self._inbound(events), now)
            sends = self._encode(FEATURES, out.snapshots) + self._encode(PRICE_MOVES, out.moves)
            for _, record in out.moves:
                m.PRICE_MOVES.labels(record["kind"]).inc()
            m.SNAPSHOTS.inc(len(out.snapshots))
            m.REDELIVERED.labels(TRADES).inc(out.redelivered)
            await self._deliver(sends + self._dead(out.dead))
            apply_writes(self.market_table, self.full[TRADES], out.writes)
            m.BATCH_SECONDS.labels("features").observe(time.perf_counter() - start)
            m.BATCH_EVENTS.labels("features").observe(len(events))

    async def _join_agent(self, stream: Any) -> None:
        agents = self.settings.agents
        async for events in stream.take_events(agents.batch_max, agents.batch_within_seconds):
            self._ensure_loaded(force=True)
            start = time.perf_counter()
            async with self._join_lock:
                await self._emit_join(self.joiner.handle(self._inbound(events), now_us()))
            m.BATCH_SECONDS.labels("join").observe(time.perf_counter() - start)
            m.BATCH_EVENTS.labels("join").observe(len(events))

    async def _emit_join(self, out: JoinBatch) -> None:
        sends = self._encode(EXPERIENCES, out.experiences)
        internal = self.full[PERIODS_INPUT]
        for (_, _, value, ts), (_, record) in zip(list(sends), out.experiences, strict=True):
            sends.append((internal, record["portfolio"].encode(), value, ts))
            m.EXPERIENCES.labels(record["status"]).inc()
        for result, count in out.results.items():
            m.JOIN_RESULTS.labels(result).inc(count)
        self.stats.experiences += len(out.experiences)
        await self._deliver(sends + self._dead(out.dead))
        apply_writes(self.join_table, self.full[SIGNALS], out.writes)
        self.stats.pending = self.joiner.pending()
        m.JOIN_PENDING.set(self.stats.pending)

    async def _periods_agent(self, stream: Any) -> None:
        agents = self.settings.agents
        async for events in stream.take_events(agents.batch_max, agents.batch_within_seconds):
            self._ensure_loaded(force=True)
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
