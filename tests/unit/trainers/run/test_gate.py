"""Hold-out metrics and the block bootstrap of the shared gate."""

from __future__ import annotations

import numpy as np
import pytest

from trainers.run.gate import METRICS, block_bootstrap_indices, compute_metrics, metric_values


def test_metrics_of_a_known_series() -> None:
    pnl = np.array([1.0, -2.0, 3.0, -1.0, 2.0])
    m = compute_metrics(pnl, alpha=0.2)
    assert m["mean_return"] == pytest.approx(0.6)
    assert m["sharpe"] == pytest.approx(0.6 / pnl.std())
    assert m["cvar"] == pytest.approx(-2.0)
    assert m["max_drawdown"] == pytest.approx(2.0)  # 1 -> -1
    assert m["win_rate"] == pytest.approx(0.6)
    assert m["profit_factor"] == pytest.approx(6.0 / 3.0)


def test_metric_values_vectorise_over_rows() -> None:
    pnl = np.random.default_rng(0).normal(size=(7, 50))
    for name in METRICS:
        got = metric_values(pnl, name)
        assert got.shape == (7,)
        assert got[3] == pytest.approx(compute_metrics(pnl[3])[name])


def test_block_bootstrap_keeps_blocks_contiguous() -> None:
    idx = block_bootstrap_indices(100, 20, 10, np.random.default_rng(0))
    assert idx.shape == (20, 100) and idx.min() >= 0 and idx.max() < 100
    assert np.all(np.diff(idx[:, :10], axis=1) == 1)
