"""Small builders of engine events for the agents' tests (until tests use the simulator)."""

from __future__ import annotations

from typing import Any

import numpy as np

from agents.validate import Inbound
from streams.avro.codec import Codec
from streams.features import ENGINE_FEATURES

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z in microseconds
SECOND = 1_000_000
CODEC = Codec()


def trade(i: int | str, ts: int, symbol: str = "BTC", price: float = 100.0, size: float = 1.0,
          side: str = "BUY") -> dict[str, Any]:  # fmt: skip
    return {"event_id": f"t-{i}", "ts": ts, "symbol": symbol, "price": price, "size": size, "side": side}


def signal(signal_id: str, ts: int, symbol: str = "BTC", horizon: float = 60.0, score: float = 0.7,
           strategy: str = "ema_cross_fast", family: str = "ema_cross", portfolio: str = "main",
           features: dict[str, float] | None = None, event_id: str | None = None) -> dict[str, Any]:  # fmt: skip
    return {
        "event_id": event_id or f"s-{signal_id}", "ts": ts, "signal_id": signal_id, "strategy": strategy,
        "family": family, "portfolio": portfolio, "symbol": symbol, "side": "BUY", "price": 100.0,
        "score": score, "features": features if features is not None else {n: 0.1 for n in ENGINE_FEATURES},
        "horizon_seconds": horizon, "action": 1.0, "model_version": "v1",
    }  # fmt: skip


def outcome(signal_id: str, ts: int, return_unit: float = 0.01, symbol: str = "BTC",
            strategy: str = "ema_cross_fast", event_id: str | None = None) -> dict[str, Any]:  # fmt: skip
    return {
        "event_id": event_id or f"o-{signal_id}", "ts": ts, "signal_id": signal_id, "symbol": symbol,
        "strategy": strategy, "entry_price": 100.0, "exit_price": 100.0 * (1 + return_unit),
        "size_multiplier": 1.0, "return_unit": return_unit, "pnl": 100.0 * return_unit, "fees": 0.01,
        "exit_reason": "TIME", "side": "BUY",
    }  # fmt: skip


def key_of(topic: str, record: dict[str, Any]) -> bytes:
    return str(record["symbol"] if topic == "trades" else record["signal_id"]).encode()


def inbound(topic: str, record: dict[str, Any], offset: int, partition: int = 0,
            key: bytes | None = None, route: int | None = None) -> Inbound:  # fmt: skip
    value = CODEC.encode(topic, record)
    key = key if key is not None else key_of(topic, record)
    return Inbound(topic, f"t.{topic}", partition, offset, key, value, route)


def random_trades(n: int, seed: int = 1, symbol: str = "BTC", start: int = T0, gaps: bool = True
                  ) -> list[dict[str, Any]]:  # fmt: skip
    """A random walk with irregular spacing, some long pauses and a few out-of-order prints."""
    rng = np.random.default_rng(seed)
    steps = rng.exponential(0.7 * SECOND, n).astype(np.int64)
    if gaps:
        pauses = rng.random(n) < 0.004
        steps[pauses] += rng.integers(60, 900, pauses.sum()) * SECOND
    ts = start + np.cumsum(steps)
    late = rng.random(n) < 0.01
    ts[late] -= 3 * SECOND  # out of order: the features clamp these to the previous time
    prices = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.0015, n)))
    sizes = rng.lognormal(0, 0.8, n)
    sides = np.where(rng.random(n) < 0.5, "BUY", "SELL")
    return [trade(i, int(ts[i]), symbol, float(prices[i]), float(sizes[i]), str(sides[i])) for i in range(n)]
