"""Building Experience records: state vector, scores, priority, ids, the integrity hash, the side check.

Everything here is a function of the joined signal, outcome and point-in-time features, never of
the wall clock, so replaying the same inputs rebuilds the same bytes.

* ``event_id`` = ``uuid5(EXPERIENCE_NAMESPACE, "<signal_id>/<revision>")`` in hex.
* ``integrity_hash``: sha256 of the record's own Avro body with the field empty
  (:mod:`streams.avro.integrity`), filled in by :class:`ExperienceEncoder`.
* The reward cannot flip sign: :func:`checked_return` recomputes the unit return from the
  *signal's* side and the outcome's prices; an outcome whose ``return_unit`` matches the opposite
  side (or whose ``side`` differs from the signal's) is corrected and flagged ``side_mismatch``.

Example:
    >>> import uuid
    >>> experience_id("sig-1", 0) == uuid.uuid5(EXPERIENCE_NAMESPACE, "sig-1/0").hex
    True
    >>> signal = {"side": "SELL"}
    >>> outcome = {"entry_price": 100.0, "exit_price": 99.0, "return_unit": -0.011, "pnl": -11.0,
    ...            "fees": 1.0, "side": None}  # reported as if BUY: the sign is wrong
    >>> unit, pnl, flipped = checked_return(signal, outcome)
    >>> round(unit, 6), round(pnl, 6), flipped
    (0.009, 9.0, True)
"""

from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from streams.avro.codec import Codec
from streams.avro.integrity import seal
from streams.avro.writer import compile_writer
from streams.config.agents import AgentSettings
from streams.features import ENGINE_FEATURES, FAMILIES, SIZER_SPEC, build_state
from streams.topics import EXPERIENCES

__all__ = [
    "CENSORED",
    "COMPLETE",
    "CORRECTION",
    "EXPERIENCE_NAMESPACE",
    "SIDE_MISMATCH",
    "ExperienceEncoder",
    "Resolved",
    "checked_return",
    "experience_id",
    "experience_record",
]

COMPLETE: Final = "COMPLETE"
CENSORED: Final = "CENSORED"
CORRECTION: Final = "CORRECTION"
SIDE_MISMATCH: Final = "side_mismatch"
EXPERIENCE_NAMESPACE: Final = uuid.UUID("c7d1e0a4-3b6f-4e2a-9d85-1f0b6a7c3e92")
CENSORED_PRIORITY: Final = 0.25
_NAMESPACE_BYTES: Final = EXPERIENCE_NAMESPACE.bytes


@dataclass(frozen=True, slots=True)
class Resolved:
    """The point-in-time side of a signal, fixed once its symbol's features passed the signal time."""

    stream_values: list[float] | None
    snapshot_ts: int | None
    premium: bool
    flags: tuple[str, ...]


def experience_id(signal_id: str, revision: int) -> str:
    """The deterministic event id of a signal's experience revision: uuid5 in hex, computed directly."""
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + f"{signal_id}/{revision}".encode()).digest()[:16])  # noqa: S324 - uuid5 is sha1 by definition
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    return digest.hex()


def checked_return(signal: Mapping[str, Any], outcome: Mapping[str, Any]) -> tuple[float, float, bool]:
    """(return_unit, pnl, corrected) of an outcome, its sign checked against the signal's side.

    The gross unit return of the signal's side is ``±(exit / entry - 1)``; the outcome's fees per
    unit of notional are ``fees * return_unit / pnl``. The outcome is taken as reported unless its
    ``side`` names the other side, or its ``return_unit`` lies within a quarter of the gap between
    the two sides' returns from the other side's (so costs the fees do not cover, which move a
    return away from both, are not mistaken for a flip); then the return is recomputed from the
    prices and the P&L rescaled with it.
    """
    reported, pnl = outcome["return_unit"], outcome["pnl"]
    direction = 1.0 if signal["side"] == "BUY" else -1.0
    move = outcome["exit_price"] / outcome["entry_price"] - 1.0
    notional = pnl / reported if reported and pnl else 0.0
    fee = outcome["fees"] / notional if notional > 0 else 0.0
    right, wrong = direction * move - fee, -direction * move - fee
    side = outcome.get("side")
    flipped = abs(reported - wrong) <= 0.25 * abs(right - wrong) and abs(reported - wrong) < abs(reported - right)
    if (side is not None and side != signal["side"]) or flipped:
        return right, (pnl * right / reported if reported else pnl), True
    return reported, pnl, False


def experience_record(
    signal: Mapping[str, Any],
    outcome: Mapping[str, Any] | None,
    resolved: Resolved,
    status: str,
    revision: int,
    settings: AgentSettings,
) -> dict[str, Any]:
    """The Experience record of ``signal`` (CENSORED when ``outcome`` is None), its hash still empty."""
    state, completeness = build_state(
        SIZER_SPEC,
        score=signal["score"],
        side=signal["side"],
        family=signal["family"],
        engine_features=signal["features"],
        stream_values=resolved.stream_values,
    )
    flags = set(resolved.flags)
    features = signal["features"]
    if any(name not in features for name in ENGINE_FEATURES):
        flags.add("missing_features")
    if signal["family"] not in FAMILIES:
        flags.add("unknown_family")
    if status == CORRECTION:
        flags.add("late_outcome")
    if outcome is None:
        return_unit = pnl = outcome_ts = None
        profitability, priority = 0.0, CENSORED_PRIORITY
    else:
        return_unit, pnl, corrected = checked_return(signal, outcome)
        if corrected:
            flags.add(SIDE_MISMATCH)
        outcome_ts = outcome["ts"]
        profitability = math.tanh(return_unit / settings.profit_scale)
        priority = 1.0 + max(0.0, profitability)
    if resolved.premium:
        priority *= settings.premium_multiplier
    return {
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
        "integrity_hash": "",
    }


class ExperienceEncoder:
    """Encodes Experience records (a generated writer, :mod:`streams.avro.writer`) and seals them."""

    def __init__(self, codec: Codec) -> None:
        schema = codec.registry.for_topic(EXPERIENCES).json
        if schema["fields"][-1]["name"] != "integrity_hash":
            raise ValueError("Experience.integrity_hash must stay the schema's last field")
        self.header = codec.header(EXPERIENCES)
        self.write = compile_writer(schema)

    def encode(self, record: dict[str, Any]) -> bytes:
        """The framed bytes of ``record``; sets ``record["integrity_hash"]`` to their hash."""
        record["integrity_hash"] = ""
        value, record["integrity_hash"] = seal(self.header + self.write(record), len(self.header))
        return value
