"""Synthetic Experience records for the trainer's tests: valid records and a bandit with known means."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from streams.features import SIZER_SPEC

__all__ = ["MakeRecord", "bandit_records", "make_record"]

MakeRecord = Callable[..., dict[str, Any]]


def make_record(
    i: int,
    *,
    status: str = "COMPLETE",
    revision: int = 0,
    ret: float | None = 0.001,
    ts: int | None = None,
    state: list[float] | None = None,
    premium: bool = False,
    model_version: str | None = None,
    action: float = 1.0,
    score: float = 0.5,
) -> dict[str, Any]:
    """A valid Experience record for signal ``s{i}``."""
    ret = None if status == "CENSORED" else ret
    return {
        "event_id": f"e{i}-{revision}",
        "ts": ts if ts is not None else 1_000_000 * (i + 1),
        "signal_id": f"s{i}",
        "status": status,
        "revision": revision,
        "strategy": "ema_cross_fast",
        "family": "ema_cross",
        "portfolio": "main",
        "symbol": "BTC-USD",
        "side": "BUY",
        "score": score,
        "feature_spec_version": SIZER_SPEC.version,
        "state": state if state is not None else [float(i % 7)] * SIZER_SPEC.size,
        "snapshot_ts": None,
        "action": action,
        "model_version": model_version,
        "return_unit": ret,
        "pnl": None if ret is None else ret * 10_000,
        "outcome_ts": None if ret is None else 1_000_000 * (i + 2),
        "premium": premium,
        "completeness": 1.0,
        "validation_flags": [],
        "profitability": 0.0 if ret is None else math.tanh(ret / 0.0025),
        "priority": 1.0,
        "integrity_hash": f"h{i}",
    }


def bandit_records(n: int, seed: int = 0) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Records whose expected return is a known function of the state; returns them and the means."""
    rng = np.random.default_rng(seed)
    states = rng.normal(size=(n, SIZER_SPEC.size))
    mean = 0.002 * np.tanh(states[:, 7])
    rets = mean + 0.004 * rng.normal(size=n)
    records = [make_record(i, ret=float(rets[i]), state=states[i].tolist()) for i in range(n)]
    return records, mean
