"""The sizer's part of the trainer process: its view, its triggers, and ``train --once``.

:class:`trainers.run.loop.TrainerLoop` ingests experiences on its ingest thread and, on its main
thread, steps the sizer's :class:`trainers.run.track.ModelTrack` (:data:`SIZER_TRACK`): the
default triggers (new experiences, interval, uplift decay, feature drift) over a
:class:`SizerView` of the replay store, with their own backoff.
"""

from __future__ import annotations

from typing import Final, Unpack

import numpy as np

from streams.settings import Settings
from trainers import metrics
from trainers.run.parts import RunOutcome
from trainers.run.track import ModelView, OnceOptions, TrackKind, train_model_once
from trainers.run.triggers import Trigger, default_triggers, psi
from trainers.sizer.pipeline import SizerPipeline
from trainers.store.ingest import EXPERIENCES_SOURCE
from trainers.store.replay import ReplayStore

__all__ = ["SIZER_TRACK", "SizerView", "train_sizer_once"]


class SizerView(ModelView[ReplayStore]):
    """The triggers' view of the sizer, over the replay store, registry and trainer state."""

    MODEL = "sizer"

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

    def _drift(self, serving: str, reference: np.ndarray | None, min_rows: int) -> float | None:
        recent = self.store.recent(max(min_rows, 1000)).state
        return None if reference is None or len(recent) < min_rows else float(psi(reference, recent).max())


def _sizer_triggers(settings: Settings) -> list[Trigger]:
    cfg = settings.trainer
    return default_triggers(
        cfg.min_new_experiences, cfg.retrain_interval_seconds, cfg.uplift_min_rows,
        cfg.uplift_decay_tolerance, cfg.drift_min_rows, cfg.drift_threshold,
    )  # fmt: skip


def _export_trainable(store: ReplayStore) -> None:
    metrics.REPLAY_ROWS.labels(kind="trainable").set(store.count(trainable_only=True))


SIZER_TRACK: Final = TrackKind(
    model="sizer", label="", records="experiences", source=EXPERIENCES_SOURCE, store=ReplayStore,
    pipeline=SizerPipeline, view=SizerView, triggers=_sizer_triggers, on_check=_export_trainable,
    on_failure=metrics.TRAINING_FAILURES.inc,
)  # fmt: skip


def train_sizer_once(settings: Settings, **options: Unpack[OnceOptions]) -> RunOutcome:
    """``tradeloop train --once``: ingest what is on the topic, then one sizer run (resuming if needed).

    Raises:
        NotEnoughDataError, TrainerError, BrokerError.
    """
    return train_model_once(SIZER_TRACK, settings, **options)
