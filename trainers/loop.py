"""The trainer process: ingest experiences continuously, retrain when a trigger fires, publish.

Two threads: the ingest thread owns the consumers and the writing store connections (and enforces
retention); the main thread checks the triggers every ``check_interval_seconds`` and runs
training runs (Ray and RLlib live there). With ``trainer.allocator.enabled`` the same threads
ingest allocation periods and train the allocator (:mod:`trainers.allocator_loop`). A failed run is retried with exponential backoff; an
interrupted run resumes first. The process serves ``/metrics`` and publishes heartbeats with the
serving model version and the last training result.
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
from rich.console import Console

from streams.clock import now_us
from streams.heartbeat import Heartbeater, component_id
from streams.metrics import serve_metrics
from streams.producer import EventProducer
from streams.settings import Settings
from trainers import metrics
from trainers.allocator_data import AllocationStore
from trainers.allocator_loop import AllocatorTrack
from trainers.errors import NotEnoughDataError, TrainingInterrupted
from trainers.ingest import PERIODS, Ingestor, IngestTotals
from trainers.pipeline import RunOutcome, TrainingPipeline
from trainers.registry import ModelRegistry
from trainers.replay import ReplayStore
from trainers.rllib_ppo import ensure_ray
from trainers.runstate import RunDir, TrainerState
from trainers.trainlog import TrainLog
from trainers.triggers import Backoff, Fired, Trigger, default_triggers, psi

__all__ = ["StoreView", "TrainerLoop", "train_once"]

log = logging.getLogger(__name__)

_RETENTION_EVERY_S = 30.0


class StoreView:
    """The triggers' view of the trainer, over the replay store, registry and trainer state."""

    def __init__(self, settings: Settings, store: ReplayStore, registry: ModelRegistry) -> None:
        self.settings = settings
        self.store = store
        self.registry = registry
        self._drift_cache: tuple[tuple[str, int], float | None] | None = None

    def new_experiences(self) -> int:
        return self.store.count_since(TrainerState.load(self.settings.data_dir).last_seq)

    def seconds_since_last_run(self) -> float | None:
        finished = TrainerState.load(self.settings.data_dir).last_finished_us
        return None if finished is None else (now_us() - finished) / 1e6

    def live_uplift(self, min_rows: int) -> tuple[float, float] | None:
        serving = self.registry.serving_version
        if serving is None:
            return None
        rows = self.store.served_by(serving, limit=max(min_rows, 2000))
        if len(rows) < min_rows:
            return None
        entry = self.registry.index()["versions"].get(serving, {})
        holdout = float(entry.get("metrics", {}).get("holdout_uplift_vs_fixed", 0.0))
        live = float(np.mean((rows.action - 1.0) * rows.return_unit))
        return live, holdout

    def drift(self, min_rows: int) -> float | None:
        serving = self.registry.serving_version
        if serving is None:
            return None
        key = (serving, self.store.max_seq())
        if self._drift_cache is not None and self._drift_cache[0] == key:
            return self._drift_cache[1]
        reference = self.registry.drift_reference(serving)
        recent = self.store.recent(max(min_rows, 1000)).state
        value = None if reference is None or len(recent) < min_rows else float(psi(reference, recent).max())
        self._drift_cache = (key, value)
        return value


