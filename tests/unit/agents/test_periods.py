"""Allocation periods from experiences: tumbling event time, stable strategy order, state features."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from agents.periods import MARKET_FEATURES, Contribution, Periods, PortfolioState, period_inputs
from agents.validate import Inbound
from streams.config.agents import AgentSettings
from streams.features import SIZER_SPEC
from tests.kit.agents.builders import CODEC, SECOND, T0

P = 60 * SECOND
SETTINGS = AgentSettings(allocation_period_seconds=60, join_grace_seconds=5, idle_expiry_seconds=2)


def exp(i: int, strategy: str, outcome_ts: int, ret: float | None, portfolio: str = "main",
        premium: bool = False) -> dict[str, Any]:  # fmt: skip
    state = [0.0] * SIZER_SPEC.size
    return {
        "event_id": f"x{i}", "ts": outcome_ts - SECOND, "signal_id": f"s{i}",
        "status": "COMPLETE" if ret is not None else "CENSORED", "revision": 0, "strategy": strategy,
        "family": "momentum", "portfolio": portfolio, "symbol": "BTC", "side": "BUY", "score": 0.5,
        "feature_spec_version": SIZER_SPEC.version, "state": state, "snapshot_ts": None, "action": 1.0,
        "model_version": None, "return_unit": ret, "pnl": ret, "outcome_ts": outcome_ts if ret is not None else None,
        "premium": premium, "completeness": 1.0, "validation_flags": [], "profitability": 0.0, "priority": 1.0,
        "integrity_hash": "0" * 64,
    }  # fmt: skip


def messages(records: list[dict[str, Any]], start_offset: int = 0) -> list[Inbound]:
    """One internal period record per experience, as the join would send them one batch at a time."""
    msgs = []
    for i, record in enumerate(records):
        for portfolio, value in period_inputs([record]):
            msgs.append(Inbound("periods-by-portfolio", "t.internal", 0, start_offset + i, portfolio.encode(), value))
    return msgs


def feed(periods: Periods, records: list[dict[str, Any]], start_offset: int = 0, now: int = T0) -> list[dict]:
    return [r for _, r in periods.handle(messages(records, start_offset), now).periods]


def test_returns_per_strategy_per_tumbling_period_in_sorted_strategy_order() -> None:
    periods = Periods(SETTINGS)
    out = feed(periods, [
        exp(1, "zeta", T0 + 10 * SECOND, 0.01), exp(2, "alpha", T0 + 20 * SECOND, -0.02),
        exp(3, "zeta", T0 + 30 * SECOND, 0.03), exp(4, "alpha", T0 + 70 * SECOND, 0.05),
        exp(5, "mid", T0 + 75 * SECOND, None),  # censored: no return
        exp(6, "alpha", T0 + 200 * SECOND, 0.0),  # passes end + grace of the first three periods
    ])  # fmt: skip
    assert [p["period_start"] for p in out] == [T0, T0 + P, T0 + 2 * P]
    first, second, empty = out
    assert empty["trades"] == 0 and empty["strategy_returns"] == [0.0, 0.0]
    assert first["strategies"] == ["alpha", "zeta"]
    assert first["strategy_returns"] == pytest.approx([-0.02, 0.04]) and first["trades"] == 3
    assert second["strategy_returns"] == pytest.approx([0.05, 0.0]) and second["trades"] == 1
    assert len(first["market"]) == len(MARKET_FEATURES) == 8
    assert len(first["portfolio_state"]) == 6 and len(first["regime"]) == 4
    assert first["portfolio_state"][0] == pytest.approx(np.mean([-0.02, 0.04]))  # equal-weight period return
    assert second["strategy_sharpe"][0] == pytest.approx(np.mean([-0.02, 0.05]) / np.std([-0.02, 0.05]))
    assert first["strategy_drawdown"][0] == pytest.approx(0.02)  # alpha lost 2% in its first period
    assert second["strategy_drawdown"][0] == pytest.approx(0.0)  # and recovered it
    for record in out:
        assert CODEC.decode("allocation-periods", CODEC.encode("allocation-periods", record)) == record


def test_duplicate_experiences_are_counted_once_and_redeliveries_skipped() -> None:
    periods = Periods(SETTINGS)
    one = exp(1, "a", T0 + 10 * SECOND, 0.01)
    feed(periods, [one])
    feed(periods, [one], start_offset=0)  # redelivered offset: silently skipped
    batch = periods.handle(messages([one], start_offset=7), T0)
    assert [d.reason for d in batch.dead] == ["duplicate"]
    out = feed(periods, [exp(2, "a", T0 + 300 * SECOND, 0.0)], start_offset=8)
    assert out[0]["strategy_returns"] == [0.01]


def test_idle_portfolio_closes_by_watermark_plus_idle_time_and_state_persists() -> None:
    periods = Periods(SETTINGS)
    table: dict[bytes, bytes] = {}
    batch = periods.handle(messages([exp(1, "a", T0 + 50 * SECOND, 0.01)]), T0)
    for _, key, value in batch.writes:
        table[key] = value  # type: ignore[assignment]
    restored = Periods(SETTINGS)
    restored.load(table.items(), now=T0)
    assert restored.tick(T0 + 1 * SECOND).periods == []
    closed = restored.tick(T0 + 20 * SECOND).periods  # idle 20 s: watermark 50 s + 20 s >= 60 s + 5 s
    assert [r["strategy_returns"] for _, r in closed] == [[0.01]]


def test_late_experience_goes_to_the_oldest_open_period() -> None:
    state = PortfolioState("main", SETTINGS)
    state.add(Contribution("e1", "a", 0.01, 130 * SECOND, True, None))
    assert state.close_until(200 * SECOND)[0]["period_start"] == 120 * SECOND
    state.add(Contribution("e2", "a", 0.02, 10 * SECOND, False, None))
    [late] = state.close_until(300 * SECOND)[:1]
    assert late["period_start"] == 180 * SECOND and late["strategy_returns"] == [0.02]


def test_market_and_regime_features_are_means_over_the_periods_experiences() -> None:
    periods = Periods(SETTINGS)
    records = []
    for i, (cross, ratio, ret30) in enumerate([(0.01, 2.0, 0.03), (-0.02, 1.0, 0.01), (0.03, 1.6, -0.02)]):
        record = exp(i, "a", T0 + (10 + i) * SECOND, 0.01, premium=i == 0)
        offset = len(SIZER_SPEC.signal) + len(SIZER_SPEC.engine)
        for name, value in (("ema_cross", cross), ("rv_ratio_1m_30m", ratio), ("ret_30m", ret30)):
            record["state"][offset + SIZER_SPEC.stream.index(name)] = value
        records.append(record)
    records.append(exp(9, "a", T0 + 200 * SECOND, 0.0))
    first = feed(periods, records)[0]
    market = dict(zip(MARKET_FEATURES, first["market"], strict=True))
    assert market["ema_cross"] == pytest.approx(np.mean([0.01, -0.02, 0.03]))
    assert market["ret_30m"] == pytest.approx(np.mean([0.03, 0.01, -0.02]))
    assert first["regime"] == pytest.approx([1 / 3, 2 / 3, 2 / 3, 1 / 3])


def test_a_malformed_period_record_is_a_dead_letter() -> None:
    batch = Periods(SETTINGS).handle([Inbound("periods-by-portfolio", "t.i", 0, 0, b"main", b"\x01\x02")], T0)
    assert [d.reason for d in batch.dead] == ["bad_period_input"] and batch.periods == []
