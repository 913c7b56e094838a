"""The allocator's part of the trainer process: its view, its triggers, and ``train --once``.

:class:`trainers.run.loop.TrainerLoop` ingests allocation periods on its ingest thread (a second
:class:`trainers.store.ingest.Ingestor` with the :data:`trainers.store.ingest.PERIODS` source)
and, on its main thread, steps the allocator's :class:`trainers.run.track.ModelTrack`
(:data:`ALLOCATOR_TRACK`) before the sizer's: the allocator's triggers are the sizer's classes over
an :class:`AllocatorView` (new periods, interval, feature drift of the allocator's observations),
with their own backoff, so a failing allocator never blocks the sizer. The uplift-decay trigger stays silent for the
allocator: served weights are not ingested.
"""

from __future__ import annotations

from typing import Final, Unpack

import numpy as np

from streams.settings import Settings
from trainers.allocator.pairs import build_pairs
from trainers.allocator.pipeline import MODEL, AllocatorPipeline
from trainers.run.parts import RunOutcome
from trainers.run.track import ModelView, OnceOptions, TrackKind, train_model_once
from trainers.run.triggers import FeatureDrift, Interval, NewExperiences, Trigger, psi
from trainers.store.allocation import AllocationStore
from trainers.store.ingest import PERIODS

__all__ = ["ALLOCATOR_TRACK", "AllocatorView", "allocator_triggers", "train_allocator_once"]


class AllocatorView(ModelView[AllocationStore]):
    """The triggers' view of the allocator (a :class:`trainers.run.triggers.TrainerView`)."""

    MODEL = MODEL

    def _drift(self, serving: str, reference: np.ndarray | None, min_rows: int) -> float | None:
        """Largest per-feature PSI of recent observations against the serving allocator's window."""
        strategies = self.registry.load(serving, self.settings.signing_key()).manifest.strategies
        recent = build_pairs(self.store.periods(limit=max(min_rows, 200)), strategies).obs
        if reference is not None and len(recent) >= min_rows and recent.shape[1] == reference.shape[1]:
            return float(psi(reference, recent).max())
        return None


def allocator_triggers(settings: Settings) -> list[Trigger]:
    """The allocator's triggers: new periods, interval and feature drift, from ``trainer.allocator``."""
    a = settings.trainer.allocator
    return [
        NewExperiences(a.min_new_periods, name="new_periods"),
        Interval(a.retrain_interval_seconds),
        FeatureDrift(a.drift_min_periods, a.drift_threshold),
    ]


ALLOCATOR_TRACK: Final = TrackKind(
    model=MODEL, label="allocator ", records="allocation periods", source=PERIODS, store=AllocationStore,
    pipeline=AllocatorPipeline, view=AllocatorView, triggers=allocator_triggers,
)  # fmt: skip


def train_allocator_once(settings: Settings, **options: Unpack[OnceOptions]) -> RunOutcome:
    """``tradeloop train --once --model allocator``: ingest the periods on the topic, then one run.

    Raises:
        NotEnoughDataError, TrainerError, BrokerError.
    """
    return train_model_once(ALLOCATOR_TRACK, settings, **options)
