"""Rolling features against the numpy reference, and independence from batch boundaries."""

from __future__ import annotations

import numpy as np
import pytest

from agents.features import FeatureState, clamp_monotonic
from agents.market import Market
from streams.config.agents import AgentSettings
from streams.features import STREAM_FEATURES
from tests.kit.agents.builders import CODEC, T0, inbound, random_trades
from tests.kit.agents.reference import reference


def arrays(trades: list[dict]) -> tuple[np.ndarray, ...]:
    ts = clamp_monotonic(np.array([t["ts"] for t in trades], dtype=np.int64), 0)
    price = np.array([t["price"] for t in trades])
    size = np.array([t["size"] for t in trades])
    buy = np.array([1.0 if t["side"] == "BUY" else 0.0 for t in trades])
    return ts, price, size, buy


def run_market(trades: list[dict], cuts: list[int], settings: AgentSettings | None = None) -> list[dict]:
    market = Market(settings or AgentSettings(), CODEC)
    messages = [inbound("trades", t, offset=i) for i, t in enumerate(trades)]
    snapshots = []
    for a, b in zip([0, *cuts], [*cuts, len(messages)], strict=True):
        snapshots.extend(r for _, r in market.handle(messages[a:b], now=T0 + 10**13).snapshots)
    return snapshots


def test_snapshots_match_the_numpy_reference_on_the_same_events() -> None:
    trades = random_trades(1500, seed=3)
    ts, price, size, buy = arrays(trades)
    snapshots = run_market(trades, cuts=[100, 101, 700, 1234])
    assert len(snapshots) > 300, "one snapshot per second of event time with trades"
    checked = 0
    for snap in snapshots[::7]:
        n = snap["trade_count"] - 1
        expected = reference(ts, price, size, buy, n)
        want = np.array([expected[name] for name in STREAM_FEATURES])
        np.testing.assert_allclose(snap["values"], want, rtol=1e-9, atol=1e-12, err_msg=f"trade {n}")
        assert snap["ts"] == ts[n]
        checked += 1
    assert checked > 40


def test_features_do_not_depend_on_how_the_stream_was_batched() -> None:
    trades = random_trades(800, seed=5)
    one_batch = run_market(trades, cuts=[])
    rng = np.random.default_rng(0)
    cuts = sorted(set(rng.integers(1, len(trades) - 1, 60).tolist()))
    many_batches = run_market(trades, cuts=cuts)
    assert [s["values"] for s in one_batch] == [s["values"] for s in many_batches]  # bit for bit
    assert [s["event_id"] for s in one_batch] == [s["event_id"] for s in many_batches]


def test_snapshot_throttle_is_one_per_event_time_interval_and_zero_means_every_trade() -> None:
    trades = random_trades(300, seed=9, gaps=False)
    every = run_market(trades, cuts=[], settings=AgentSettings(snapshot_interval_seconds=0))
    assert len(every) == 300
    throttled = run_market(trades, cuts=[], settings=AgentSettings(snapshot_interval_seconds=5))
    slots = [s["ts"] // 5_000_000 for s in throttled]
    assert len(slots) == len(set(slots)) and len(throttled) < 100


def test_state_survives_a_round_trip_through_its_persisted_keys() -> None:
    trades = random_trades(900, seed=11)
    messages = [inbound("trades", t, offset=i) for i, t in enumerate(trades)]
    original = Market(AgentSettings(), CODEC)
    table: dict[bytes, bytes] = {}

    def apply(writes: list) -> None:
        for _, key, value in writes:
            if value is None:
                table.pop(key, None)
            else:
                table[key] = value

    apply(original.handle(messages[:500], now=T0 + 10**13).writes)
    restored = Market(AgentSettings(), CODEC)
    restored.load(table.items())
    a = original.handle(messages[500:], now=T0 + 10**13)
    b = restored.handle(messages[500:], now=T0 + 10**13)
    assert [r for _, r in a.snapshots] == [r for _, r in b.snapshots]
    state_keys = [k for k in table if not k.startswith(b"s:")]
    assert len(state_keys) <= 60 + 30 + 4096 // 64 + 1, "bucketed state stays small: no per-trade keys"


def test_first_trade_gives_finite_neutral_features() -> None:
    state = FeatureState()
    out = state.update(np.array([T0]), np.array([50.0]), np.array([2.0]), np.array([1.0]), np.array([True]))
    values = dict(zip(STREAM_FEATURES, out[0][1], strict=True))
    assert all(np.isfinite(v) for v in values.values())
    assert values["ret_1m"] == 0.0 and values["rsi_14"] == 0.5 and values["buy_ratio_1m"] == 1.0


@pytest.mark.parametrize("n", [1, 2, 40])
def test_reference_agrees_on_tiny_streams(n: int) -> None:
    trades = random_trades(n, seed=n, gaps=False)
    ts, price, size, buy = arrays(trades)
    snaps = run_market(trades, cuts=[], settings=AgentSettings(snapshot_interval_seconds=0))
    want = reference(ts, price, size, buy, n - 1)
    np.testing.assert_allclose(snaps[-1]["values"], [want[k] for k in STREAM_FEATURES], rtol=1e-9, atol=1e-12)
