"""The stream worker: thin Faust agents over the pure handlers, plus timers, metrics and heartbeats.

Four agents share one loop skeleton (:meth:`StreamWorker._agent`), each reading Faust batches with
``stream.take_events`` and handing them to a pure handler:

* ``features`` (trades) -> :class:`agents.market.Market` -> features, price-moves, dead-letter.
* ``join`` (signals + outcomes) -> :class:`agents.inputs.InputDecoder` ->
  :class:`agents.routing.Router` -> :class:`agents.join.Joiner` -> experiences, dead-letter, one
  period record per portfolio on an internal topic. Events keyed by symbol (the contract) are
  joined right here, beside their symbol's market state; single records keyed by signal id are
  forwarded to the internal join-input topic on their symbol's partition.
* ``forwarded`` (that join-input topic) -> the same Joiner.
* ``periods`` (the internal period topic) -> :class:`agents.periods.Periods` -> allocation-periods.

Input records are single events or batch records of many events (:mod:`streams.avro.batches`), so
Faust's per-record cost (about 180 us of CPU here) is paid once per many events. A Faust batch is
handed to the handlers in steps of at most ``agents.step_max_bytes`` of input, so one step never
holds the event loop (and the consumer's heartbeats) for long.

For every step an agent produces its outputs, waits until the broker acknowledged them, and only
then writes the new state to its changelog-backed table; Faust commits the input offsets after its
producer flushed. docs/agents.md explains why this gives exactly-once experiences in effect.

Run it with ``tradeloop worker`` or ``python -m agents.worker`` (settings from ``TRADELOOP_*``).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, NamedTuple

import faust

from agents import metrics as m
from agents.app import create_app
from agents.join import JoinBatch, Joiner
from agents.journal import Write
from agents.market import Market
from agents.periods import Periods, period_inputs
from agents.routing import PROVENANCE_HEADER, Provenance, Router
from agents.tables import apply_writes, read_all
from agents.validate import Inbound
from streams.avro.codec import Codec
from streams.clock import now_us
from streams.datadir import DataDir
from streams.deadletter import DeadLetter
from streams.heartbeat import Heartbeater, component_id
from streams.lifetime import StopDeadline, deadline_event_loop
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

__all__ = ["JOIN_INPUT", "PERIODS_INPUT", "StreamWorker", "event_loop", "main", "run", "tune_gc"]

log = logging.getLogger(__name__)

PERIODS_INPUT = "periods-by-portfolio"  # internal topic: period records keyed by portfolio
JOIN_INPUT = "join-input"  # internal topic: forwarded signals and outcomes on their symbol's partition

Step = Callable[[list[Any], int], Awaitable[int]]  # (Faust events, now) -> input events handled


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
        self.market = Market(agents, self.codec, settings.partitions)
        self.inputs = self.market.inputs
        self.joiner = Joiner(agents, self.codec, self.market)
        self.router = Router(settings.partitions)
        self.periods = Periods(agents)
        self.stats = m.WorkerStats()
        self.app = create_app(settings)
        self._loaded = self._recovered = False
        self._assigned_at = time.monotonic()
        self._next_pending_count = 0.0
        self._join_lock = asyncio.Lock()
        self._periods_lock = asyncio.Lock()
        self._positions: dict[Any, int] = {}
        self._in_flight = 0  # steps (and ticks) under way: state is reloaded only between them
        self._warned_misrouted = False
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
        # bytes key and value types make Faust use the raw codec for the changelog and its recovery.
        schema: faust.Schema = faust.Schema(key_type=bytes, value_type=bytes, **raw)
        table: dict[str, Any] = {
            "schema": schema, "key_type": bytes, "value_type": bytes, "partitions": self.settings.partitions,
        }  # fmt: skip
        self.market_table = app.Table("market", **table)
        self.join_table = app.Table("join", **table)
        self.periods_table = app.Table("periods", **table)
        sources = {
            "features": (app.topic(self.full[TRADES], **raw), self._features_step),
            "join": (app.topic(self.full[SIGNALS], self.full[OUTCOMES], **raw), self._join_step),
            "forwarded": (app.topic(self.full[JOIN_INPUT], **internal), self._forwarded_step),
            "periods": (app.topic(self.full[PERIODS_INPUT], **internal), self._periods_step),
        }
        for name, (source, step) in sources.items():
            app.agent(source, name=name)(self._agent(name, step))
        app.timer(agents.tick_seconds)(self._tick)
        app.on_partitions_assigned.connect(self._on_assigned)
        app.on_rebalance_complete.connect(self._on_recovered)

    def _agent(self, name: str, step: Step) -> Callable[[Any], Awaitable[None]]:
        """The one agent loop: batches -> wait for state -> steps of bounded size -> metrics."""
        agents = self.settings.agents

        async def agent(stream: Any) -> None:
            try:
                async for batch in stream.take_events(agents.batch_max, agents.batch_within_seconds):
                    for part in _steps(batch, agents.step_max_bytes):
                        events = await self._hold(part)
                        try:
                            start = time.perf_counter()
                            now = now_us()
                            self.joiner.last_input_us = now
                            handled = await step(events, now) if events else 0
                        finally:
                            self._in_flight -= 1
                        self.stats.events_in += handled
                        m.BATCH_SECONDS.labels(name).observe(time.perf_counter() - start)
                        m.BATCH_EVENTS.labels(name).observe(handled)
                        await asyncio.sleep(0)  # let the consumer's heartbeats and the timer run
            except Exception as exc:
                # Bad input never gets here (it becomes dead letters); anything else is a bug or an
                # outage. A Faust agent that crashes just stops consuming, so stop the worker: it
                # exits non-zero, nothing past the failed step is committed, and its supervisor
                # restarts it.
                log.exception("agent %s failed; stopping the worker", name)
                await self.app.crash(exc)
                raise

        agent.__name__ = agent.__qualname__ = name
        return agent

    def _on_assigned(self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        # Reload the working state from the tables once their recovery for this assignment is done.
        # (Faust's ``recovery.completed`` event stays set after the first recovery, so it cannot
        # tell; ``on_rebalance_complete`` is sent when the streams resume after each recovery.)
        self._loaded = self._recovered = False
        self._assigned_at = time.monotonic()

    async def _on_recovered(self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        self._recovered = True

    async def _hold(self, events: list[Any]) -> list[Any]:
        """Wait for the state of the current assignment and start a step: the events it may take.

        A batch buffered before a rebalance can reach the agent after it; events of partitions
        now held by another worker were not committed here, so that worker processes them. The
        caller ends the step by decrementing ``_in_flight``: state is reloaded after a rebalance
        only once no step is in flight, since a step that straddled it would otherwise write to the
        tables behind the back of the freshly loaded state.
        """
        while not self._ensure_loaded():
            await asyncio.sleep(0.05)
        self._in_flight += 1
        held = self.app.consumer.assignment()
        return [e for e in events if e.message.tp in held]

    def _apply(self, table: Any, source: str, writes: list[Write]) -> None:
        """Write to ``table`` what belongs to partitions still held (a rebalance may have come)."""
        held = {tp.partition for tp in self.app.consumer.assignment() if tp.topic == source}
        kept = [w for w in writes if w[0] in held]
        if len(kept) < len(writes):
            log.info("%d table writes for partitions given away meanwhile dropped", len(writes) - len(kept))
        apply_writes(table, source, kept)

    def _ensure_loaded(self) -> bool:
        """Load the handlers' working state from the recovered tables (once per assignment)."""
        if self._loaded:
            return True
        if not self._recovered or self._in_flight:
            return False
        # Faust pauses every stream while more than 100 table writes wait to be produced; one batch
        # writes up to a few per event, so allow a few batches' worth before that back-pressure.
        self.app.producer.buffer.max_messages = max(10_000, 8 * self.settings.agents.batch_max)
        now = now_us()
        started = time.monotonic()
        assignment = self.app.consumer.assignment()
        partitions = sorted({tp.partition for tp in assignment if tp.topic == self.full[TRADES]})
        portfolios = {tp.partition for tp in assignment if tp.topic == self.full[PERIODS_INPUT]}
        tables = {"market": read_all(self.market_table), "join": read_all(self.join_table),
                  "periods": read_all(self.periods_table)}  # fmt: skip
        # Only the state of partitions held now: the memory store keeps keys written here for
        # partitions given away at a rebalance, and that state is another worker's now.
        self.market.load(tables["market"], partitions)
        self.joiner.assign(tables["join"], now, partitions)  # the big one: only new partitions are parsed
        self.periods.load(tables["periods"], now, portfolios)
        loading = time.monotonic() - started
        self._loaded = True
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
            "%d join entries (%d pending), %d portfolios; %.2fs of it building the handlers' state",
            self.stats.recovery_seconds, partitions, sum(len(t) for t in tables.values()),
            len(self.market.symbols), len(self.joiner.entries), self.joiner.pending(), len(self.periods.portfolios),
            loading,
        )  # fmt: skip
        return True

    def _inbound(self, events: Iterable[Any]) -> list[Inbound]:
        out = []
        logical, positions = self.logical, self._positions
        for event in events:
            msg = event.message
            out.append(Inbound(logical[msg.topic], msg.topic, msg.partition, msg.offset, msg.key, msg.value))
            positions[msg.tp] = msg.offset + 1
        for name, count in _count(i.topic for i in out).items():
            m.RECORDS_IN.labels(name).inc(count)
        return out

    def _forwarded_inbound(self, events: Iterable[Any]) -> list[Inbound]:
        """Forwarded records as the join sees them: at their source coordinates, on their route."""
        out = []
        for event in events:
            msg = event.message
            source = Provenance.of(msg.headers)
            if source is None:  # only the join agent writes this topic, always with the header
                raise RuntimeError(f"{msg.topic}@{msg.partition}:{msg.offset} has no {PROVENANCE_HEADER}")
            full = self.full[source.topic]
            out.append(
                Inbound(
                    source.topic, full, source.partition, source.offset, msg.key, msg.value, msg.partition
                )
            )
            self._positions[msg.tp] = msg.offset + 1
        m.RECORDS_IN.labels(JOIN_INPUT).inc(len(out))
        return out

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

    # ---- steps -----------------------------------------------------------------------------------

    async def _features_step(self, events: list[Any], now: int) -> int:
        out = self.market.handle(self._inbound(events), now)
        sends = self._encode(FEATURES, out.snapshots) + self._encode(PRICE_MOVES, out.moves)
        for _, record in out.moves:
            m.PRICE_MOVES.labels(record["kind"]).inc()
        m.SNAPSHOTS.inc(len(out.snapshots))
        m.REDELIVERED.labels(TRADES).inc(out.redelivered)
        if out.misrouted:
            m.MISROUTED.inc(out.misrouted)
            if not self._warned_misrouted:
                self._warned_misrouted = True
                log.warning(
                    "%d trades arrived on another partition than Kafka's default (murmur2) partitioner "
                    "gives their symbol: produce trades with it (tradeloop_worker_misrouted_total)", out.misrouted,
                )  # fmt: skip
        await self._deliver(sends + self._dead(out.dead))
        self._apply(self.market_table, self.full[TRADES], out.writes)
        handled = out.accepted + out.redelivered + len(out.dead)
        m.EVENTS_IN.labels(TRADES).inc(handled)
        return handled

    async def _join_step(self, events: list[Any], now: int) -> int:
        joinable, dead = self.inputs.events(self._inbound(events), now)
        here, forwards = self.router.split(joinable)
        internal = self.full[JOIN_INPUT]
        sends = [
            Send(internal, f.key, f.value, f.ts, f.partition, [(PROVENANCE_HEADER, f.provenance.header())])
            for f in forwards
        ]  # fmt: skip
        m.FORWARDED.inc(len(forwards))
        for name, count in _count(e.topic for e in joinable).items():
            m.EVENTS_IN.labels(name).inc(count)
        async with self._join_lock:
            await self._emit_join(self.joiner.handle(here, now), sends + self._dead(dead))
        return len(joinable) + len(dead)

    async def _forwarded_step(self, events: list[Any], now: int) -> int:
        joinable, dead = self.inputs.events(self._forwarded_inbound(events), now)
        async with self._join_lock:
            await self._emit_join(self.joiner.handle(joinable, now), self._dead(dead))
        return len(joinable) + len(dead)

    async def _emit_join(self, out: JoinBatch, also: list[Send]) -> None:
        full = self.settings.topic(EXPERIENCES)
        sends = [Send(full, e.key.encode(), e.value, e.record["ts"]) for e in out.experiences]
        m.EVENTS_OUT.labels(EXPERIENCES).inc(len(sends))
        for e in out.experiences:
            m.EXPERIENCES.labels(e.record["status"]).inc()
        internal = self.full[PERIODS_INPUT]
        sends += [Send(internal, portfolio.encode(), value, None)
                  for portfolio, value in period_inputs(e.record for e in out.experiences)]  # fmt: skip
        for result, count in out.results.items():
            m.JOIN_RESULTS.labels(result).inc(count)
        self.stats.experiences += len(out.experiences)
        await self._deliver(sends + also + self._dead(out.dead))
        self._apply(self.join_table, self.full[SIGNALS], out.writes)

    async def _periods_step(self, events: list[Any], now: int) -> int:
        async with self._periods_lock:
            out = self.periods.handle(self._inbound(events), now)
            await self._emit_periods(out.periods, out.dead, out.writes)
        return len(events)

    async def _emit_periods(self, periods: list[tuple[str, dict[str, Any]]], dead: list[DeadLetter],
                            writes: list[Any]) -> None:  # fmt: skip
        m.PERIODS.inc(len(periods))
        await self._deliver(self._encode(ALLOCATION_PERIODS, periods) + self._dead(dead))
        self._apply(self.periods_table, self.full[PERIODS_INPUT], writes)

    async def _tick(self) -> None:
        """Wall-clock work: idle expiry, features-lagging resolutions, idle periods, lag gauges."""
        if not self._ensure_loaded():
            return
        self._in_flight += 1
        try:
            now = now_us()
            async with self._join_lock:
                await self._emit_join(self.joiner.tick(now), [])
            async with self._periods_lock:
                out = self.periods.tick(now)
                await self._emit_periods(out.periods, out.dead, out.writes)
        finally:
            self._in_flight -= 1
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
        DataDir(self.settings.data_dir).agents.mkdir(parents=True, exist_ok=True)
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


