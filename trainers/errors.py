"""Errors the trainer raises on purpose; all derive from :class:`streams.errors.TradeloopError`."""

from __future__ import annotations

from streams.errors import TradeloopError

__all__ = [
    "ExportError",
    "NotEnoughDataError",
    "RegistryError",
    "ReplayStoreError",
    "TrainerError",
    "TrainingError",
    "TrainingInterrupted",
]


class TrainerError(TradeloopError):
    """Root of the trainer's errors."""


class ReplayStoreError(TrainerError):
    """The replay store cannot be opened, written or read."""


class NotEnoughDataError(TrainerError):
    """Too few trainable experiences for a run (censored rows do not count)."""


class TrainingError(TrainerError):
    """A training run failed: non-finite losses, a failed check, or an unusable checkpoint."""


class ExportError(TrainerError):
    """The ONNX export failed or its outputs do not match torch within the tolerance."""


class RegistryError(TrainerError):
    """An unknown model version, a corrupt registry entry, or nothing to roll back to."""


class TrainingInterrupted(TrainerError):
    """The run was asked to stop between iterations; it resumes from its checkpoint next time."""
