"""The allocator's part of the trainer process: its triggers, its retries, and ``train --once``.

:class:`trainers.loop.TrainerLoop` ingests allocation periods on its ingest thread (a second
:class:`trainers.ingest.Ingestor` with the :data:`trainers.ingest.PERIODS` source) and, on its main
thread, calls :meth:`AllocatorTrack.step` before the sizer's check: the allocator's triggers are
the sizer's classes over an :class:`AllocatorView` (new periods, interval, feature drift of the
allocator's observations), with their own backoff, so a failing allocator never blocks the sizer.
The uplift-decay trigger stays silent for the allocator: served weights are not ingested.
"""

from __future__ import annotations

import logging
import threading
import time

from rich.console import Console

from streams.clock import now_us
from streams.producer import EventProducer
from streams.settings import Settings
from trainers.allocator_data import AllocationStore, build_pairs
from trainers.allocator_pipeline import MODEL, AllocatorPipeline
from trainers.errors import NotEnoughDataError, TrainingInterrupted
from trainers.ingest import PERIODS, Ingestor
from trainers.pipeline import RunOutcome
from trainers.registry import ModelRegistry
from trainers.runstate import RunDir, TrainerState
from trainers.trainlog import TrainLog
from trainers.triggers import Backoff, FeatureDrift, Fired, Interval, NewExperiences, Trigger, psi

__all__ = ["AllocatorTrack", "AllocatorView", "allocator_triggers", "train_allocator_once"]

log = logging.getLogger(__name__)


class AllocatorView:
    """The triggers' view of the allocator (a :class:`trainers.triggers.TrainerView`)."""

    def __init__(self, settings: Settings, store: AllocationStore, registry: ModelRegistry) -> None:
        self.settings = settings
        self.store = store
        self.registry = registry
        self._drift_cache: tuple[tuple[str, int], float | None] | None = None

    def new_experiences(self) -> int:
        """New allocation periods since the last allocator run."""
        return self.store.count_since(TrainerState.load(self.settings.data_dir, MODEL).last_seq)

    def seconds_since_last_run(self) -> float | None:
        finished = TrainerState.load(self.settings.data_dir, MODEL).last_finished_us
        return None if finished is None else (now_us() - finished) / 1e6

    def live_uplift(self, min_rows: int) -> tuple[float, float] | None:
        return None

    def drift(self, min_rows: int) -> float | None:
        """Largest per-feature PSI of recent observations against the serving allocator's window."""
        serving = self.registry.serving_version
        if serving is None:
            return None
        key = (serving, self.store.max_seq())
        if self._drift_cache is not None and self._drift_cache[0] == key:
            return self._drift_cache[1]
        reference = self.registry.drift_reference(serving)
        strategies = self.registry.load(serving, self.settings.signing_key()).manifest.strategies
        recent = build_pairs(self.store.periods(limit=max(min_rows, 200)), strategies).obs
        value = None
        if reference is not None and len(recent) >= min_rows and recent.shape[1] == reference.shape[1]:
            value = float(psi(reference, recent).max())
        self._drift_cache = (key, value)
        return value


def allocator_triggers(settings: Settings) -> list[Trigger]:
    a = settings.trainer.allocator
    return [
        NewExperiences(a.min_new_periods, name="new_periods"),
        Interval(a.retrain_interval_seconds),
        FeatureDrift(a.drift_min_periods, a.drift_threshold),
    ]


class AllocatorTrack:
    """Allocator runs inside the trainer loop: triggers, backoff, outcomes. Main thread only."""

    def __init__(self, settings: Settings, producer: EventProducer, console: Console) -> None:
        self.settings = settings
        self.cfg = settings.trainer
        self.store = AllocationStore.open(settings.data_dir)
        self.registry = ModelRegistry(settings.data_dir, name=MODEL, keep_versions=self.cfg.keep_versions)
        self.pipeline = AllocatorPipeline(
            settings, self.store, self.registry, TrainLog.open(settings.data_dir), producer, console,
            progress=False,
        )  # fmt: skip
        self.view = AllocatorView(settings, self.store, self.registry)
        self.triggers = allocator_triggers(settings)
        self.backoff = Backoff(self.cfg.retry_base_seconds, self.cfg.retry_max_seconds)
        self.outcomes: list[RunOutcome] = []
        self.last_result = TrainerState.load(settings.data_dir, MODEL).last_result
        self._waiting_for_seq = -1

    def step(self, stop: threading.Event) -> bool:
        """Run the allocator once if a trigger fired; False when a run was interrupted by ``stop``."""
        if not self.backoff.ready(time.monotonic()) or self.store.max_seq() == self._waiting_for_seq:
            return True
        if RunDir.interrupted(self.settings.data_dir, MODEL) is not None:
            fired = [Fired("resume", "an interrupted run")]
        else:
            fired = [f for t in self.triggers if (f := t.check(self.view)) is not None]
        if not fired:
            return True
        reason = "; ".join(f"{f.trigger}: {f.detail}" for f in fired)
        log.info("allocator training: %s", reason)
        try:
            outcome = self.pipeline.run(reason, force_full=any(f.full_retrain for f in fired), stop=stop)
        except NotEnoughDataError as exc:
            log.info("allocator not training yet: %s", exc)
            self._waiting_for_seq = self.store.max_seq()
            return True
        except TrainingInterrupted as exc:
            log.info("%s; it resumes when the trainer starts again", exc)
            return False
        except Exception as exc:
            # Same retry boundary as the sizer's: log, count, back off; the run stays resumable.
            delay = self.backoff.failed(time.monotonic())
            self.last_result = f"failed: {type(exc).__name__}"
            log.exception("allocator run failed (%s); retrying in %.0fs", exc, delay)
            return True
        self.backoff.succeeded()
        self.outcomes.append(outcome)
        self.last_result = f"{outcome.version} {'published' if outcome.published else 'not published'}"
        log.info(
            "allocator run %s (%s) -> %s: gate %s, %s in %.1fs", outcome.run_id, outcome.mode,
            outcome.version, "passed" if outcome.gate_passed else "failed",
            "published" if outcome.published else "not published", outcome.seconds,
        )  # fmt: skip
        return True

    def close(self) -> None:
        self.store.close()


def train_allocator_once(
    settings: Settings,
    *,
    full: bool = False,
    publish: bool | None = None,
    ingest: bool = True,
    console: Console | None = None,
) -> RunOutcome:
    """``tradeloop train --once --model allocator``: ingest the periods on the topic, then one run.

    Raises:
        NotEnoughDataError, TrainerError, BrokerError.
    """
    with AllocationStore.open(settings.data_dir) as store:
        if ingest:
            ingestor = Ingestor(settings, store, "trainer-once", source=PERIODS)
            ingestor.start()
            try:
                totals = ingestor.drain()
            finally:
                ingestor.close()
            log.info("ingested %d allocation periods (%d new)", totals.messages, totals.inserted)
        registry = ModelRegistry(settings.data_dir, name=MODEL, keep_versions=settings.trainer.keep_versions)
        pipeline = AllocatorPipeline(
            settings, store, registry, TrainLog.open(settings.data_dir), console=console
        )
        return pipeline.run("manual (train --once)", force_full=full, publish=publish)
