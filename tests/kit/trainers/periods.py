"""Synthetic AllocationPeriod records for the allocator's unit tests (no network, no simulator)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np

from trainers.allocator.env import AllocatorRunData
from trainers.allocator.pairs import build_pairs

STRATEGIES = ["alpha", "beta", "gamma"]
PERIOD_US = 60_000_000
START_US = 1_767_225_600_000_000


def make_period(
    i: int,
    *,
    portfolio: str = "main",
    strategies: list[str] | None = None,
    returns: list[float] | None = None,
    rng: np.random.Generator | None = None,
) -> dict[str, Any]:
    """A valid AllocationPeriod for period ``i`` of ``portfolio``."""
    names = list(strategies or STRATEGIES)
    rng = rng or np.random.default_rng(i)
    start = START_US + i * PERIOD_US
    return {
        "event_id": f"{portfolio}-{i}",
        "ts": start + PERIOD_US,
        "portfolio": portfolio,
        "period_start": start,
        "period_seconds": PERIOD_US / 1e6,
        "strategies": names,
        "strategy_returns": returns if returns is not None else rng.normal(0.0, 0.01, len(names)).tolist(),
        "market": rng.normal(size=8).tolist(),
        "portfolio_state": rng.normal(size=6).tolist(),
        "strategy_sharpe": rng.normal(size=len(names)).tolist(),
        "strategy_drawdown": np.abs(rng.normal(size=len(names))).tolist(),
        "regime": rng.uniform(size=4).tolist(),
        "trades": 10,
    }


def bandit_periods(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """Periods where the next period's best strategy is announced by this period's ``market[0]``.

    Strategy ``alpha`` earns +1% in the period after ``market[0] > 0``, ``beta`` after
    ``market[0] <= 0``; ``gamma`` always loses a little. Noise is small, so a policy can learn it.
    """
    rng = np.random.default_rng(seed)
    periods = [make_period(i, rng=rng) for i in range(n)]
    for prev, now in itertools.pairwise(periods):
        up = prev["market"][0] > 0
        mean = [0.01, -0.01, -0.002] if up else [-0.01, 0.01, -0.002]
        now["strategy_returns"] = (np.array(mean) + rng.normal(0.0, 0.002, 3)).tolist()
    return periods


def run_data(tmp: Path, periods: list[dict[str, Any]]) -> Path:
    """A run data file (normalised observations) of ``periods``, as the pipeline writes it."""
    pairs = build_pairs(periods, STRATEGIES)
    mean, std = pairs.obs.mean(axis=0), pairs.obs.std(axis=0) + 1e-9
    data = AllocatorRunData.build((pairs.obs - mean) / std, pairs.next_returns, pairs.ts)
    path = tmp / "data.npz"
    data.save(path)
    return path
