"""The allocation store: durable, de-duplicating, validating."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.kit.trainers.periods import make_period
from trainers.store.allocation import AllocationStore, validate_period

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
