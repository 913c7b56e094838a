"""One model kind's training inside the trainer process: its triggers, retries and ``train --once``.

The trainer loop (:class:`trainers.run.loop.TrainerLoop`) runs one :class:`ModelTrack` per model
kind on its main thread: the sizer always, the allocator when ``trainer.allocator.enabled``. A
track checks its kind's triggers over its :class:`ModelView`, runs its kind's
:class:`trainers.run.pipeline.RunPipeline`, retries a failed run with its own backoff (so a
failing allocator never blocks the sizer) and keeps its outcomes. :func:`train_model_once` is
``tradeloop train --once`` for any kind. What differs between kinds is a :class:`TrackKind`
value (:data:`trainers.sizer.track.SIZER_TRACK`, :data:`trainers.allocator.track.ALLOCATOR_TRACK`).
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypedDict, TypeVar, Unpack

import numpy as np
from rich.console import Console

from streams.clock import now_us
from streams.kafka.producer import EventProducer
from streams.settings import Settings
from trainers.errors import NotEnoughDataError, TrainingInterrupted
from trainers.registry import ModelRegistry
from trainers.run.parts import RunOutcome
from trainers.run.pipeline import RunPipeline
from trainers.run.state import RunDir, TrainerState
from trainers.run.triggers import Backoff, Fired, TrainerView, Trigger
from trainers.store.ingest import Ingestor, IngestSource
from trainers.store.sqlite import SqliteStore
from trainers.store.trainlog import TrainLog

__all__ = ["ModelTrack", "ModelView", "OnceOptions", "TrackKind", "train_model_once"]

log = logging.getLogger(__name__)

StoreT = TypeVar("StoreT", bound=SqliteStore)


class ModelView(ABC, Generic[StoreT]):
    """The triggers' view of one model (a :class:`trainers.run.triggers.TrainerView`).

    It reads the kind's store, registry and trainer state; a kind adds how its drift is measured
    and, if it can, its live uplift (the default: unknown, so the uplift-decay trigger is silent).
    """

    MODEL: ClassVar[str]

    def __init__(self, settings: Settings, store: StoreT, registry: ModelRegistry) -> None:
        self.settings = settings
        self.store = store
        self.registry = registry
        # Drift is costly to compute; it changes only with new data or another serving version.
        self._drift_cache: tuple[tuple[str, int], float | None] | None = None

    def new_experiences(self) -> int:
        """New trainable rows since the model's last run."""
        return self.store.count_since(TrainerState.load(self.settings.data_dir, self.MODEL).last_seq)

    def seconds_since_last_run(self) -> float | None:
        finished = TrainerState.load(self.settings.data_dir, self.MODEL).last_finished_us
        return None if finished is None else (now_us() - finished) / 1e6

    def live_uplift(self, min_rows: int) -> tuple[float, float] | None:
        return None

    def drift(self, min_rows: int) -> float | None:
        """Largest per-feature PSI of recent observations against the serving model's window."""
        serving = self.registry.serving_version
        if serving is None:
            return None
        key = (serving, self.store.max_seq())
        if self._drift_cache is not None and self._drift_cache[0] == key:
            return self._drift_cache[1]
        value = self._drift(serving, self.registry.drift_reference(serving), min_rows)
        self._drift_cache = (key, value)
        return value

    @abstractmethod
    def _drift(self, serving: str, reference: np.ndarray | None, min_rows: int) -> float | None:
        """The drift of recent data against ``reference`` (``serving``'s training window), or None."""


@dataclass(frozen=True, slots=True)
class TrackKind:
    """What the trainer process needs to train one model kind."""

    model: str  # registry name and run/state directory: "sizer" or "allocator"
    label: str  # starts the kind's log lines ("" for the sizer, "allocator ")
    records: str  # what its ingested records are called in logs
    source: IngestSource  # the topic its store ingests
    store: type[SqliteStore]
    pipeline: type[RunPipeline[Any]]
    view: Callable[[Settings, Any, ModelRegistry], TrainerView]
    triggers: Callable[[Settings], list[Trigger]]
    on_check: Callable[[Any], None] | None = None  # called with the store at every check
    on_failure: Callable[[], None] | None = None  # called when a run raised


