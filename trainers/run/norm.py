"""Normalisation statistics of a run's observations (mean and std per feature).

They are fitted on the training part of a run's window only, travel in the model manifest
(``obs_mean`` / ``obs_std``) and are saved in the run directory; a constant feature gets std 1,
so the division is always defined.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["NormStats"]

_STD_FLOOR = 1e-8


@dataclass(frozen=True, slots=True)
class NormStats:
    """Per-feature mean and std of the training states."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, states: np.ndarray) -> NormStats:
        mean = states.mean(axis=0)
        std = states.std(axis=0)
        return cls(mean=mean, std=np.where(std < _STD_FLOOR, 1.0, std))

    def apply(self, states: np.ndarray) -> np.ndarray:
        """``(x - mean) / std`` as float32, exactly what the ONNX model's input expects."""
        return ((states - self.mean) / self.std).astype(np.float32)
