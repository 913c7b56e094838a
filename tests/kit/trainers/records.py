"""Synthetic Experience records for the trainer's tests: valid records and a bandit with known means."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from streams.features import SIZER_SPEC
from streams.kafka.producer import EventProducer
from streams.settings import Settings
from streams.topics import EXPERIENCES

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


def produce_experiences(
    settings: Settings, records: list[dict[str, Any]], garbage: int = 0, ends: dict[int, int] | None = None
) -> dict[int, int]:
    """Produce ``records`` (and ``garbage`` undecodable ones); returns the end offset per partition.

    The end offsets come from the delivery reports and accumulate in ``ends`` when it is given:
    Tansu 0.6 answers ListOffsets(latest) with the last batch's base offset + 1 (too low for
    multi-record batches; docs/trainer.md has the plain-client reproduction), while the acks are exact.
    """
    ends = {} if ends is None else ends

    def delivered(error: Any, message: Any) -> None:
        if error is None:
            ends[message.partition()] = max(ends.get(message.partition(), 0), message.offset() + 1)

    with EventProducer(settings, "test-engine") as producer:
        for record in records:
            producer.send(EXPERIENCES, record["signal_id"], record, on_delivery=delivered)
        for i in range(garbage):
            producer.send_raw(EXPERIENCES, f"bad-{i}", b"not avro at all", on_delivery=delivered)
    return ends
