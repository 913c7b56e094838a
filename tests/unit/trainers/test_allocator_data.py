"""The allocation store (durable, de-duplicating) and the training pairs built from its periods."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench._periods import AGENT_FIELDS, simulate_periods
from tests.unit.trainers.allocator_fixtures import PERIOD_US, STRATEGIES, make_period
from trainers.allocator_data import AllocationStore, build_pairs, choose_strategies, validate_period
from trainers.allocator_env import observation

TOPIC = "t.allocation-periods"


def test_validate_period_reasons() -> None:
    assert validate_period(make_period(0)) is None
    cases: dict[str, dict[str, Any]] = {
        "bad_strategies": {"strategies": ["a", "a", "b"]},
        "market_size": {"market": [0.0] * 7},
        "regime_size": {"regime": [0.0] * 5},
        "strategy_sharpe_size": {"strategy_sharpe": [0.0]},
        "non_finite": {"strategy_returns": [0.0, float("nan"), 0.0]},
        "bad_period": {"period_seconds": 0.0},
    }
    for reason, change in cases.items():
        assert validate_period({**make_period(0), **change}) == reason, reason
    assert validate_period({**make_period(0), "strategies": []}) == "bad_strategies"


def test_store_deduplicates_and_keeps_offsets_with_rows(tmp_path: Path) -> None:
    periods = [make_period(i) for i in range(10)]
    with AllocationStore(tmp_path / "p.sqlite") as store:
        first = store.write(periods[:6], {(TOPIC, 0): 6}, {"market_size": 2})
        again = store.write(periods[4:], {(TOPIC, 0): 10})
        assert (first.inserted, first.duplicates) == (6, 0)
        assert (again.inserted, again.duplicates) == (4, 2)
        assert store.count_since(6) == 4 and store.max_seq() == 10
    with AllocationStore(tmp_path / "p.sqlite") as store:  # durable across a reopen
        assert store.count() == 10 and store.offsets(TOPIC) == {0: 10}
        assert store.counters()["rejected:market_size"] == 2
        assert [p["period_start"] for p in store.periods(limit=3)] == [p["period_start"] for p in periods[7:]]
        assert store.periods()[0] == periods[0]  # records round-trip exactly
        assert store.enforce_retention(max_rows=8) == 2 and store.periods()[0] == periods[2]


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
