"""The simulated engine's event stream: determinism, contracts, ordering and the sizing hook."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from pydantic import ValidationError

from streams.avro.codec import Codec
from streams.config.simulator import SimulatorSettings
from streams.errors import ConfigError
from streams.features import ENGINE_FEATURES, FAMILIES
from streams.simulator import EPOCH_US, SimConfig, SimEvent, Simulator, SimulatorError
from streams.simulator.runner import parse_speed
from streams.topics import OUTCOMES, SIGNALS, TRADES


def records(events: list[SimEvent]) -> list[tuple[str, str, dict]]:
    return [(e.topic, e.key, e.record) for e in events]


def test_same_seed_gives_identical_events_and_another_seed_does_not() -> None:
    first = records(list(Simulator(SimConfig(seed=5)).events(3000)))
    again = records(list(Simulator(SimConfig(seed=5)).events(3000)))
    other = records(list(Simulator(SimConfig(seed=6)).events(3000)))
    assert first == again
    assert first != other
    assert [r["price"] for t, _, r in first if t == TRADES][:50] != [
        r["price"] for t, _, r in other if t == TRADES
    ][:50]


def test_successive_calls_continue_one_stream() -> None:
    whole = records(list(Simulator(SimConfig(seed=2)).events(1000)))
    sim = Simulator(SimConfig(seed=2))
    assert records([*sim.events(400), *sim.events(600)]) == whole


def test_every_record_round_trips_through_the_codec() -> None:
    codec = Codec()
    events = list(Simulator(SimConfig(seed=3)).events(4000))
    assert {e.topic for e in events} == {TRADES, SIGNALS, OUTCOMES}
    for event in events:
        assert codec.decode(event.topic, codec.encode(event.topic, event.record)) == event.record


def test_symbols_strategies_and_families() -> None:
    sim = Simulator(SimConfig(seed=1, symbols=4, strategies_per_family=2))
    assert len(sim.symbols) == 4 and len(set(sim.symbols)) == 4
    assert sim.strategies[:3] == ["ema_cross_fast", "ema_cross_slow", "mean_reversion_1"]
    assert len(sim.strategies) == 8
    assert set(sim.families.values()) == set(FAMILIES)
    signals = [e.record for e in sim.backfill(2000) if e.topic == SIGNALS]
    by_strategy = Counter(s["strategy"] for s in signals)
    assert set(by_strategy) == set(sim.strategies)
    # Every strategy is active; the most selective still gets a fair share of the signals.
    assert min(by_strategy.values()) > 0.3 * max(by_strategy.values())
    assert {s["symbol"] for s in signals} == set(sim.symbols)


def test_more_symbols_and_variants() -> None:
    sim = Simulator(SimConfig(seed=1, symbols=10, strategies_per_family=3))
    assert len(set(sim.symbols)) == 10 and len(set(sim.strategies)) == 12


def test_records_are_in_event_time_order_with_valid_fields() -> None:
    sim = Simulator(SimConfig(seed=4))
    events = list(sim.events(5000))
    stamps = [e.record["ts"] for e in events]
    assert stamps == sorted(stamps) and stamps[0] >= EPOCH_US
    assert len({e.record["event_id"] for e in events}) == len(events)
    assert events[0].record["event_id"] == "4-1"
    trades = [e for e in events if e.topic == TRADES]
    assert all(t.key == t.record["symbol"] and t.record["price"] > 0 and t.record["size"] > 0 for t in trades)
    assert {t.record["side"] for t in trades} == {"BUY", "SELL"}
    # Several prints per simulated second across the symbols.
    seconds = (trades[-1].record["ts"] - trades[0].record["ts"]) / 1e6
    assert 4 <= len(trades) / seconds <= 16
    signals = [e.record for e in events if e.topic == SIGNALS]
    assert len({s["signal_id"] for s in signals}) == len(signals)
    for s in signals:
        assert tuple(s["features"]) == ENGINE_FEATURES
        assert all(math.isfinite(v) for v in s["features"].values())
        assert 0.0 <= s["score"] <= 1.0 and s["price"] > 0 and s["horizon_seconds"] > 0
        assert s["family"] in FAMILIES and s["strategy"].startswith(s["family"])
        assert s["action"] == 1.0 and s["model_version"] is None and s["portfolio"] == "main"
    assert all(e.key == e.record["symbol"] for e in events if e.topic in (SIGNALS, OUTCOMES))


def test_outcomes_close_their_signals_consistently() -> None:
    sim = Simulator(SimConfig(seed=8))
    events = list(sim.backfill(1500))
    signals = {e.record["signal_id"]: e.record for e in events if e.topic == SIGNALS}
    outcomes = [e.record for e in events if e.topic == OUTCOMES]
    assert len(signals) == len(outcomes) == 1500 and sim.open_positions == 0
    assert {o["signal_id"] for o in outcomes} == set(signals)
    reasons = Counter(o["exit_reason"] for o in outcomes)
    assert reasons["TIME"] > reasons["TAKE_PROFIT"] > 0 and reasons["STOP_LOSS"] > 0
    notional, fee_rt = sim.config.notional, sim.config.fee_round_trip
    for o in outcomes:
        s = signals[o["signal_id"]]
        assert s["ts"] < o["ts"] <= s["ts"] + s["horizon_seconds"] * 1e6 + 1
        assert (o["symbol"], o["strategy"]) == (s["symbol"], s["strategy"])
        direction = 1.0 if s["side"] == "BUY" else -1.0
        gross = direction * (o["exit_price"] - o["entry_price"]) / o["entry_price"]
        assert o["return_unit"] == pytest.approx(gross - o["fees"] / notional, abs=1e-12)
        assert o["fees"] == pytest.approx(fee_rt * notional) and o["fees"] >= 0
        assert o["pnl"] == pytest.approx(o["return_unit"] * notional)
        assert o["exit_price"] > 0 and o["entry_price"] > 0
        if o["exit_reason"] == "TIME":
            assert o["ts"] == s["ts"] + int(s["horizon_seconds"] * 1e6)


def test_sizer_sets_action_and_scales_outcomes_without_changing_the_market() -> None:
    def sizer(signal: dict) -> float:
        signal["features"].clear()  # a misbehaving callback must not alter the record
        return 2.0 if signal["score"] > 0.5 else 0.5

    plain = list(Simulator(SimConfig(seed=9)).backfill(300))
    sized = list(Simulator(SimConfig(seed=9), sizer=sizer).backfill(300))
    assert [(e.topic, e.record["ts"], e.key) for e in plain] == [
        (e.topic, e.record["ts"], e.key) for e in sized
    ]
    signals = {e.record["signal_id"]: e.record for e in sized if e.topic == SIGNALS}
    assert all(len(s["features"]) == len(ENGINE_FEATURES) for s in signals.values())
    assert {s["action"] for s in signals.values()} == {0.5, 2.0}
    unit = {e.record["signal_id"]: e.record for e in plain if e.topic == OUTCOMES}
    for o in (e.record for e in sized if e.topic == OUTCOMES):
        multiplier = signals[o["signal_id"]]["action"]
        assert o["size_multiplier"] == multiplier
        assert o["return_unit"] == unit[o["signal_id"]]["return_unit"]
        assert o["pnl"] == pytest.approx(unit[o["signal_id"]]["pnl"] * multiplier)
        assert o["fees"] == pytest.approx(unit[o["signal_id"]]["fees"] * multiplier)


@pytest.mark.parametrize("bad", [math.nan, -1.0, math.inf, "2"])
def test_invalid_sizer_result_is_a_typed_error(bad: object) -> None:
    sim = Simulator(SimConfig(seed=1), sizer=lambda _signal: bad)  # type: ignore[arg-type,return-value]
    with pytest.raises(SimulatorError, match="sizer returned"):
        list(sim.backfill(1))


def test_oracle_covers_every_signal() -> None:
    sim = Simulator(SimConfig(seed=1))
    ids = [e.record["signal_id"] for e in sim.backfill(200) if e.topic == SIGNALS]
    table = sim.oracle_table()
    assert set(table) == set(ids) and sim.oracle(ids[0]) == table[ids[0]]
    with pytest.raises(KeyError):
        sim.oracle("no-such-signal")


def test_config_from_settings_and_validation() -> None:
    section = SimulatorSettings(symbols=6, portfolio="alt", holding_seconds=60.0)
    cfg = SimConfig.from_settings(section, seed=4)
    assert (cfg.seed, cfg.symbols, cfg.portfolio, cfg.holding_seconds) == (4, 6, "alt", 60.0)
    signal = next(e.record for e in Simulator(cfg).events(200) if e.topic == SIGNALS)
    assert signal["portfolio"] == "alt"
    # The settings section's bounds hold for a config built directly too.
    with pytest.raises(ValidationError, match="holding_seconds"):
        SimConfig(holding_seconds=0)
    with pytest.raises(ValidationError, match="seed"):
        SimConfig(seed=-1)
    with pytest.raises(ValidationError, match="symbols"):
        SimConfig(symbols=65)


def test_parse_speed() -> None:
    assert parse_speed("max") is None
    assert parse_speed("realtime") == 1.0
    assert parse_speed("x10") == 10.0 and parse_speed("2.5x") == 2.5
    for bad in ("fast", "x0", "x-1", "10", "xnan"):
        with pytest.raises(ConfigError, match="speed"):
            parse_speed(bad)
