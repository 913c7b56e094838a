"""The engine SDK: what a trading engine imports to talk to tradeloop.

Example (the README's ten lines):
    >>> from streams.sdk import EngineClient                          # doctest: +SKIP
    >>> with EngineClient.connect("127.0.0.1:19092") as engine:       # doctest: +SKIP
    ...     engine.trade("BTC-USD", price=50_000.0, size=0.1, side="BUY")
    ...     engine.signal("sig-1", strategy="ema_cross_fast", family="ema_cross", symbol="BTC-USD",
    ...                   side="BUY", price=50_000.0, score=0.83, features={"eng_momentum": 0.4},
    ...                   horizon_seconds=120)
    ...     decision = engine.request_size("sig-1", strategy="ema_cross_fast", symbol="BTC-USD",
    ...                                    side="BUY", score=0.83, features={}, timeout=1.0)
    ...     engine.outcome("sig-1", symbol="BTC-USD", strategy="ema_cross_fast", side="BUY",
    ...                    entry_price=50_000.0, exit_price=50_400.0,
    ...                    size_multiplier=decision.multiplier, fees=2.0)

Trades, signals and outcomes are keyed by symbol and batched per partition
(:class:`streams.batching.EventBatcher`, settings ``batching``): many events travel in one
batch record, which is what lets the stream worker keep up with market data.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

from streams.batching import EventBatcher
from streams.clock import new_event_id, now_us
from streams.errors import TradeloopError
from streams.kafka.consumer import EventConsumer
from streams.kafka.producer import EventProducer
from streams.settings import Settings
from streams.topics import OUTCOMES, SIGNALS, SIZING_DECISIONS, SIZING_REQUESTS, STRATEGY_WEIGHTS, TRADES

if TYPE_CHECKING:
    from streams.engine_sizer import EngineSizer

__all__ = [
    "DECISION_READER_CONFIG",
    "REQUEST_PRODUCER_CONFIG",
    "EngineClient",
    "SizeTimeoutError",
    "SizingDecision",
    "StrategyWeights",
]

log = logging.getLogger(__name__)


# The request path's clients (bench/bus_latency.py uses the same two for its bare round trip).
# Requests go out at once: the engine is waiting on the answer. The decision reader asks often:
# Tansu answers a fetch only when fetch.wait.max.ms expires, so this is the longest a decision waits
# on the broker once it is there. Nagle's algorithm off: a small request written while the previous
# one is unacknowledged would otherwise wait for that acknowledgement.
REQUEST_PRODUCER_CONFIG: Final[Mapping[str, Any]] = {"linger.ms": 0, "socket.nagle.disable": True}
DECISION_READER_CONFIG: Final[Mapping[str, Any]] = {"fetch.wait.max.ms": 5, "socket.nagle.disable": True}


class SizeTimeoutError(TradeloopError):
    """No sizing decision arrived within the timeout; the engine should use its own safe size."""


@dataclass(frozen=True, slots=True)
class SizingDecision:
    signal_id: str
    multiplier: float
    model_version: str | None
    fallback: bool
    fallback_reason: str | None
    latency_us: int
    worker_id: str
    ts: int = 0  # when the decision was made (microseconds since the epoch)


@dataclass(frozen=True, slots=True)
class StrategyWeights:
    portfolio: str
    weights: dict[str, float]
    model_version: str | None
    fallback: bool
    ts: int


class EngineClient:
    """Produces trades, signals and outcomes; requests sizes; receives strategy weights.

    Produce calls are asynchronous and confirmed: events wait at most ``batching.linger_ms`` to be
    batched, librdkafka retries until ``message.timeout.ms``, failures are counted per event, and
    :meth:`flush` (called by :meth:`close`) raises if any event was not delivered. Nothing is
    dropped silently. A record that does not fit its schema raises in the call that made it.
    """

    def __init__(
        self, settings: Settings, client_id: str | None = None, producer_config: Mapping[str, Any] | None = None
    ) -> None:
        """A client with ``settings``; ``producer_config`` overrides librdkafka producer properties."""
        self.settings = settings
        self.client_id = client_id or f"engine-{new_event_id()[:8]}"
        self._producer = EventProducer(settings, self.client_id, config=producer_config)
        self._batcher = EventBatcher(self._producer, settings.batching, self._partition_count)
        self._requests = EventProducer(settings, f"{self.client_id}-requests", config=REQUEST_PRODUCER_CONFIG)
        self._pending: dict[str, Future[SizingDecision]] = {}
        self._lock = threading.Lock()
        self._decisions: EventConsumer | None = None
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._local_sizer: EngineSizer | None = None

    def _partition_count(self, topic: str) -> int:
        """The topic's partition count from the broker; the configured count if it cannot say now.

        Batches are cut per partition, so the count must be known before the first event goes
        out; an engine starting during a broker outage keeps producing (librdkafka queues and
        retries) on the assumption that the topics have ``settings.partitions`` partitions.
        """
        try:
            return self._producer.partitions(topic, timeout=2.0)
        except TradeloopError as exc:
            log.warning("%s; batching for %d partitions, as configured", exc, self.settings.partitions)
            return self.settings.partitions

    @classmethod
    def connect(cls, bootstrap: str, **settings: Any) -> EngineClient:
        """A client for the Kafka at ``bootstrap``; other settings from the environment or kwargs."""
        return cls(Settings(kafka_bootstrap=bootstrap, **settings))

    # -- producing -------------------------------------------------------------------------
    def trade(self, symbol: str, price: float, size: float, side: str, ts: int | None = None) -> str:
        event_id = new_event_id()
        record = {"event_id": event_id, "ts": ts or now_us(), "symbol": symbol, "price": price,
                  "size": size, "side": side}  # fmt: skip
        self._batcher.add(TRADES, symbol, record)
        return event_id

    def signal(
        self,
        signal_id: str,
        *,
        strategy: str,
        family: str,
        symbol: str,
        side: str,
        price: float,
        score: float,
        features: Mapping[str, float],
        horizon_seconds: float,
        action: float = 1.0,
        model_version: str | None = None,
        portfolio: str = "main",
        ts: int | None = None,
    ) -> None:
        record = {
            "event_id": new_event_id(), "ts": ts or now_us(), "signal_id": signal_id, "strategy": strategy,
            "family": family, "portfolio": portfolio, "symbol": symbol, "side": side, "price": price,
            "score": score, "features": dict(features), "horizon_seconds": horizon_seconds,
            "action": action, "model_version": model_version,
        }  # fmt: skip
        self._batcher.add(SIGNALS, symbol, record)

    def outcome(
        self,
        signal_id: str,
        *,
        symbol: str,
        strategy: str,
        entry_price: float,
        exit_price: float,
        side: str,
        size_multiplier: float,
        fees: float,
        notional: float = 1_000.0,
        exit_reason: str = "TIME",
        ts: int | None = None,
    ) -> None:
        """Report how a signal ended; the unit return and P&L are derived from the prices.

        ``side`` is the signal's side and has no default: with the wrong one every return would
        have the wrong sign. (The join also checks it against the signal.)

        Raises:
            ValueError: ``side`` is not BUY or SELL.
        """
        if side not in ("BUY", "SELL"):
            raise ValueError(f"side must be BUY or SELL, got {side!r}")
        direction = 1.0 if side == "BUY" else -1.0
        gross = direction * (exit_price - entry_price) / entry_price
        fee_return = fees / (notional * size_multiplier) if size_multiplier > 0 else 0.0
        return_unit = gross - fee_return
        record = {
            "event_id": new_event_id(), "ts": ts or now_us(), "signal_id": signal_id, "symbol": symbol,
            "strategy": strategy, "entry_price": entry_price, "exit_price": exit_price,
            "size_multiplier": size_multiplier, "return_unit": return_unit,
            "pnl": return_unit * notional * size_multiplier, "fees": fees, "exit_reason": exit_reason,
            "side": side,
        }  # fmt: skip
        self._batcher.add(OUTCOMES, symbol, record)

    def send(self, topic: str, key: str, record: Mapping[str, Any]) -> None:
        """Produce any record as one single-event record (for engines that build records themselves)."""
        self._producer.send(topic, key, record)

    def flush(self, timeout: float = 30.0) -> None:
        """Produce every waiting batch and wait for every event to be acknowledged.

        Raises:
            DeliveryError: some event was not acknowledged within ``timeout`` or failed.
        """
        self._batcher.flush(timeout)

    # -- sizing ----------------------------------------------------------------------------
    def _start_decisions(self) -> None:
        with self._lock:
            if self._decisions is not None:
                return
            consumer = EventConsumer(
                self.settings,
                f"{self.client_id}-decisions",
                self.client_id,
                config=DECISION_READER_CONFIG,
            )
            consumer.assign_all([SIZING_DECISIONS], from_beginning=False)
            self._decisions = consumer
        thread = threading.Thread(target=self._read_decisions, name="sdk-decisions", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _read_decisions(self) -> None:
        assert self._decisions is not None
        while not self._stop.is_set():
            for message in self._decisions.poll_batch(500, 0.1):
                try:
                    record = self._decisions.decode(message)
                except TradeloopError:
                    log.warning("undecodable sizing decision at offset %s", message.offset())
                    continue
                if record["client_id"] != self.client_id:
                    continue
                with self._lock:
                    future = self._pending.pop(record["signal_id"], None)
                if future is not None:
                    future.set_result(_decision(record))

    def request_size_async(
        self, signal_id: str, *, strategy: str, symbol: str, side: str, score: float,
        features: Mapping[str, float],
    ) -> Future[SizingDecision]:  # fmt: skip
        """Ask for a multiplier; the future resolves when the decision arrives."""
        self._start_decisions()
        future: Future[SizingDecision] = Future()
        with self._lock:
            self._pending[signal_id] = future
        record = {
            "event_id": new_event_id(), "ts": now_us(), "signal_id": signal_id, "client_id": self.client_id,
            "strategy": strategy, "symbol": symbol, "side": side, "score": score, "features": dict(features),
        }  # fmt: skip
        self._requests.send(SIZING_REQUESTS, signal_id, record)
        self._requests.poll(0)
        return future

    def request_size(self, signal_id: str, *, timeout: float = 1.0, **request: Any) -> SizingDecision:
        """Ask for a multiplier and wait for it.

        Raises:
            SizeTimeoutError: no decision within ``timeout`` seconds.
        """
        future = self.request_size_async(signal_id, **request)
        try:
            return future.result(timeout)
        except TimeoutError:
            with self._lock:
                self._pending.pop(signal_id, None)
            raise SizeTimeoutError(f"no sizing decision for {signal_id} within {timeout}s") from None

    def local_sizer(self, wait: float = 30.0) -> EngineSizer:
        """An in-process sizer for this engine (started once, closed with the client).

        It answers :meth:`~streams.engine_sizer.EngineSizer.size` in the calling thread with the
        models the inference workers serve, verified and hot-swapped the same way, and reports its
        decisions and heartbeats like a worker. Waits up to ``wait`` seconds for the model history.
        """
        from streams.engine_sizer import EngineSizer  # onnxruntime is loaded only by engines that size here

        with self._lock:
            if self._local_sizer is None:
                self._local_sizer = EngineSizer(self.settings, client_id=self.client_id).start()
            sizer = self._local_sizer
        if wait > 0 and not sizer.wait_ready(wait):
            log.warning("in-process sizer: model history not loaded within %.0fs; the rule answers", wait)
        return sizer

    # -- weights ---------------------------------------------------------------------------
    def subscribe_weights(
        self, callback: Callable[[StrategyWeights], None], from_beginning: bool = False
    ) -> threading.Thread:
        """Call ``callback`` with every StrategyWeights record published from now on."""
        consumer = EventConsumer(self.settings, f"{self.client_id}-weights", self.client_id)
        consumer.assign_all([STRATEGY_WEIGHTS], from_beginning=from_beginning)

        def run() -> None:
            try:
                while not self._stop.is_set():
                    for message in consumer.poll_batch(100, 0.1):
                        try:
                            record = consumer.decode(message)
                        except TradeloopError:
                            log.warning("undecodable strategy weights at offset %s", message.offset())
                            continue
                        callback(_weights(record))
            finally:
                consumer.close()

        thread = threading.Thread(target=run, name="sdk-weights", daemon=True)
        thread.start()
        self._threads.append(thread)
        return thread

    def close(self, timeout: float = 30.0) -> None:
        """Flush every produced record, then stop the background readers."""
        try:
            self._batcher.close(timeout)
            self._requests.close(timeout)
        finally:
            self._stop.set()
            for thread in self._threads:
                thread.join(2.0)
            if self._decisions is not None:
                self._decisions.close()
            if self._local_sizer is not None:
                self._local_sizer.close()

    def __enter__(self) -> EngineClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _decision(record: Mapping[str, Any]) -> SizingDecision:
    return SizingDecision(
        signal_id=record["signal_id"], multiplier=record["multiplier"], model_version=record["model_version"],
        fallback=record["fallback"], fallback_reason=record["fallback_reason"],
        latency_us=record["latency_us"], worker_id=record["worker_id"], ts=record["ts"],
    )  # fmt: skip


def _weights(record: Mapping[str, Any]) -> StrategyWeights:
    return StrategyWeights(
        portfolio=record["portfolio"],
        weights=dict(zip(record["strategies"], record["weights"], strict=True)),
        model_version=record["model_version"], fallback=record["fallback"], ts=record["ts"],
    )  # fmt: skip