class ModelTrack:
    """One model's runs inside the trainer loop: triggers, backoff, outcomes. Main thread only.

    Built with the loop (its registry and state only read files); :meth:`open` opens the store on
    the thread that runs the loop, because SQLite connections belong to the thread that made them.
    """

    def __init__(self, kind: TrackKind, settings: Settings, triggers: list[Trigger] | None = None) -> None:
        self.kind = kind
        self.settings = settings
        cfg = settings.trainer
        self.registry = ModelRegistry(settings.data_dir, name=kind.model, keep_versions=cfg.keep_versions)
        self.triggers = triggers or kind.triggers(settings)
        self.backoff = Backoff(cfg.retry_base_seconds, cfg.retry_max_seconds)
        self.outcomes: list[RunOutcome] = []
        self.last_result = TrainerState.load(settings.data_dir, kind.model).last_result
        self._waiting_for_seq = -1
        self._opened: tuple[SqliteStore, RunPipeline[Any], TrainerView] | None = None

    def open(self, producer: EventProducer, console: Console) -> None:
        """Open the store, pipeline and view on the calling thread."""
        data_dir = self.settings.data_dir
        store = self.kind.store.open(data_dir)
        pipeline = self.kind.pipeline(
            self.settings, store, self.registry, TrainLog.open(data_dir), producer, console, progress=False
        )
        self._opened = (store, pipeline, self.kind.view(self.settings, store, self.registry))

    def step(self, stop: threading.Event) -> bool:
        """Run the model once if a trigger fired; False when a run was interrupted by ``stop``."""
        if self._opened is None:
            raise RuntimeError(f"the {self.kind.model} track is not open")
        store, pipeline, view = self._opened
        if self.kind.on_check is not None:
            self.kind.on_check(store)
        if not self.backoff.ready(time.monotonic()) or store.max_seq() == self._waiting_for_seq:
            return True
        if RunDir.interrupted(self.settings.data_dir, self.kind.model) is not None:
            fired = [Fired("resume", "an interrupted run")]
        else:
            fired = [f for t in self.triggers if (f := t.check(view)) is not None]
        if not fired:
            return True
        label = self.kind.label
        reason = "; ".join(f"{f.trigger}: {f.detail}" for f in fired)
        log.info("%straining: %s", label, reason)
        try:
            outcome = pipeline.run(reason, force_full=any(f.full_retrain for f in fired), stop=stop)
        except NotEnoughDataError as exc:
            log.info("%snot training yet: %s", label, exc)
            self._waiting_for_seq = store.max_seq()
            return True
        except TrainingInterrupted as exc:
            log.info("%s; it resumes when the trainer starts again", exc)
            return False
        except Exception as exc:
            # The retry boundary: any failure of a run (RLlib raises many types) is logged,
            # counted and retried with backoff; the run stays resumable from its checkpoint.
            if self.kind.on_failure is not None:
                self.kind.on_failure()
            delay = self.backoff.failed(time.monotonic())
            self.last_result = f"failed: {type(exc).__name__}"
            log.exception("%straining run failed (%s); retrying in %.0fs", label, exc, delay)
            return True
        self.backoff.succeeded()
        self.outcomes.append(outcome)
        self.last_result = f"{outcome.version} {'published' if outcome.published else 'not published'}"
        log.info(
            "%srun %s (%s) -> %s: gate %s, %s in %.1fs", label, outcome.run_id, outcome.mode,
            outcome.version, "passed" if outcome.gate_passed else "failed",
            "published" if outcome.published else "not published", outcome.seconds,
        )  # fmt: skip
        return True

    def close(self) -> None:
        if self._opened is not None:
            self._opened[0].close()
            self._opened = None


class OnceOptions(TypedDict, total=False):
    """Options of ``tradeloop train --once`` (:func:`train_model_once` and its per-kind wrappers).

    ``full`` trains from scratch instead of warm-starting (default False); ``publish`` overrides
    ``trainer.publish``; ``ingest=False`` trains on the store as it is (default True); ``console``
    shows the progress bar.
    """

    full: bool
    publish: bool | None
    ingest: bool
    console: Console | None


def train_model_once(kind: TrackKind, settings: Settings, **options: Unpack[OnceOptions]) -> RunOutcome:
    """``tradeloop train --once [--model M]``: ingest what is on the kind's topic, then one run.

    The run resumes an interrupted one first.

    Raises:
        NotEnoughDataError, TrainerError, BrokerError.
    """
    with kind.store.open(settings.data_dir) as store:
        if options.get("ingest", True):
            ingestor = Ingestor(settings, store, "trainer-once", source=kind.source)
            ingestor.start()
            try:
                totals = ingestor.drain()
            finally:
                ingestor.close()
            new = totals.inserted + totals.corrected
            log.info("ingested %d %s (%d new)", totals.messages, kind.records, new)
        registry = ModelRegistry(
            settings.data_dir, name=kind.model, keep_versions=settings.trainer.keep_versions
        )
        trainlog = TrainLog.open(settings.data_dir)
        pipeline = kind.pipeline(settings, store, registry, trainlog, console=options.get("console"))
        full, publish = options.get("full", False), options.get("publish")
        return pipeline.run("manual (train --once)", force_full=full, publish=publish)
