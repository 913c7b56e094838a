"""Sizing inside the engine's process: the inference workers' serving core, in the engine's thread.

Asking the inference workers over the bus costs two broker hops per signal (milliseconds on the
embedded broker; see ``docs/inference.md``). An :class:`EngineSizer` answers in microseconds
instead, in the thread that calls :meth:`EngineSizer.size`, with exactly what a worker would
answer: it runs the same code (:class:`streams.serving.core.ServingCore`), not a copy of it.

* Two background threads follow the bus: **control** reads the control and compacted
  model-updates topics from the beginning, verifies every update (signature, checksum, feature
  spec, a probe run) and swaps it in with one reference assignment, so :meth:`size` never pauses;
  it applies the kill switch and freeze commands (scope ``all`` or this sizer's id). **data** keeps
  the latest FeatureSnapshot per symbol (the last ``features_backfill`` per partition, then live)
  and feeds outcomes to the canary.
* :meth:`size` builds the observation from the signal and the symbol's snapshot, runs the serving
  model (or a canary on its share of the signals), clips to the guardrails, and falls back to the
  score rule with a reason when no trusted model can answer.
* It reports like a worker: every decision goes to ``sizing-decisions`` (``worker_id`` is this
  sizer's id, ``client_id`` the engine's), and heartbeats of component ``inference`` carry the
  versions serving, so ``tradeloop status``, ``tradeloop control versions`` and the trainer see it.
  Shadows are not scored here (the workers score them).

Example:
    >>> with EngineSizer(settings).start() as sizer:                              # doctest: +SKIP
    ...     sizer.wait_ready()
    ...     decision = sizer.size("sig-1", strategy="ema_cross_fast", symbol="BTC-USD", side="BUY",
    ...                           score=0.83, features={"eng_momentum": 0.4})
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

from streams.clock import new_event_id, now_us
from streams.errors import TradeloopError
from streams.heartbeat import Heartbeater
from streams.kafka.producer import EventProducer
from streams.sdk import SizingDecision
from streams.serving.constants import COMPONENT, SIZER
from streams.serving.core import ServingCore
from streams.serving.model_store import sizer_canary
from streams.serving.sizing import BatchDecision
from streams.settings import Settings
from streams.topics import SIZING_DECISIONS

__all__ = ["EngineSizer"]

# A pause this long since the previous size() returned makes the engine idle between signals:
# its decision is reported by the reporting thread (microseconds: a paced engine sizing 2,000
# signals a second pauses ~450 us between them).
_IDLE_GAP_NS = 200_000

log = logging.getLogger(__name__)


class EngineSizer:
    """Sizes signals in the engine's own thread with the models the inference workers serve.

    Args:
        settings: the deployment's settings (the same signing key as the workers').
        client_id: the engine's id, echoed in every SizingDecision (``EngineClient.client_id``).
        sizer_id: this sizer's id in heartbeats, metrics and control scopes; default
            ``<client_id>-sizer``.
    """

    def __init__(self, settings: Settings, client_id: str | None = None, sizer_id: str | None = None) -> None:
        self.settings = settings
        self.client_id = client_id or f"engine-{new_event_id()[:8]}"
        self.sizer_id = sizer_id or f"{self.client_id}-sizer"
        conf = settings.inference
        # Decisions and heartbeats are reports nobody waits on: the default linger batches them.
        self._producer = EventProducer(settings, self.sizer_id)
        self.core = ServingCore(
            settings, self.sizer_id, self._producer, canaries={SIZER: sizer_canary(conf)}, shadows=False
        )
        self.heartbeater = Heartbeater(
            settings, COMPONENT, ident=self.sizer_id, gauges=self.core.gauges, info=self._info,
            status=self.core.status, interval=conf.heartbeat_interval_seconds, producer=self._producer,
        )  # fmt: skip
        self._reporter = _Reporter(self.core, self._producer)
        self._last_return_ns = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._errors: list[BaseException] = []

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> EngineSizer:
        """Start following the bus; :meth:`size` answers at once (with the rule until a model loads)."""
        if self._threads:
            return self
        self._spawn("control", self._follow_control)
        self._spawn("data", self._follow_data)
        return self

    def _follow_control(self) -> None:
        def ready() -> None:
            self.heartbeater.start()

        self.core.follow_control(self._stop, on_change=self.heartbeater.beat, on_ready=ready)

    def _follow_data(self) -> None:
        self.core.follow_data(self._stop, self.core.data_topics(), on_change=self.heartbeater.beat)

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        def run() -> None:
            try:
                target()
            except BaseException as exc:
                # The engine keeps trading on what it has; the failure shows in `failed` and the logs.
                log.exception("engine sizer %s thread failed", name)
                self._errors.append(exc)

        thread = threading.Thread(target=run, name=f"engine-sizer-{name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def wait_ready(self, timeout: float = 30.0) -> bool:
        """Wait until the history of control commands and model updates is loaded."""
        return self.core.ready.wait(timeout)

    def wait_serving(self, version: str | None = None, timeout: float = 30.0) -> bool:
        """Wait until a sizer (``version``, if given) serves here."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            serving = self.serving_version
            if serving is not None and (version is None or serving == version):
                return True
            time.sleep(0.005)
        return False

    @property
    def serving_version(self) -> str | None:
        """The sizer version serving here, or None (the rule answers)."""
        return self.core.serving_version(SIZER)

    @property
    def failed(self) -> list[BaseException]:
        """Failures of the background threads (a failed follower stops following the bus)."""
        return list(self._errors)

    def close(self, timeout: float = 10.0) -> None:
        """Stop following, send a last heartbeat and flush the decisions."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        self._reporter.close()
        self.heartbeater.stop()
        try:
            self._producer.flush(timeout)
        except TradeloopError as exc:
            log.warning("sizing decisions not all acknowledged: %s", exc)

    def __enter__(self) -> EngineSizer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- sizing ----------------------------------------------------------------------------
    def size(
        self, signal_id: str, *, strategy: str, symbol: str, side: str, score: float,
        features: Mapping[str, float],
    ) -> SizingDecision:  # fmt: skip
        """The multiplier for one signal, computed in the calling thread; never raises for a request
        with a safe size (the rule answers, with ``fallback_reason``, when no model can).

        Only the scoring runs here; the SizingDecision record is built, counted and produced by
        the reporting thread (or here, while that thread is more than a backlog behind).
        """
        received_ns = time.perf_counter_ns()
        requested_us = now_us()
        # The SizingRequest a worker would have received (never encoded: no event id needed).
        request = {
            "ts": requested_us, "signal_id": signal_id, "client_id": self.client_id, "strategy": strategy,
            "symbol": symbol, "side": side, "score": score, "features": features,
        }  # fmt: skip
        batch = self.core.sizer.decide((request,))
        latency_ns = time.perf_counter_ns() - received_ns
        # An engine that paused since its last call reports later, in its idle time; one sizing back
        # to back reports now: deferred work would only compete with its next call.
        if received_ns - self._last_return_ns > _IDLE_GAP_NS:
            self._reporter.add(request, batch, latency_ns)
        else:
            self._reporter.report(request, batch, latency_ns)
        self._last_return_ns = time.perf_counter_ns()
        reason = batch.reasons[0]
        return SizingDecision(
            signal_id=signal_id, multiplier=batch.multipliers[0], model_version=batch.versions[0],
            fallback=reason is not None, fallback_reason=reason, latency_us=latency_ns // 1000,
            worker_id=self.sizer_id, ts=requested_us + latency_ns // 1000,
        )  # fmt: skip

    # -- heartbeat content -----------------------------------------------------------------
    def _info(self) -> dict[str, str]:
        return {**self.core.info(), "engine": self.client_id}


class _Reporter:
    """Builds, counts and produces the SizingDecision records of ``size()`` calls, off their thread.

    ``size()`` of an engine that paused since its last call appends to a deque (no lock, no
    wake-up); this thread drains it every few milliseconds in short chunks, giving the interpreter
    back between chunks, so an engine thread that wants it waits for at most one chunk. An engine
    sizing back to back calls :meth:`report` itself, as does ``add`` with more than ``backlog``
    waiting: memory stays bounded and no decision goes unreported.
    """

    def __init__(self, core: ServingCore, producer: EventProducer, interval: float = 0.005,
                 chunk: int = 2, backlog: int = 1024) -> None:  # fmt: skip
        self.core = core
        self.producer = producer
        self.interval = interval
        self.chunk = chunk
        self.backlog = backlog
        self._pending: deque[tuple[dict[str, Any], BatchDecision, int]] = deque()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="engine-sizer-reports", daemon=True)
        self._thread.start()

    def add(self, request: dict[str, Any], batch: BatchDecision, latency_ns: int) -> None:
        if len(self._pending) >= self.backlog:
            self.report(request, batch, latency_ns)
        else:
            self._pending.append((request, batch, latency_ns))

    def report(self, request: dict[str, Any], batch: BatchDecision, latency_ns: int) -> None:
        """Report one decision now, in the caller's thread."""
        decided_us = request["ts"] + latency_ns // 1000
        (record,) = self.core.report((request,), batch, latency_ns, decided_us)
        self.producer.send(SIZING_DECISIONS, record["signal_id"], record)

    def _drain(self) -> None:
        pending = self._pending
        while pending:
            for _ in range(self.chunk):
                try:
                    item = pending.popleft()
                except IndexError:
                    break
                self.report(*item)
            # A real sleep, not sleep(0): the engine thread gets the interpreter between chunks
            # (after sleep(0) this thread may take it straight back, and the engine then waits
            # out the interpreter's switch interval, 5 ms).
            time.sleep(0.0001)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._drain()
            except TradeloopError as exc:  # a record that cannot be produced: counted, logged, skipped
                log.warning("sizing decision not reported: %s", exc)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5.0)
        self._drain()
