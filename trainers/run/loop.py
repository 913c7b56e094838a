"""The trainer process: ingest experiences continuously, retrain when a trigger fires, publish.

Two threads: the ingest thread owns the consumers and the writing store connections (and enforces
retention); the main thread checks the triggers every ``check_interval_seconds`` and runs
training runs (Ray and RLlib live there). Each model is a :class:`trainers.run.track.ModelTrack`:
the sizer (:data:`trainers.sizer.track.SIZER_TRACK`) always and, with
``trainer.allocator.enabled``, the allocator (:data:`trainers.allocator.track.ALLOCATOR_TRACK`),
whose periods the same ingest thread stores. A failed run is retried with exponential backoff; an
interrupted run resumes first. The process serves ``/metrics`` and publishes heartbeats with the
serving model versions and the last training results.
"""

from __future__ import annotations

import logging
import threading
import time

from rich.console import Console

from streams.heartbeat import Heartbeater, component_id
from streams.kafka.producer import EventProducer
from streams.metrics import serve_metrics
from streams.settings import Settings
from trainers import metrics
from trainers.allocator.track import ALLOCATOR_TRACK
from trainers.rl.ppo import ensure_ray
from trainers.run.parts import RunOutcome
from trainers.run.track import ModelTrack
from trainers.run.triggers import Backoff, Trigger
from trainers.sizer.track import SIZER_TRACK
from trainers.store.allocation import AllocationStore
from trainers.store.ingest import PERIODS, Ingestor, IngestTotals
from trainers.store.replay import ReplayStore

__all__ = ["TrainerLoop"]

log = logging.getLogger(__name__)

_RETENTION_EVERY_S = 30.0


class TrainerLoop:
    """``tradeloop trainer``: the long-running learning loop."""

    def __init__(
        self, settings: Settings, triggers: list[Trigger] | None = None, console: Console | None = None
    ):
        self.settings = settings
        self.cfg = settings.trainer
        self.ident = component_id("trainer")
        self.console = console or Console(stderr=True)
        self.sizer = ModelTrack(SIZER_TRACK, settings, triggers)
        self.allocator = ModelTrack(ALLOCATOR_TRACK, settings) if self.cfg.allocator.enabled else None
        self.ingested = IngestTotals()
        self.periods_ingested = IngestTotals()
        self._lag = 0
        self._ingest_error: BaseException | None = None
        self.ready = threading.Event()

    @property
    def triggers(self) -> list[Trigger]:
        """The sizer's triggers (``allocator.triggers`` has the allocator's)."""
        return self.sizer.triggers

    @property
    def backoff(self) -> Backoff:
        """The sizer's retry backoff."""
        return self.sizer.backoff

    @property
    def outcomes(self) -> list[RunOutcome]:
        """The sizer's finished runs (``allocator.outcomes`` has the allocator's)."""
        return self.sizer.outcomes

    # -- ingest thread -----------------------------------------------------------------------

    def _ingest(self, stop: threading.Event, ready: threading.Event) -> None:
        periods: Ingestor | None = None
        period_store: AllocationStore | None = None
        try:
            with ReplayStore.open(self.settings.data_dir) as store:
                ingestor = Ingestor(self.settings, store, self.ident)
                ingestor.start()
                if self.cfg.allocator.enabled:
                    period_store = AllocationStore.open(self.settings.data_dir)
                    periods = Ingestor(self.settings, period_store, self.ident, source=PERIODS)
                    periods.start()
                ready.set()
                next_retention = 0.0
                try:
                    while not stop.is_set():
                        batch = ingestor.poll(timeout=0.2)
                        self.ingested.add(batch)
                        if periods is not None:
                            self.periods_ingested.add(periods.poll(timeout=0.0 if batch.messages else 0.05))
                        now = time.monotonic()
                        if now >= next_retention:
                            max_age = int(self.cfg.replay_max_age_days * 86_400e6)
                            store.enforce_retention(self.cfg.replay_max_rows, max_age)
                            self._lag = ingestor.lag()
                            if periods is not None and period_store is not None:
                                periods.lag()
                                period_store.enforce_retention(self.cfg.allocator.replay_max_periods)
                            next_retention = now + _RETENTION_EVERY_S
                        if batch.messages:
                            metrics.REPLAY_ROWS.labels(kind="all").set(store.count())
                finally:
                    ingestor.close()
                    if periods is not None:
                        periods.close()
                    if period_store is not None:
                        period_store.close()
        except BaseException as exc:
            # The loop cannot learn without ingestion: stop the process so a supervisor restarts it.
            self._ingest_error = exc
            ready.set()
            stop.set()
            raise

    # -- main loop ---------------------------------------------------------------------------

    def _gauges(self) -> dict[str, float]:
        return {
            "ingested": float(self.ingested.messages),
            "lag": float(self._lag),
            "runs": float(len(self.sizer.outcomes)),
            "failures": float(self.sizer.backoff.failures),
            "periods_ingested": float(self.periods_ingested.messages),
            "allocator_runs": float(len(self.allocator.outcomes) if self.allocator else 0),
        }

    def _info(self) -> dict[str, str]:
        info = {
            "serving_model": self.sizer.registry.serving_version or "none",
            "last_training": self.sizer.last_result,
        }
        if self.allocator is not None:
            info["serving_allocator"] = self.allocator.registry.serving_version or "none"
            info["last_allocator_training"] = self.allocator.last_result
        return info

    def run(self, stop: threading.Event, max_runs: int | None = None) -> None:
        """Run until ``stop`` is set (or ``max_runs`` runs of the sizer and allocator finished).

        Raises:
            TrainerError, BrokerError: ingestion failed (the loop stops with it).
        """
        serve_metrics(self.settings, "trainer", self.ident)
        # Ray starts with the trainer, not with its first run: a run then costs only the training.
        ensure_ray(self.cfg)
        producer = EventProducer(self.settings, f"{self.ident}-models")
        beat = Heartbeater(self.settings, "trainer", self.ident, gauges=self._gauges, info=self._info).start()
        ready = threading.Event()
        ingest = threading.Thread(target=self._ingest, args=(stop, ready), name="trainer-ingest", daemon=True)
        ingest.start()
        ready.wait(30.0)
        # The allocator steps first, as before the sizer's check; each track has its own backoff.
        tracks = [t for t in (self.allocator, self.sizer) if t is not None]
        try:
            for track in tracks:
                track.open(producer, self.console)
            self.ready.set()
            while not stop.wait(self.cfg.check_interval_seconds):
                if not self._step(tracks, stop, max_runs):
                    break
        finally:
            stop.set()
            ingest.join(10.0)
            for track in tracks:
                track.close()
            beat.stop()
            producer.flush(10.0)
        if self._ingest_error is not None:
            raise self._ingest_error

    def _step(self, tracks: list[ModelTrack], stop: threading.Event, max_runs: int | None) -> bool:
        """One check of every track; False when the loop should end (interrupted or ``max_runs``)."""
        for track in tracks:
            if max_runs is not None and self._finished() >= max_runs:
                return False
            if not track.step(stop):
                return False
        return max_runs is None or self._finished() < max_runs

    def _finished(self) -> int:
        """Finished runs of both models (``max_runs`` counts these)."""
        return len(self.sizer.outcomes) + (len(self.allocator.outcomes) if self.allocator else 0)
