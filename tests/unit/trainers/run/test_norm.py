"""Normalisation statistics of a run's observations."""

from __future__ import annotations

import numpy as np

from trainers.run.norm import NormStats


def test_norm_stats_handle_constant_features() -> None:
    states = np.column_stack([np.arange(10.0), np.full(10, 3.0)])
    norm = NormStats.fit(states)
    assert norm.std[1] == 1.0
    out = norm.apply(states)
    assert out.dtype == np.float32 and np.allclose(out[:, 1], 0.0) and abs(out[:, 0].mean()) < 1e-6