def _steps(events: list[Any], max_bytes: int) -> list[list[Any]]:
    """``events`` cut into consecutive runs of at most ``max_bytes`` of values (at least one each)."""
    steps: list[list[Any]] = []
    current: list[Any] = []
    size = 0
    for event in events:
        value = event.message.value
        length = len(value) if value else 0
        if current and size + length > max_bytes:
            steps.append(current)
            current, size = [], 0
        current.append(event)
        size += length
    if current:
        steps.append(current)
    return steps


def tune_gc() -> None:
    """Collect young objects every 50,000 allocations instead of every 700.

    The handlers allocate a few dicts and lists per event while holding hundreds of thousands of
    long-lived objects (join entries, snapshots); with CPython's default threshold the cyclic
    collector ran often enough to cost a fifth of the join step (bench/stream_throughput.py).
    Almost all of this memory is freed by reference counting, so collecting less often only
    delays freeing the rare cycle.
    """
    gc.set_threshold(50_000, 20, 100)


def event_loop(settings: Settings) -> asyncio.AbstractEventLoop:
    """The worker's event loop: ``agents.event_loop`` (uvloop or asyncio's), with a stop deadline.

    Faust installs its own signal handlers on the loop; this loop arms a
    :class:`~streams.lifetime.StopDeadline` when they fire, so a shutdown that waits on an
    unreachable broker still ends within ``stop_grace_seconds``.
    """
    base: type[asyncio.AbstractEventLoop] = asyncio.SelectorEventLoop
    if settings.agents.event_loop == "uvloop":
        import uvloop

        base = uvloop.Loop
    return deadline_event_loop(StopDeadline(settings.stop_grace_seconds), base)


def run(settings: Settings) -> int:
    """Build and run the stream worker on its event loop (:func:`event_loop`); returns its exit code."""
    tune_gc()
    asyncio.set_event_loop(event_loop(settings))  # before anything asks for a loop
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
