"""AllocationPeriod records from a simulator backfill, without Kafka or Faust (for tests and benches).

The simulated events go through the same pure code the stream agents run:

* stream features per symbol with :class:`agents.features.FeatureState`, evaluated after the last
  print at or before each signal (the agents' point-in-time join picks the newest snapshot, which
  they throttle to one per second; here every signal gets the exact state at its time);
* the experience state with :func:`streams.features.build_state` (signal, engine and stream
  features);
* the periods with :class:`agents.periods.PortfolioState`, fed in outcome-time order and closed
  when the outcome watermark passes a period's end plus the join grace, as the periods agent does.

No price-move detector runs, so no experience is premium and regime feature 4 (premium share) is
0. Beside the records, :class:`PeriodBackfill` keeps the simulator's truth for benchmarks: per
period and strategy, the sum of the *expected* unit returns (``Simulator.oracle``) of the outcomes
that closed in the period, in the record's strategy order. A learner never sees it.

Example:
    >>> found = simulate_periods(seed=1, n_signals=600, period_seconds=60.0)
    >>> len(found.records) == len(found.expected) > 5
    True
    >>> sorted(found.records[0]) == sorted(AGENT_FIELDS)
    True
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from agents.features import FeatureState, clamp_monotonic
from agents.periods import Contribution, PortfolioState, market_of
from streams.config.agents import AgentSettings
from streams.features import SIZER_SPEC, build_state
from streams.simulator import SimConfig, Simulator

__all__ = ["AGENT_FIELDS", "PeriodBackfill", "simulate_periods", "stream_features_at"]

AGENT_FIELDS: Final = (
    "event_id", "ts", "portfolio", "period_start", "period_seconds", "strategies", "strategy_returns",
    "market", "portfolio_state", "strategy_sharpe", "strategy_drawdown", "regime", "trades",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class PeriodBackfill:
    """AllocationPeriod records (oldest first) and the simulator's truth per period."""

    records: list[dict[str, Any]]
    expected: list[list[float]]  # per record: expected unit return per strategy, record order
    signals: int


def stream_features_at(trades: list[dict[str, Any]], times: list[int]) -> dict[int, list[float]]:
    """Stream features of one symbol after its last print at or before each of ``times``.

    Args:
        trades: the symbol's Trade records in event-time order.
        times: event times (microseconds) to evaluate at.

    Returns:
        time -> the 22 values in ``STREAM_FEATURES`` order (times before the first print omitted).
    """
    ts = clamp_monotonic(np.array([t["ts"] for t in trades], dtype=np.int64), 0)
    wanted = np.array(sorted(set(times)), dtype=np.int64)
    last = np.searchsorted(ts, wanted, side="right") - 1
    emit = np.zeros(len(ts), dtype=bool)
    emit[last[last >= 0]] = True
    price = np.array([t["price"] for t in trades], dtype=np.float64)
    size = np.array([t["size"] for t in trades], dtype=np.float64)
    buy = np.array([1.0 if t["side"] == "BUY" else 0.0 for t in trades])
    at_index = {i: values.tolist() for i, values in FeatureState().update(ts, price, size, buy, emit)}
    return {int(t): at_index[int(i)] for t, i in zip(wanted, last, strict=True) if i >= 0}


def simulate_periods(
    seed: int,
    n_signals: int,
    period_seconds: float = 60.0,
    history: int = 12,
    grace_seconds: float = 60.0,
    market: bool = True,
) -> PeriodBackfill:
    """The allocation periods of a seeded backfill of ``n_signals`` signals (one portfolio).

    Args:
        seed: simulator seed.
        n_signals: signals to simulate (the simulator makes about one a second of event time).
        period_seconds: the agents' ``allocation_period_seconds``.
        history: the agents' ``allocation_history`` (periods in rolling Sharpe and drawdown).
        grace_seconds: the agents' ``join_grace_seconds``.
        market: compute the stream features (about two thirds of the time); without them the
            market block and three regime features are 0, as in experiences without a snapshot.
    """
    sim = Simulator(SimConfig(seed=seed))
    trades: dict[str, list[dict[str, Any]]] = defaultdict(list)
    signals: dict[str, dict[str, Any]] = {}
    outcomes: list[dict[str, Any]] = []
    for event in sim.backfill(n_signals):
        if event.topic == "trades":
            trades[event.key].append(event.record)
        elif event.topic == "signals":
            signals[event.record["signal_id"]] = event.record
        else:
            outcomes.append(event.record)
    times: dict[str, list[int]] = defaultdict(list)
    for sig in signals.values():
        times[sig["symbol"]].append(sig["ts"])
    stream = {sym: stream_features_at(trades[sym], ts) if market else {} for sym, ts in times.items()}

    settings = AgentSettings(
        allocation_period_seconds=period_seconds, allocation_history=history, join_grace_seconds=grace_seconds
    )
    state = PortfolioState(sim.config.portfolio, settings)
    expected: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    records: list[dict[str, Any]] = []
    period_us = state.period_us
    for outcome in sorted(outcomes, key=lambda o: (o["ts"], o["signal_id"])):
        sig = signals[outcome["signal_id"]]
        values, _ = build_state(
            SIZER_SPEC, score=sig["score"], side=sig["side"], family=sig["family"],
            engine_features=sig["features"], stream_values=stream[sig["symbol"]].get(sig["ts"]),
        )  # fmt: skip
        state.add(Contribution(outcome["event_id"], outcome["strategy"], outcome["return_unit"], outcome["ts"],
                               False, market_of(values)))  # fmt: skip
        start = outcome["ts"] // period_us * period_us
        expected[start][outcome["strategy"]] += sim.oracle(outcome["signal_id"])
        records.extend(state.close_until(state.wm))
    records.extend(state.close_until(state.wm + period_us + int(grace_seconds * 1e6)))
    truth = [[expected[r["period_start"]].get(s, 0.0) for s in r["strategies"]] for r in records]
    return PeriodBackfill(records=records, expected=truth, signals=len(signals))