class TrainerLoop:
    """``tradeloop trainer``: the long-running learning loop."""

    def __init__(
        self, settings: Settings, triggers: list[Trigger] | None = None, console: Console | None = None
    ):
        self.settings = settings
        self.cfg = settings.trainer
        self.ident = component_id("trainer")
        self.console = console or Console(stderr=True)
        self.triggers = triggers or default_triggers(
            self.cfg.min_new_experiences, self.cfg.retrain_interval_seconds, self.cfg.uplift_min_rows,
            self.cfg.uplift_decay_tolerance, self.cfg.drift_min_rows, self.cfg.drift_threshold,
        )  # fmt: skip
        self.backoff = Backoff(self.cfg.retry_base_seconds, self.cfg.retry_max_seconds)
        self.outcomes: list[RunOutcome] = []
        self.allocator: AllocatorTrack | None = None
        self.ingested = IngestTotals()
        self.periods_ingested = IngestTotals()
        self._lag = 0
        self._ingest_error: BaseException | None = None
        self._last_result = TrainerState.load(settings.data_dir).last_result
        self.ready = threading.Event()

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

    def _fired(self, view: StoreView) -> list[Fired]:
        return [f for t in self.triggers if (f := t.check(view)) is not None]

    def _gauges(self) -> dict[str, float]:
        return {
            "ingested": float(self.ingested.messages),
            "lag": float(self._lag),
            "runs": float(len(self.outcomes)),
            "failures": float(self.backoff.failures),
            "periods_ingested": float(self.periods_ingested.messages),
            "allocator_runs": float(len(self.allocator.outcomes) if self.allocator else 0),
        }

    def _info(self, registry: ModelRegistry) -> dict[str, str]:
        info = {"serving_model": registry.serving_version or "none", "last_training": self._last_result}
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
        registry = ModelRegistry(self.settings.data_dir, keep_versions=self.cfg.keep_versions)
        producer = EventProducer(self.settings, f"{self.ident}-models")
        beat = Heartbeater(
            self.settings, "trainer", self.ident, gauges=self._gauges, info=lambda: self._info(registry)
        ).start()
        ready = threading.Event()
        ingest = threading.Thread(target=self._ingest, args=(stop, ready), name="trainer-ingest", daemon=True)
        ingest.start()
        ready.wait(30.0)
        store = ReplayStore.open(self.settings.data_dir)
        pipeline = TrainingPipeline(
            self.settings,
            store,
            registry,
            TrainLog.open(self.settings.data_dir),
            producer,
            self.console,
            progress=False,
        )
        view = StoreView(self.settings, store, registry)
        if self.cfg.allocator.enabled:
            self.allocator = AllocatorTrack(self.settings, producer, self.console)
        waiting_for_seq = -1
        self.ready.set()
        try:
            while not stop.wait(self.cfg.check_interval_seconds):
                if self.allocator is not None and not self.allocator.step(stop):
                    break
                if max_runs is not None and self._finished() >= max_runs:
                    break
                metrics.REPLAY_ROWS.labels(kind="trainable").set(store.count(trainable_only=True))
                if not self.backoff.ready(time.monotonic()) or store.max_seq() == waiting_for_seq:
                    continue
                interrupted = RunDir.interrupted(self.settings.data_dir) is not None
                fired = [Fired("resume", "an interrupted run")] if interrupted else self._fired(view)
                if not fired:
                    continue
                try:
                    self._run_once(pipeline, fired, stop)
                except NotEnoughDataError as exc:
                    log.info("not training yet: %s", exc)
                    waiting_for_seq = store.max_seq()
                except TrainingInterrupted as exc:
                    log.info("%s; it resumes when the trainer starts again", exc)
                    break
                except Exception as exc:
                    # The retry boundary: any failure of a run (RLlib raises many types) is logged,
                    # counted and retried with backoff; the run stays resumable from its checkpoint.
                    metrics.TRAINING_FAILURES.inc()
                    delay = self.backoff.failed(time.monotonic())
                    self._last_result = f"failed: {type(exc).__name__}"
                    log.exception("training run failed (%s); retrying in %.0fs", exc, delay)
                if max_runs is not None and self._finished() >= max_runs:
                    break
        finally:
            stop.set()
            ingest.join(10.0)
            if self.allocator is not None:
                self.allocator.close()
            beat.stop()
            producer.flush(10.0)
            store.close()
        if self._ingest_error is not None:
            raise self._ingest_error

    def _finished(self) -> int:
        """Finished runs of both models (``max_runs`` counts these)."""
        return len(self.outcomes) + (len(self.allocator.outcomes) if self.allocator else 0)

    def _run_once(self, pipeline: TrainingPipeline, fired: list[Fired], stop: threading.Event) -> None:
        reason = "; ".join(f"{f.trigger}: {f.detail}" for f in fired)
        log.info("training: %s", reason)
        outcome = pipeline.run(reason, force_full=any(f.full_retrain for f in fired), stop=stop)
        self.backoff.succeeded()
        self.outcomes.append(outcome)
        self._last_result = f"{outcome.version} {'published' if outcome.published else 'not published'}"
        log.info(
            "run %s (%s) -> %s: gate %s, %s in %.1fs",
            outcome.run_id, outcome.mode, outcome.version, "passed" if outcome.gate_passed else "failed",
            "published" if outcome.published else "not published", outcome.seconds,
        )  # fmt: skip


def train_once(
    settings: Settings,
    *,
    full: bool = False,
    publish: bool | None = None,
    ingest: bool = True,
    console: Console | None = None,
) -> RunOutcome:
    """``tradeloop train --once``: ingest what is on the topic, then one run (resuming if needed).

    Raises:
        NotEnoughDataError, TrainerError, BrokerError.
    """
    with ReplayStore.open(settings.data_dir) as store:
        if ingest:
            ingestor = Ingestor(settings, store, "trainer-once")
            ingestor.start()
            try:
                totals = ingestor.drain()
            finally:
                ingestor.close()
            log.info(
                "ingested %d messages (%d new rows)", totals.messages, totals.inserted + totals.corrected
            )
        registry = ModelRegistry(settings.data_dir, keep_versions=settings.trainer.keep_versions)
        pipeline = TrainingPipeline(
            settings, store, registry, TrainLog.open(settings.data_dir), console=console
        )
        return pipeline.run("manual (train --once)", force_full=full, publish=publish)
