"""The inference worker: threads that wire the readers, the sizer and the weights publisher to Kafka.

Threads of one worker:

* **control**: control commands and model updates (no group, from the beginning): verify, build,
  swap; acknowledge every change with an immediate heartbeat.
* **data**: feature snapshots (the last ``features_backfill`` per partition, then live),
  outcomes (the sizer canary's realised uplift), allocation periods (the portfolios, and the
  allocator canary's realised uplift) and published weights; settles both canaries.
* **serve**: sizing requests as the consumer group ``inference.group_id``; whatever has arrived is
  scored as one batch (up to ``max_batch``), decisions go out keyed by signal id, offsets are
  committed after the decisions are acknowledged (at least once).
* **weights**: every ``weights_interval_seconds``, the worker holding partition 0 of the sizing
  requests publishes StrategyWeights per portfolio (one publisher per group, no extra election).
* **heartbeat**: versions serving, canary and control state, key gauges.

Run it with ``tradeloop infer`` or ``python -m agents.inference.worker`` (settings from the
environment).

Example:
    >>> with InferenceWorker(settings) as worker:      # doctest: +SKIP
    ...     worker.wait_ready()
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from confluent_kafka import KafkaException, Message, TopicPartition

from agents.inference.acks import Acknowledgements
from agents.inference.allocator_canary import AllocatorCanary, allocator_canary
from agents.inference.weights import WeightsPlanner
from streams.clock import new_event_id
from streams.errors import SchemaDecodeError, TradeloopError
from streams.heartbeat import Heartbeater, component_id
from streams.kafka.consumer import EventConsumer
from streams.kafka.producer import EventProducer
from streams.lifetime import StopDeadline, on_stop_signals
from streams.metrics import serve_metrics
from streams.serving.constants import ALLOCATOR, COMPONENT, SIZER
from streams.serving.core import ServingCore
from streams.serving.model_store import sizer_canary
from streams.settings import Settings
from streams.topics import ALLOCATION_PERIODS, SIZING_DECISIONS, SIZING_REQUESTS, STRATEGY_WEIGHTS

__all__ = ["InferenceWorker", "main"]

log = logging.getLogger(__name__)

_STOPPING_FLUSH_SECONDS = 2.0  # the last wait for acknowledgements once a stop was requested


class InferenceWorker:
    """One inference worker. ``start()`` runs it on background threads; ``stop()`` ends it cleanly."""

    def __init__(self, settings: Settings, worker_id: str | None = None) -> None:
        self.settings = settings
        conf = settings.inference
        # A suffix keeps workers in one process (tests, benchmarks) apart.
        self.worker_id = worker_id or conf.worker_id or f"{component_id(COMPONENT)}-{new_event_id()[:4]}"
        # Decisions go out at once, without Nagle's algorithm holding one back behind the last.
        self.producer = EventProducer(
            settings, self.worker_id, config={"linger.ms": 0, "socket.nagle.disable": True}
        )
        # The serving core is shared with the engine's in-process sizer (streams.engine_sizer).
        self.core = ServingCore(
            settings, self.worker_id, self.producer,
            canaries={SIZER: sizer_canary(conf), ALLOCATOR: allocator_canary(conf)},
        )  # fmt: skip
        self.metrics = self.core.metrics
        self.control = self.core.control
        self.store = self.core.store
        self.features = self.core.features
        self.sizer = self.core.sizer
        self.planner = WeightsPlanner(self.worker_id, conf.max_weight_step)
        self.dead_letters = self.core.dead_letters
        self.heartbeater = Heartbeater(
            settings, COMPONENT, ident=self.worker_id, gauges=self._gauges, info=self.core.info,
            status=self.core.status, interval=conf.heartbeat_interval_seconds, producer=self.producer,
        )  # fmt: skip
        self.assigned: frozenset[int] = frozenset()
        self._acks = Acknowledgements()
        self._ready = self.core.ready
        self._assigned_once = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._errors: list[BaseException] = []

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> InferenceWorker:
        self._spawn("control", self._control_loop)
        self._spawn("data", self._data_loop)
        self._spawn("serve", self._serve_loop)
        self._spawn("weights", self._weights_loop)
        return self

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        def run() -> None:
            try:
                target()
            except BaseException as exc:
                # An unknown failure stops the whole worker, so a supervisor restarts it.
                log.exception("inference %s thread failed", name)
                self._errors.append(exc)
                self._stop.set()

        thread = threading.Thread(target=run, name=f"inference-{name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def wait_ready(self, timeout: float = 30.0) -> bool:
        """Wait until the model history is loaded and the worker consumes requests."""
        return self._ready.wait(timeout) and self._assigned_once.wait(timeout)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(15.0)
        self.heartbeater.stop()

    @property
    def failed(self) -> list[BaseException]:
        return list(self._errors)

    def run_forever(self, metrics_port: int | None = None) -> None:
        """Start, serve ``/metrics``, block until SIGTERM/SIGINT/SIGHUP or a thread fails, then stop.

        A stop signal also arms a deadline: the process exits within ``stop_grace_seconds``, flushed
        or not (an unreachable broker acknowledges nothing).
        """
        serve_metrics(self.settings, COMPONENT, self.worker_id, metrics_port)
        on_stop_signals(self._stop.set, StopDeadline(self.settings.stop_grace_seconds))
        self.start()
        try:
            while not self._stop.wait(0.5):
                pass
        finally:
            self.stop()
        if self._errors:
            raise TradeloopError(f"inference worker stopped after a failure: {self._errors[0]!r}")

    def __enter__(self) -> InferenceWorker:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- heartbeat content -----------------------------------------------------------------
    @property
    def decisions(self) -> int:
        return self.core.decisions

    @property
    def fallbacks(self) -> int:
        return self.core.fallbacks

    def _gauges(self) -> dict[str, float]:
        return {**self.core.gauges(), "partitions": len(self.assigned)}

    def acknowledge(self) -> None:
        """Publish a heartbeat now: the trainer learns of a swap without waiting a period."""
        self.heartbeater.beat()

    # -- threads ---------------------------------------------------------------------------
    def _control_loop(self) -> None:
        def ready() -> None:
            # Objects that live as long as the process (models, schemas, clients) leave the
            # collector's generations: fewer and shorter pauses on the serving thread.
            gc.collect()
            gc.freeze()
            self.heartbeater.start()

        self.core.follow_control(self._stop, on_change=self.acknowledge, on_ready=ready)

    def _data_loop(self) -> None:
        backfill = self.settings.inference.features_backfill
        tails = {**self.core.data_topics(), ALLOCATION_PERIODS: backfill, STRATEGY_WEIGHTS: backfill}
        self.core.follow_data(self._stop, tails, on_change=self.acknowledge, other=self._data)

    def _data(self, topic: str, record: dict[str, Any]) -> None:
        """Records the serving core does not handle: allocation periods and published weights."""
        if topic == ALLOCATION_PERIODS:
            self.planner.observe_period(record)
            judged = self.store.slot(ALLOCATOR).canary
            if isinstance(judged, AllocatorCanary):
                judged.observe(record)
        else:
            self.planner.observe_published(record)

    def _on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        self.assigned = frozenset(p.partition for p in partitions)
        self._assigned_once.set()
        log.info("%s assigned sizing-request partitions %s", self.worker_id, sorted(self.assigned))

    def _on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        self._commit(consumer, asynchronous=False, flush=True)
        self._acks.forget({p.partition for p in partitions})
        self.assigned = frozenset()

    def _flush(self, timeout: float) -> None:
        """Wait up to ``timeout`` for every decision to be acknowledged, but only a moment once the
        worker is stopping: the wait is cut short by a stop request.

        Raises:
            DeliveryError: decisions still unacknowledged (or failed) when the wait ends.
        """
        deadline = time.monotonic() + timeout
        while self.producer.pending() and not self._stop.is_set() and time.monotonic() < deadline:
            self.producer.poll(0.1)
        left = max(0.0, deadline - time.monotonic())  # never negative: flush(-1) would wait forever
        self.producer.flush(min(left, _STOPPING_FLUSH_SECONDS) if self._stop.is_set() else left)

    def _commit(self, consumer: Any, asynchronous: bool, flush: bool = False) -> None:
        """Commit past the requests whose decisions the broker acknowledged (at least once).

        The serving loop never flushes: it commits what the delivery reports have confirmed so far
        (``flush`` is for a revocation or the stop, which first wait for every decision).
        """
        if flush:
            try:
                self._flush(10.0)
            except TradeloopError as exc:
                log.warning("decisions unacknowledged at commit: %s", exc)
        positions = self._acks.positions()
        if not positions:
            return
        topic = self.settings.topic(SIZING_REQUESTS)
        offsets = [TopicPartition(topic, partition, offset) for partition, offset in positions.items()]
        try:
            consumer.commit(offsets=offsets, asynchronous=asynchronous)
        except KafkaException as exc:
            log.warning("commit failed: %s", exc)

    def _serve_loop(self) -> None:
        if not self._ready.wait(60.0):
            raise TradeloopError("model history not loaded within 60s")
        conf = self.settings.inference
        # Groups are namespaced like topics, so deployments (and tests) sharing a broker stay apart.
        group = conf.group_id or f"{self.settings.topic_prefix}inference"
        consumer = EventConsumer(
            self.settings, group, self.worker_id,
            config={"fetch.wait.max.ms": conf.request_fetch_wait_ms, "socket.nagle.disable": True},
        )  # fmt: skip
        consumer.subscribe([SIZING_REQUESTS], on_assign=self._on_assign, on_revoke=self._on_revoke)
        raw = consumer.raw
        next_commit = time.monotonic() + conf.commit_interval_seconds
        try:
            while not self._stop.is_set():
                messages = consumer.poll_batch(conf.max_batch, 0.05)
                now = time.monotonic()
                if messages:
                    self._serve(consumer, messages, time.perf_counter_ns())
                if now >= next_commit:
                    self._commit(raw, asynchronous=True)
                    next_commit = now + conf.commit_interval_seconds
                if self.core.settle(now, (SIZER,)):
                    self.acknowledge()
            self._commit(raw, asynchronous=False, flush=True)
        finally:
            consumer.close()

    def _serve(self, consumer: EventConsumer, messages: list[Message], received_ns: int) -> None:
        requests, answered = [], []
        for message in messages:
            done = self._acks.track(message.partition() or 0, message.offset() or 0)
            try:
                requests.append(consumer.decode(message))
                answered.append(done)
            except SchemaDecodeError as exc:
                if self.dead_letters is not None:
                    self.dead_letters.send(message, exc, on_delivery=_when_delivered(done))
                else:
                    done()
        if not requests:
            return
        batch, records = self.core.answer(requests, received_ns)
        for record, done in zip(records, answered, strict=True):
            self.producer.send(SIZING_DECISIONS, record["signal_id"], record, on_delivery=_when_delivered(done))
        self.producer.poll(0)
        self.core.shadow(batch)

    def _weights_loop(self) -> None:
        interval = self.settings.inference.weights_interval_seconds
        while not self._stop.wait(interval):
            if 0 not in self.assigned:
                continue
            allocator = self.store.slot(ALLOCATOR).serving
            for record in self.planner.plan(allocator, self.control.kill_switch):
                self.producer.send(STRATEGY_WEIGHTS, record["portfolio"], record)
                self.metrics.weights_published(record["fallback"], record)
                if record["fallback_reason"]:
                    self.metrics.fallback(record["fallback_reason"])
            self.producer.poll(0)


def _when_delivered(done: Callable[[], None]) -> Callable[[Any, Any], None]:
    """A delivery callback that marks a request done (a failed delivery is counted and logged by
    the producer; its request is committed past like the rest, as the engine stopped waiting long ago)."""

    def delivered(error: Any, message: Any) -> None:
        done()

    return delivered


def main() -> None:
    """``python -m agents.inference.worker``: one worker with settings from the environment."""
    settings = Settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(name)s: %(message)s")
    InferenceWorker(settings).run_forever()


if __name__ == "__main__":
    main()
