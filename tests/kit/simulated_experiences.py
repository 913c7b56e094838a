"""Experience records from a simulator backfill, without the Faust agents (for tests and benches).

Joins each simulated signal with its outcome the way the join agent does (one COMPLETE record per
signal, revision 0), builds the state with :func:`streams.features.build_state` from the signal's
engine features (no stream features: ``stream_values=None`` leaves them 0, flagged
``no_snapshot``), and returns the simulator's oracle (true expected unit return) per signal.

``profitability = tanh(return_unit / PROFIT_SCALE)`` and ``priority = 1 + |profitability|`` (+1 when
premium) stand in for the agents' own formulas; the trainer recomputes its sampling priority from
``profitability`` and ``premium`` anyway.

Example:
    >>> exps, oracle = backfill_experiences(seed=1, n_signals=50)
    >>> len(exps) == len(oracle) == 50 and exps[0]["status"]
    'COMPLETE'
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from streams.features import SIZER_SPEC, build_state
from streams.simulator import SimConfig, Simulator
from streams.simulator.oracle import noise_sd

__all__ = ["PROFIT_SCALE", "Backfill", "arrays", "backfill_experiences", "experience", "simulate"]

PROFIT_SCALE: Final = 0.0025  # 25 bps: a typical absolute unit return in the simulator


def _integrity(record: dict[str, Any]) -> str:
    fields = {
        k: record[k] for k in ("signal_id", "revision", "status", "ts", "state", "action", "return_unit")
    }
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def experience(
    signal: dict[str, Any], outcome: dict[str, Any] | None, premium: bool = False
) -> dict[str, Any]:
    """The Experience record of a signal and its outcome (CENSORED when ``outcome`` is None)."""
    state, completeness = build_state(
        SIZER_SPEC, score=signal["score"], side=signal["side"], family=signal["family"],
        engine_features=signal["features"], stream_values=None,
    )  # fmt: skip
    ret = None if outcome is None else float(outcome["return_unit"])
    profitability = 0.0 if ret is None else math.tanh(ret / PROFIT_SCALE)
    record: dict[str, Any] = {
        "event_id": f"exp-{signal['signal_id']}-0",
        "ts": signal["ts"],
        "signal_id": signal["signal_id"],
        "status": "CENSORED" if outcome is None else "COMPLETE",
        "revision": 0,
        "strategy": signal["strategy"],
        "family": signal["family"],
        "portfolio": signal["portfolio"],
        "symbol": signal["symbol"],
        "side": signal["side"],
        "score": float(signal["score"]),
        "feature_spec_version": SIZER_SPEC.version,
        "state": state,
        "snapshot_ts": None,
        "action": float(signal["action"]),
        "model_version": signal["model_version"],
        "return_unit": ret,
        "pnl": None if outcome is None else float(outcome["pnl"]),
        "outcome_ts": None if outcome is None else int(outcome["ts"]),
        "premium": premium,
        "completeness": completeness,
        "validation_flags": ["no_snapshot"],
        "profitability": profitability,
        "priority": 1.0 + abs(profitability) + (1.0 if premium else 0.0),
        "integrity_hash": "",
    }
    record["integrity_hash"] = _integrity(record)
    return record


@dataclass(frozen=True, slots=True)
class Backfill:
    """Experiences of a backfill, with the simulator's truth per signal (never shown to a learner)."""

    records: list[dict[str, Any]]
    oracle: dict[str, float]  # true expected unit return
    noise_sd: dict[str, float]  # sd of the realised unit return around it


def simulate(seed: int, n_signals: int) -> Backfill:
    """``n_signals`` COMPLETE experiences of a seeded backfill in signal-time order, and the truth."""
    sim = Simulator(SimConfig(seed=seed))
    signals: dict[str, dict[str, Any]] = {}
    outcomes: dict[str, dict[str, Any]] = {}
    for event in sim.backfill(n_signals):
        if event.topic == "signals":
            signals[event.record["signal_id"]] = event.record
        elif event.topic == "outcomes":
            outcomes[event.record["signal_id"]] = event.record
    records = [experience(sig, outcomes[sid]) for sid, sig in signals.items() if sid in outcomes]
    records.sort(key=lambda r: (r["ts"], r["signal_id"]))
    ids = [r["signal_id"] for r in records]
    return Backfill(
        records=records,
        oracle={sid: sim.oracle(sid) for sid in ids},
        noise_sd={sid: noise_sd(signals[sid]["features"], signals[sid]["horizon_seconds"]) for sid in ids},
    )


def backfill_experiences(seed: int, n_signals: int) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """``n_signals`` COMPLETE experiences of a seeded backfill (signal-time order) and their oracle."""
    found = simulate(seed, n_signals)
    return found.records, found.oracle


def arrays(records: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Column arrays (state, return_unit, score, ts) of COMPLETE records, in record order."""
    done = [r for r in records if r["return_unit"] is not None]
    return {
        "state": np.array([r["state"] for r in done], dtype=np.float64),
        "return_unit": np.array([r["return_unit"] for r in done]),
        "score": np.array([r["score"] for r in done]),
        "ts": np.array([r["ts"] for r in done], dtype=np.int64),
    }
