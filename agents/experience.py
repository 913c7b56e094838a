"""Building Experience records: state vector, scores, priority and the integrity hash.

Everything here is a function of the joined signal, outcome and point-in-time features, never of
the wall clock, so replaying the same inputs rebuilds the same bytes.

The integrity hash is the sha256 hex digest of the canonical JSON of every other field: keys
sorted, separators ``,`` and ``:``, ASCII escapes, floats in Python's shortest round-trip form.

Example:
    >>> record = {"signal_id": "s1", "revision": 0, "state": [0.5, 1.0]}
    >>> integrity_hash(record) == integrity_hash(dict(reversed(list(record.items()))))
    True
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from streams.config.agents import AgentSettings
from streams.features import ENGINE_FEATURES, FAMILIES, SIZER_SPEC, build_state

__all__ = [
    "CENSORED",
    "COMPLETE",
    "CORRECTION",
    "EXPERIENCE_NAMESPACE",
    "Resolved",
    "experience_id",
    "experience_record",
    "integrity_hash",
]

COMPLETE: Final = "COMPLETE"
CENSORED: Final = "CENSORED"
CORRECTION: Final = "CORRECTION"
EXPERIENCE_NAMESPACE: Final = uuid.UUID("c7d1e0a4-3b6f-4e2a-9d85-1f0b6a7c3e92")
CENSORED_PRIORITY: Final = 0.25


@dataclass(frozen=True, slots=True)
class Resolved:
    """The point-in-time side of a signal, fixed once its symbol's features passed the signal time."""

    stream_values: list[float] | None
    snapshot_ts: int | None
    premium: bool
    flags: tuple[str, ...]

    def to_json(self) -> list[Any]:
        return [self.stream_values, self.snapshot_ts, self.premium, list(self.flags)]

    @classmethod
    def from_json(cls, data: list[Any]) -> Resolved:
        values, snapshot_ts, premium, flags = data
        return cls(values, snapshot_ts, premium, tuple(flags))


def experience_id(signal_id: str, revision: int) -> str:
    """The deterministic event id of a signal's experience revision."""
    return uuid.uuid5(EXPERIENCE_NAMESPACE, f"{signal_id}/{revision}").hex


def integrity_hash(record: Mapping[str, Any]) -> str:
    """sha256 hex of the canonical JSON of ``record`` without its ``integrity_hash`` field."""
    body = {k: v for k, v in record.items() if k != "integrity_hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def experience_record(
    signal: Mapping[str, Any],
    outcome: Mapping[str, Any] | None,
    resolved: Resolved,
    status: str,
    revision: int,
    settings: AgentSettings,
) -> dict[str, Any]:
    """The Experience record of ``signal`` (CENSORED when ``outcome`` is None)."""
    state, completeness = build_state(
        SIZER_SPEC,
        score=signal["score"],
        side=signal["side"],
        family=signal["family"],
        engine_features=signal["features"],
        stream_values=resolved.stream_values,
    )
    flags = set(resolved.flags)
    if any(name not in signal["features"] for name in ENGINE_FEATURES):
        flags.add("missing_features")
    if signal["family"] not in FAMILIES:
        flags.add("unknown_family")
    if status == CORRECTION:
        flags.add("late_outcome")
    if outcome is None:
        return_unit = pnl = outcome_ts = None
        profitability, priority = 0.0, CENSORED_PRIORITY
    else:
        return_unit, pnl, outcome_ts = outcome["return_unit"], outcome["pnl"], outcome["ts"]
        profitability = math.tanh(return_unit / settings.profit_scale)
        priority = 1.0 + max(0.0, profitability)
    if resolved.premium:
        priority *= settings.premium_multiplier
    record: dict[str, Any] = {
        "event_id": experience_id(signal["signal_id"], revision),
        "ts": signal["ts"],
        "signal_id": signal["signal_id"],
        "status": status,
        "revision": revision,
        "strategy": signal["strategy"],
        "family": signal["family"],
        "portfolio": signal["portfolio"],
        "symbol": signal["symbol"],
        "side": signal["side"],
        "score": signal["score"],
        "feature_spec_version": SIZER_SPEC.version,
        "state": state,
        "snapshot_ts": resolved.snapshot_ts,
        "action": signal["action"],
        "model_version": signal["model_version"],
        "return_unit": return_unit,
        "pnl": pnl,
        "outcome_ts": outcome_ts,
        "premium": resolved.premium,
        "completeness": completeness,
        "validation_flags": sorted(flags),
        "profitability": profitability,
        "priority": priority,
    }
    record["integrity_hash"] = integrity_hash(record)
    return record
