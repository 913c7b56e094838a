"""The allocator's training pairs, built from allocation periods."""

from __future__ import annotations

import numpy as np
import pytest

from tests.kit.simulated_periods import AGENT_FIELDS, simulate_periods
from tests.kit.trainers.periods import PERIOD_US, STRATEGIES, make_period
from trainers.allocator.env import observation
from trainers.allocator.pairs import build_pairs, choose_strategies
from trainers.store.allocation import validate_period


def test_pairs_align_state_of_t_with_returns_of_t_plus_1() -> None:
    periods = [make_period(i) for i in range(6)]
    pairs = build_pairs(periods, STRATEGIES)
    assert len(pairs) == 5 and pairs.skipped == 1  # the newest period has no next one yet
    for i in range(5):
        assert pairs.obs[i].tolist() == observation(periods[i], STRATEGIES)
        assert pairs.next_returns[i].tolist() == periods[i + 1]["strategy_returns"]
        assert pairs.period_start[i] == periods[i + 1]["period_start"]
    history = np.array([p["strategy_returns"] for p in periods[:3]])
    np.testing.assert_allclose(pairs.trailing_std[2], history.std(axis=0))


def test_pairs_skip_gaps_and_missing_strategies_and_follow_portfolios() -> None:
    a = [make_period(i, portfolio="a") for i in (0, 1, 2, 4, 5)]  # period 3 missing: 2 -> 4 is no pair
    b = [make_period(i, portfolio="b") for i in range(3)]
    b[1] = {**b[1], **make_period(1, portfolio="b", strategies=["alpha", "beta"])}  # no gamma yet
    pairs = build_pairs(a + b, STRATEGIES)
    starts = {(p, int(s)) for p, s in zip(pairs.portfolio, pairs.period_start, strict=True)}
    first = a[0]["period_start"]
    assert starts == {("a", first + PERIOD_US), ("a", first + 2 * PERIOD_US), ("a", first + 5 * PERIOD_US)}
    assert np.all(np.diff(pairs.ts) >= 0)
    assert choose_strategies(a) == STRATEGIES


def test_pairs_reorder_per_strategy_values_by_name() -> None:
    shuffled = ["gamma", "alpha", "beta"]
    periods = [make_period(i, strategies=shuffled, returns=[3.0, 1.0, 2.0]) for i in range(3)]
    pairs = build_pairs(periods, STRATEGIES)
    assert pairs.next_returns[0].tolist() == [1.0, 2.0, 3.0]
    assert pairs.data_hash() != build_pairs(periods[:2], STRATEGIES).data_hash()


@pytest.mark.slow
def test_simulated_periods_are_valid_agent_records() -> None:
    found = simulate_periods(seed=2, n_signals=1500, period_seconds=60.0)
    assert len(found.records) >= 20 and all(sorted(r) == sorted(AGENT_FIELDS) for r in found.records)
    assert all(validate_period(r) is None for r in found.records)
    starts = [r["period_start"] for r in found.records]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    assert sum(r["trades"] for r in found.records) == found.signals  # every outcome in one period
    pairs = build_pairs(found.records, choose_strategies(found.records))
    assert len(pairs) + pairs.skipped == len(found.records) and pairs.skipped <= 5
    assert np.any(pairs.obs[:, :8] != 0.0)  # stream features reach the market block
