"""Run the simulator against Kafka: pacing, producing, progress and metrics.

``tradeloop simulate`` and ``tradeloop up`` call :func:`run_simulation`. Events go to the
prefixed ``trades``, ``signals`` and ``outcomes`` topics keyed by symbol, batched per partition
exactly as the engine SDK does it (:class:`streams.batching.EventBatcher`).

Kafka message timestamps are the produce (wall-clock) time; the event time is the record's ``ts``.
Simulated event time starts at 2026-01-01, and a broker with time-based retention would delete
records stamped that far in the past as soon as they arrive.

Example:
    >>> parse_speed("x10"), parse_speed("realtime"), parse_speed("max")
    (10.0, 1.0, None)
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, Final

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from streams.batching import EventBatcher
from streams.errors import BrokerError, ConfigError
from streams.kafka.admin import list_topics
from streams.kafka.producer import EventProducer
from streams.metrics import serve_metrics
from streams.settings import Settings
from streams.simulator.config import SimConfig
from streams.simulator.engine import SimEvent, Simulator, Sizer
from streams.simulator.metrics import EVENT_TIME, EVENTS, OPEN_POSITIONS
from streams.topics import OUTCOMES, SIGNALS, TRADES

__all__ = ["SIM_TOPICS", "MissingTopicsError", "check_topics", "parse_speed", "run_simulation"]

log = logging.getLogger(__name__)

SIM_TOPICS: Final = (TRADES, SIGNALS, OUTCOMES)
_LOG_EVERY_SECONDS: Final = 5.0
_REFRESH_SECONDS: Final = 0.25


class MissingTopicsError(BrokerError):
    """The simulator's topics do not exist on the broker."""


def parse_speed(speed: str) -> float | None:
    """Speed-up over event time: ``max`` -> None (no pacing), ``realtime`` -> 1, ``x10`` -> 10.

    Raises:
        ConfigError: anything else, or a factor that is not a positive number.
    """
    text = speed.strip().lower()
    if text == "max":
        return None
    if text == "realtime":
        return 1.0
    try:
        factor = float(text.removeprefix("x").removesuffix("x"))
    except ValueError:
        factor = math.nan
    if not (text.startswith("x") or text.endswith("x")) or not math.isfinite(factor) or factor <= 0:
        raise ConfigError(f"speed must be max, realtime or xK with K > 0 (e.g. x10), got {speed!r}")
    return factor


def check_topics(settings: Settings) -> None:
    """Fail with one clear line when the simulator's topics are missing.

    Raises:
        MissingTopicsError: a topic is missing; the message says to run ``tradeloop topics create``.
        BrokerError: the broker cannot be reached.
    """
    states = {s.name: s for s in list_topics(settings)}
    missing = [settings.topic(t) for t in SIM_TOPICS if not states[settings.topic(t)].exists]
    if missing:
        raise MissingTopicsError(
            f"topics {', '.join(missing)} do not exist at {settings.bootstrap}; run `tradeloop topics create`"
        )


class _Reporter:
    """A rich progress bar, or a log line every few seconds when no terminal bar is wanted."""

    def __init__(self, enabled: bool, label: str, total: int | None, console: Console | None) -> None:
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._start = self._last_log = time.monotonic()
        self._label = label
        if enabled:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                console=console or Console(stderr=True),
            )
            self._task = self._progress.add_task(label, total=total, rate="")

    def __enter__(self) -> _Reporter:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, done: int, events: int, counts: dict[str, int]) -> None:
        now = time.monotonic()
        rate = events / max(now - self._start, 1e-9)
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=done, rate=f"{rate:,.0f} events/s")
        elif now - self._last_log >= _LOG_EVERY_SECONDS:
            self._last_log = now
            per_topic = " ".join(f"{t}={counts[t]:,}" for t in SIM_TOPICS)
            log.info("%s: %s events (%s/s) %s", self._label, f"{events:,}", f"{rate:,.0f}", per_topic)


class _Pacer:
    """Holds events back until their event time is due at ``speed`` (None: never waits)."""

    def __init__(self, speed: float | None, producer: EventProducer, should_stop: Callable[[], bool]) -> None:
        self._speed = speed
        self._producer = producer
        self._should_stop = should_stop
        self._origin: tuple[int, float] | None = None

    def wait(self, ts: int) -> bool:
        """Block until event time ``ts`` is due; False when told to stop while waiting."""
        if self._speed is None:
            return True
        if self._origin is None:
            self._origin = (ts, time.monotonic())
        due = self._origin[1] + (ts - self._origin[0]) / 1e6 / self._speed
        while (left := due - time.monotonic()) > 0:
            if self._should_stop():
                return False
            # Serve delivery reports while idle, in short slices so a stop is noticed quickly.
            self._producer.poll(min(left, _REFRESH_SECONDS))
        return True


