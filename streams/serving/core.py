"""The serving core: what every process that sizes signals holds, follows and reports.

An inference worker (``agents.inference.worker``) and an engine's in-process sizer
(:class:`streams.engine_sizer.EngineSizer`) are the same thing seen from two places, so they share
this class rather than copies of it:

* **state**: the control switches (:class:`ControlState`), the verified models
  (:class:`ModelStore`), the latest feature snapshot per symbol (:class:`FeatureCache`) and the
  scoring with its fallback rule (:class:`Sizer`);
* **following** (:meth:`ServingCore.follow_control`, :meth:`ServingCore.follow_data`): the control
  and model-updates topics from the beginning (catch up on the history, then apply live), and the
  features and outcomes topics from their tail; each loop runs on its caller's thread;
* **answering** (:meth:`ServingCore.answer`): SizingDecision records for a batch of requests,
  counted in the ``tradeloop_inference_*`` metrics;
* **reporting**: the heartbeat content (:meth:`info`, :meth:`gauges`, :meth:`status`) that
  ``tradeloop status``, ``tradeloop control versions`` and ``RolloutWatcher`` read.

Example:
    >>> core = ServingCore(Settings(), "doc-core")
    >>> batch, records = core.answer([{"event_id": "e", "ts": 1, "signal_id": "s1", "client_id": "c",
    ...     "strategy": "momentum_1", "symbol": "X", "side": "BUY", "score": 0.9, "features": {}}])
    >>> records[0]["multiplier"], records[0]["fallback_reason"], core.info()["kill_switch"]
    (1.5, 'no_model', 'false')
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from confluent_kafka import Message

from streams.errors import SchemaDecodeError
from streams.kafka.consumer import EventConsumer
from streams.kafka.producer import EventProducer
from streams.serving.canary import Canary
from streams.serving.constants import SIZER
from streams.serving.control import ControlState
from streams.serving.follow import ControlReader, DeadLetters, assign_tail
from streams.serving.metrics import WorkerMetrics
from streams.serving.model_store import CanaryFactory, ModelStore
from streams.serving.observation import FeatureCache
from streams.serving.sizing import BatchDecision, Sizer
from streams.settings import Settings
from streams.topics import CONTROL, FEATURES, MODEL_UPDATES, OUTCOMES

__all__ = ["ServingCore"]

log = logging.getLogger(__name__)

# The records one data poll takes at most: a decode holds the GIL, and a serving thread in the same
# process (an engine's, calling size()) must not wait behind thousands of them.
_DATA_POLL_MAX = 200


class ServingCore:
    """The state, followers and heartbeat content of one serving process.

    Args:
        settings: the deployment's settings.
        ident: this server's id (heartbeat component id, ``worker`` metric label, control scope).
        producer: where dead letters go (the caller's producer).
        canaries: the models served and how each one's canary starts (see :class:`ModelStore`).
        shadows: load and score SHADOW models.
    """

    def __init__(
        self,
        settings: Settings,
        ident: str,
        producer: EventProducer | None = None,
        canaries: Mapping[str, CanaryFactory | None] | None = None,
        shadows: bool = True,
    ) -> None:
        self.settings = settings
        self.ident = ident
        self.metrics = WorkerMetrics(ident)
        self.control = ControlState(ident)
        self.store = ModelStore(settings, self.metrics, canaries, shadows)
        self.features = FeatureCache()
        self.sizer = Sizer(settings, self.store, self.control, self.features)
        self.producer = producer
        self.dead_letters = None if producer is None else DeadLetters(producer, ident, self.metrics)
        self.decisions = 0
        self.fallbacks = 0
        self.ready = threading.Event()

    # -- answering -------------------------------------------------------------------------
    def answer(
        self, requests: Sequence[Mapping[str, Any]], received_ns: int | None = None
    ) -> tuple[BatchDecision, list[dict[str, Any]]]:
        """Score ``requests`` and build their SizingDecision records (latency from ``received_ns``)."""
        received_ns = time.perf_counter_ns() if received_ns is None else received_ns
        batch = self.sizer.decide(requests)
        return batch, self.report(requests, batch, time.perf_counter_ns() - received_ns)

    def report(
        self,
        requests: Sequence[Mapping[str, Any]],
        batch: BatchDecision,
        latency_ns: int,
        decided_us: int | None = None,
    ) -> list[dict[str, Any]]:
        """The SizingDecision records of a scored batch, counted in the metrics.

        Separate from scoring so that an engine's in-process sizer can answer first and report
        off its caller's thread (``decided_us``: when the decision was made; default now).
        """
        records = Sizer.records(requests, batch, self.ident, latency_ns // 1000, decided_us)
        self.metrics.decided(len(requests), latency_ns / 1e9)
        self.decisions += len(requests)
        for reason in batch.reasons:
            if reason is not None:
                self.fallbacks += 1
                self.metrics.fallback(reason)
        if batch.missing_snapshots:
            self.metrics.stream_missing(batch.missing_snapshots)
        return records

    def shadow(self, batch: BatchDecision) -> None:
        """Score the sizer's shadow on what a model answered in ``batch`` (after sending it)."""
        differences = self.sizer.shadow(batch)
        if differences:
            self.metrics.shadow(SIZER, differences)

    # -- following -------------------------------------------------------------------------
    def consumer(self, name: str, fetch_wait_ms: int) -> EventConsumer:
        """A group-less consumer of this server, named ``<ident>-<name>``."""
        return EventConsumer(
            self.settings, f"{self.ident}-{name}", f"{self.ident}-{name}",
            config={"fetch.wait.max.ms": fetch_wait_ms},
        )  # fmt: skip

    def follow_control(
        self,
        stop: threading.Event,
        on_change: Callable[[], None],
        on_ready: Callable[[], None] | None = None,
        catch_up_timeout: float = 30.0,
    ) -> None:
        """Follow control commands and model updates until ``stop``, on the caller's thread.

        Catches up on both topics' history first (:meth:`ControlReader.catch_up`), calls
        ``on_ready`` and sets :attr:`ready`, then applies every record as it arrives;
        ``on_change`` runs after every change of state (a swap, a kill switch).
        """
        with self.consumer("control", self.settings.inference.control_fetch_wait_ms) as consumer:
            consumer.assign_all([CONTROL, MODEL_UPDATES], from_beginning=True)
            reader = ControlReader(consumer, self.store, self.control, self.dead_letters, self.metrics,
                                   on_change=on_change)  # fmt: skip
            reader.catch_up(timeout=catch_up_timeout)
            if on_ready is not None:
                on_ready()
            self.ready.set()
            while not stop.is_set():
                reader.poll(0.05)

    def follow_data(
        self,
        stop: threading.Event,
        tails: Mapping[str, int | None],
        on_change: Callable[[], None],
        other: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        """Follow the data topics in ``tails`` (topic -> records re-read per partition, None: none)
        until ``stop``, on the caller's thread.

        Features and outcomes are handled here (:meth:`observe`); records of any other topic go
        to ``other``. Canaries are settled after every poll; ``on_change`` runs when one is.
        """
        with self.consumer("data", self.settings.inference.data_fetch_wait_ms) as consumer:
            assign_tail(consumer, tails)
            while not stop.is_set():
                for message in consumer.poll_batch(_DATA_POLL_MAX, 0.05):
                    self._data(consumer, message, other)
                if self.settle(time.monotonic()):
                    on_change()

    def _data(
        self, consumer: EventConsumer, message: Message, other: Callable[[str, dict[str, Any]], None] | None
    ) -> None:
        topic = consumer.logical(message.topic() or "")
        try:
            records = consumer.events(message)  # engines batch outcomes (and may batch anything)
        except SchemaDecodeError as exc:
            if self.dead_letters is not None:
                self.dead_letters.send(message, exc)
            return
        for record in records:
            if not self.observe(topic, record) and other is not None:
                other(topic, record)

    def observe(self, topic: str, record: dict[str, Any]) -> bool:
        """Take in a feature snapshot or an outcome; False for a record of another topic."""
        if topic == FEATURES:
            self.features.update(record)
            return True
        if topic == OUTCOMES:
            canary = self.store.slot(SIZER).canary if SIZER in self.store.models else None
            if isinstance(canary, Canary):
                canary.outcome(record["signal_id"], record["return_unit"])
            return True
        return False

    def settle(self, now: float, models: Iterable[str] | None = None) -> bool:
        """Settle every canary whose verdict is in; True when one was (heartbeat at once)."""
        settled = False
        for name in self.store.models if models is None else models:
            settled = self.store.settle_canary(name, now) is not None or settled
        return settled

    # -- reporting -------------------------------------------------------------------------
    def info(self) -> dict[str, str]:
        """Heartbeat info: versions per role, rollout and control state."""
        info = {**self.store.info(), **self.control.info()}
        for name in self.store.models:
            canary = self.store.slot(name).canary
            if canary is not None:
                info[f"{name}.canary_state"] = canary.state()
        return info

    def gauges(self) -> dict[str, float]:
        """Heartbeat gauges: decisions, fallbacks, the sizer's age (-1: none), symbols with features."""
        serving = self.store.slot(SIZER).serving if SIZER in self.store.models else None
        age = -1.0 if serving is None else time.time() - serving.manifest.created_us / 1e6
        return {"decisions": self.decisions, "fallbacks": self.fallbacks, "sizer_age_seconds": age,
                "symbols": len(self.features)}  # fmt: skip

    def status(self) -> str:
        """DEGRADED while the kill switch holds or no sizer serves, else UP."""
        serving = self.store.slot(SIZER).serving if SIZER in self.store.models else None
        return "DEGRADED" if self.control.kill_switch or serving is None else "UP"

    def serving_version(self, model: str = SIZER) -> str | None:
        """The version ``model`` serves here, or None."""
        serving = self.store.slot(model).serving
        return None if serving is None else serving.version

    def data_topics(self, backfill: int | None = None) -> dict[str, int | None]:
        """The data topics every server follows: features (the last ``backfill`` per partition)
        and outcomes (live only)."""
        n = self.settings.inference.features_backfill if backfill is None else backfill
        return {FEATURES: n, OUTCOMES: None}
