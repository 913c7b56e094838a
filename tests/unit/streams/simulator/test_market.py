"""The simulated market and the hidden function: regimes show in the features, and sizing pays.

These tests pin the properties the learning benchmarks rely on, so a broken price process or
hidden function fails here rather than as a mysteriously weak learner later.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pytest

from streams.simulator import REGIMES, Regime, SimConfig, Simulator
from streams.simulator.oracle import expected_return
from streams.topics import OUTCOMES, SIGNALS

PAIRS = 5000


@dataclass(frozen=True)
class Run:
    sim: Simulator
    signals: list[dict]
    regimes: list[Regime]  # hidden regime of the signal's symbol at signal time
    returns: np.ndarray  # realised unit return per signal
    oracle: np.ndarray  # true expected unit return per signal


@pytest.fixture(scope="module")
def run() -> Run:
    sim = Simulator(SimConfig(seed=1))
    signals, regimes, outcomes = [], [], {}
    for event in sim.backfill(PAIRS):
        if event.topic == SIGNALS:
            # The stream is lazy: when a signal is yielded, the market is at the signal's time.
            signals.append(event.record)
            regimes.append(sim.regime(event.record["symbol"]))
        elif event.topic == OUTCOMES:
            outcomes[event.record["signal_id"]] = event.record["return_unit"]
    returns = np.array([outcomes[s["signal_id"]] for s in signals])
    oracle = np.array([sim.oracle(s["signal_id"]) for s in signals])
    return Run(sim, signals, regimes, returns, oracle)


def sharpe(multipliers: np.ndarray, returns: np.ndarray) -> float:
    pnl = multipliers * returns
    return float(pnl.mean() / pnl.std())


def test_every_regime_gaps_and_news_occur(run: Run) -> None:
    stats = run.sim.stats
    assert all(stats[r.value] >= 5 for r in REGIMES), stats
    assert stats["gaps"] >= 5 and stats["news"] >= 5
    assert set(run.regimes) == set(REGIMES)


def test_news_shocks_are_scheduled_at_known_times(run: Run) -> None:
    interval = run.sim.config.news_interval_seconds
    first, second = run.sim.symbols[:2]
    assert run.sim.news_times(first, 3 * interval) == [interval / 4, interval * 1.25, interval * 2.25]
    assert run.sim.news_times(second, interval) == [interval / 2]
    # Every scheduled shock that fell inside the run happened.
    span = (run.signals[-1]["ts"] - run.sim.config.start_us) / 1e6
    scheduled = sum(len(run.sim.news_times(s, span)) for s in run.sim.symbols)
    assert scheduled - len(run.sim.symbols) <= run.sim.stats["news"] <= scheduled + len(run.sim.symbols)


def test_features_reflect_the_hidden_regime(run: Run) -> None:
    by_regime: dict[Regime, list[dict]] = defaultdict(list)
    for signal, regime in zip(run.signals, run.regimes, strict=True):
        by_regime[regime].append(signal["features"])

    def mean(regime: Regime, name: str, absolute: bool = False) -> float:
        values = np.array([f[name] for f in by_regime[regime]])
        return float(np.abs(values).mean() if absolute else values.mean())

    assert (
        mean(Regime.TREND_UP, "eng_trend_strength")
        > 0.5
        > -0.5
        > mean(Regime.TREND_DOWN, "eng_trend_strength")
    )
    assert mean(Regime.TREND_UP, "eng_trend_strength", True) > 1.5 * mean(
        Regime.RANGE, "eng_trend_strength", True
    )
    assert mean(Regime.VOL_SPIKE, "eng_volatility") > 2 * mean(Regime.RANGE, "eng_volatility")
    assert mean(Regime.VOL_SPIKE, "eng_spread_bps") > mean(Regime.RANGE, "eng_spread_bps")


def test_families_earn_in_their_regimes(run: Run) -> None:
    def mean_oracle(family: str, regimes: set[Regime]) -> float:
        picked = [
            o
            for o, s, r in zip(run.oracle, run.signals, run.regimes, strict=True)
            if s["family"] == family and r in regimes
        ]
        return float(np.mean(picked))

    trends = {Regime.TREND_UP, Regime.TREND_DOWN}
    for family in ("ema_cross", "momentum"):
        assert mean_oracle(family, trends) > 0 > mean_oracle(family, {Regime.RANGE})
    assert mean_oracle("mean_reversion", {Regime.RANGE}) > mean_oracle("mean_reversion", trends)
    assert mean_oracle("breakout", trends) > mean_oracle("breakout", {Regime.RANGE})


def test_realised_returns_are_the_oracle_plus_noise(run: Run) -> None:
    noise = run.returns - run.oracle
    assert abs(noise.mean()) < 3 * noise.std() / np.sqrt(len(noise))
    # The noise dominates each return, but the expectation still explains a visible share.
    assert 1.5 * run.oracle.std() < noise.std() < 6 * run.oracle.std()
    assert 0.15 < np.corrcoef(run.oracle, run.returns)[0, 1] < 0.6


def test_score_is_informative_but_imperfect(run: Run) -> None:
    scores = np.array([s["score"] for s in run.signals])
    assert 0.2 < np.corrcoef(scores, run.oracle)[0, 1] < 0.8


def test_oracle_sizing_beats_fixed_and_the_score_rule_beats_it_modestly(run: Run) -> None:
    scores = np.array([s["score"] for s in run.signals])
    fixed = sharpe(np.ones_like(run.returns), run.returns)
    rule = sharpe(np.where(scores > 0.8, 1.5, np.where(scores < 0.4, 0.5, 1.0)), run.returns)
    oracle = sharpe(np.clip(1.0 + run.oracle / run.oracle.std(), 0.25, 2.0), run.returns)
    assert rule - fixed > 0.01
    assert oracle - fixed > 0.08
    assert oracle - fixed > 2.5 * (rule - fixed)


def test_hidden_function_depends_on_side_family_and_costs() -> None:
    trend = {
        "eng_trend_strength": 3.0,
        "eng_zscore": 1.5,
        "eng_breakout_distance": 1.4,
        "eng_momentum": 1.5,
        "eng_volatility": 8.0,
        "eng_spread_bps": 1.0,
    }
    flat = {**trend, "eng_trend_strength": 0.1, "eng_breakout_distance": 0.3, "eng_momentum": 0.2}
    for family in ("ema_cross", "momentum", "breakout"):
        assert (
            expected_return(family, "BUY", trend, 0.0002) > 0 > expected_return(family, "SELL", trend, 0.0002)
        )
        assert expected_return(family, "BUY", flat, 0.0002) < 0
    assert (
        expected_return("mean_reversion", "SELL", flat, 0.0002)
        > 0
        > expected_return("mean_reversion", "SELL", trend, 0.0002)
    )
    wide = {**trend, "eng_spread_bps": 5.0}
    assert expected_return("ema_cross", "BUY", wide, 0.0) == pytest.approx(
        expected_return("ema_cross", "BUY", trend, 0.0) - 4e-4
    )
    with pytest.raises(ValueError, match="family"):
        expected_return("carry", "BUY", trend, 0.0)