def _after_warmup(
    sim: Simulator, warmup: int, events: int | None, live: threading.Event
) -> Iterator[SimEvent]:
    """The warm-up backfill, then the live stream (``live`` is set between the two)."""
    yield from sim.backfill(warmup)
    log.info("warm-up of %d signal/outcome pairs written; continuing live", warmup)
    live.set()
    yield from sim.events(events)


def run_simulation(
    settings: Settings,
    events: int | None = None,
    seed: int = 1,
    speed: str = "max",
    backfill: int | None = None,
    duration: float | None = None,
    progress: bool = True,
    *,
    sizer: Sizer | None = None,
    stop: threading.Event | None = None,
    metrics: bool = True,
    console: Console | None = None,
    warmup: int | None = None,
) -> dict[str, int]:
    """Simulate and produce events; returns how many records went to each logical topic.

    Args:
        settings: where to produce (bootstrap, topic prefix) and the simulator's knobs.
        events: stop after this many events (None: until ``duration``, ``stop`` or Ctrl-C).
        seed: the simulation seed; the same seed produces identical records.
        speed: ``max``, ``realtime`` or ``xK`` (K times faster than event time).
        backfill: write this many signal/outcome pairs plus their prints as fast as possible
            and stop once the last outcome is out; excludes ``events`` and pacing.
        duration: stop after this many wall-clock seconds.
        progress: a rich progress bar; otherwise a log line every few seconds.
        sizer: optional sizing callback, see :class:`streams.simulator.Simulator`.
        stop: set it from another thread (or a SIGTERM handler) to stop early; records produced
            so far are flushed either way, and so they are on Ctrl-C.
        metrics: serve Prometheus metrics on the simulator's port.
        console: where the progress bar draws (default: stderr).
        warmup: first write this many signal/outcome pairs as fast as possible (the bootstrap data
            set, sized at 1.0), then continue the same simulation, in the same event time, paced
            at ``speed`` and sized by ``sizer``.

    Raises:
        ConfigError: bad speed, or both ``events`` and ``backfill``.
        MissingTopicsError: the topics do not exist yet.
        DeliveryError: records could not be delivered.
    """
    if backfill is not None and events is not None:
        raise ConfigError("give either events or backfill, not both")
    for name, value in (("events", events), ("backfill", backfill), ("duration", duration)):
        if value is not None and value < 0:
            raise ConfigError(f"{name} must be >= 0, got {value}")
    factor = None if backfill is not None else parse_speed(speed)
    check_topics(settings)
    if metrics:
        serve_metrics(settings, "simulator", f"simulator-{seed}-{os.getpid()}")
    live = threading.Event()
    if warmup is None:
        live.set()

    def gated(signal: dict[str, Any]) -> float | tuple[float, str | None]:
        # The warm-up is history: it is sized at 1.0, as if no model existed yet.
        return sizer(signal) if sizer is not None and live.is_set() else 1.0

    sim = Simulator(SimConfig.from_settings(settings.simulator, seed=seed), sizer=gated)
    if backfill is not None:
        stream: Iterator[SimEvent] = sim.backfill(backfill)
    elif warmup is not None:
        stream = _after_warmup(sim, warmup, events, live)
    else:
        stream = sim.events(events)
    label, total = ("backfill pairs", backfill) if backfill is not None else ("events", events)
    counts = dict.fromkeys(SIM_TOPICS, 0)
    counters = {t: EVENTS.labels(topic=t) for t in SIM_TOPICS}
    deadline = None if duration is None else time.monotonic() + duration

    def should_stop() -> bool:
        return (deadline is not None and time.monotonic() >= deadline) or (stop is not None and stop.is_set())

    produced = 0
    with (
        EventProducer(settings, f"simulator-{seed}") as producer,
        _Reporter(progress, label, total, console) as bar,
    ):
        # Through the engine SDK's batching, as a real engine using the SDK would produce.
        batcher = EventBatcher(producer, settings.batching, producer.partitions)
        pacer = _Pacer(factor, producer, should_stop)
        next_refresh = time.monotonic() + _REFRESH_SECONDS
        try:
            for event in stream:
                if live.is_set() and not pacer.wait(event.record["ts"]):
                    break
                batcher.add(event.topic, event.key, event.record)
                counts[event.topic] += 1
                counters[event.topic].inc()
                produced += 1
                if factor is None and produced & 255:
                    continue  # at full speed, look at the clock only every 256 events
                if should_stop():
                    break
                if time.monotonic() >= next_refresh:
                    next_refresh = time.monotonic() + _REFRESH_SECONDS
                    bar.update(counts[OUTCOMES] if backfill is not None else produced, produced, counts)
                    OPEN_POSITIONS.set(sim.open_positions)
                    EVENT_TIME.set(event.record["ts"] / 1e6)
        except KeyboardInterrupt:
            log.warning("interrupted: flushing %d produced events", produced)
        bar.update(counts[OUTCOMES] if backfill is not None else produced, produced, counts)
        batcher.close()
    return counts
