"""One valid sample record per topic, shared by codec and SDK tests."""

from __future__ import annotations

from typing import Any

TS = 1_767_225_600_000_000

SAMPLES: dict[str, dict[str, Any]] = {
    "trades": {"event_id": "t1", "ts": TS, "symbol": "BTC-USD", "price": 50_000.5, "size": 0.25, "side": "BUY"},
    "signals": {
        "event_id": "s1", "ts": TS, "signal_id": "sig-1", "strategy": "ema_cross_fast", "family": "ema_cross",
        "portfolio": "main", "symbol": "BTC-USD", "side": "SELL", "price": 50_000.0, "score": 0.7,
        "features": {"eng_momentum": 0.3}, "horizon_seconds": 120.0, "action": 1.0, "model_version": None,
    },
    "outcomes": {
        "event_id": "o1", "ts": TS + 120_000_000, "signal_id": "sig-1", "symbol": "BTC-USD",
        "strategy": "ema_cross_fast", "entry_price": 50_000.0, "exit_price": 49_900.0, "size_multiplier": 1.0,
        "return_unit": 0.0018, "pnl": 1.8, "fees": 0.2, "exit_reason": "TIME",
    },
    "features": {"event_id": "f1", "ts": TS, "symbol": "BTC-USD", "spec_version": "sizer-v1",
                 "values": [0.1, 0.2], "trade_count": 10},
    "price-moves": {"event_id": "p1", "ts": TS, "symbol": "BTC-USD", "kind": "VELOCITY", "value": 2.5,
                    "threshold": 1.0, "window_seconds": 60.0, "change_pct": -2.5, "price": 48_000.0},
    "experiences": {
        "event_id": "x1", "ts": TS, "signal_id": "sig-1", "status": "COMPLETE", "revision": 0,
        "strategy": "ema_cross_fast", "family": "ema_cross", "portfolio": "main", "symbol": "BTC-USD",
        "side": "SELL", "score": 0.7, "feature_spec_version": "sizer-v1", "state": [0.7, -1.0],
        "snapshot_ts": TS - 1, "action": 1.0, "model_version": "v3", "return_unit": 0.0018, "pnl": 1.8,
        "outcome_ts": TS + 120_000_000, "premium": False, "completeness": 1.0, "validation_flags": [],
        "profitability": 0.1, "priority": 1.1, "integrity_hash": "ab" * 32,
    },
    "allocation-periods": {
        "event_id": "a1", "ts": TS + 300_000_000, "portfolio": "main", "period_start": TS,
        "period_seconds": 300.0, "strategies": ["a", "b"], "strategy_returns": [0.01, -0.02],
        "market": [0.0] * 8, "portfolio_state": [0.0] * 6, "strategy_sharpe": [0.5, -0.1],
        "strategy_drawdown": [0.0, 0.03], "regime": [1.0, 0.0, 0.0, 0.0], "trades": 12,
    },
    "model-updates": {"event_id": "m1", "ts": TS, "model_name": "sizer", "version": "v1", "role": "SERVE",
                      "manifest_json": "{}", "onnx": b"\x08\x01", "signature": "00", "reason": "promote"},
    "sizing-requests": {"event_id": "r1", "ts": TS, "signal_id": "sig-1", "client_id": "engine-1",
                        "strategy": "ema_cross_fast", "symbol": "BTC-USD", "side": "BUY", "score": 0.9,
                        "features": {"eng_momentum": 0.2}},
    "sizing-decisions": {"event_id": "d1", "ts": TS, "signal_id": "sig-1", "client_id": "engine-1",
                         "request_ts": TS, "multiplier": 1.5, "model_name": "rule", "model_version": None,
                         "fallback": True, "fallback_reason": "no_model", "latency_us": 80, "worker_id": "w1"},
    "strategy-weights": {"event_id": "w1", "ts": TS, "portfolio": "main", "strategies": ["a", "b"],
                         "weights": [0.5, 0.5], "model_version": None, "fallback": True,
                         "fallback_reason": "no_model", "worker_id": "w1"},
    "dead-letter": {"event_id": "dl1", "ts": TS, "stage": "decode", "component": "worker-1",
                    "topic": "tradeloop.trades", "partition": 0, "offset": 42, "key": b"BTC", "raw": b"\x00\x01",
                    "reason": "bad_magic", "error": "first byte 0x00"},
    "heartbeats": {"event_id": "h1", "ts": TS, "component": "worker", "component_id": "worker-h-1", "host": "h",
                   "pid": 1, "status": "UP", "interval_seconds": 2.0, "gauges": {"lag": 0.0},
                   "info": {"sizer": "v1"}},
    "control": {"event_id": "c1", "ts": TS, "command": "FORCE_FALLBACK", "scope": "all", "reason": "test",
                "issued_by": "ops"},
}
