"""Experience records: state vector, scores, priority, the sealed hash, ids and the side check."""

from __future__ import annotations

import hashlib
import math
import uuid

import pytest

from agents.experience import (
    CENSORED,
    COMPLETE,
    EXPERIENCE_NAMESPACE,
    SIDE_MISMATCH,
    ExperienceEncoder,
    Resolved,
    checked_return,
    experience_id,
    experience_record,
)
from streams.avro.integrity import verify
from streams.config.agents import AgentSettings
from streams.features import SIZER_SPEC, STREAM_FEATURES
from tests.kit.agents.builders import CODEC, T0, outcome, signal

RESOLVED = Resolved([0.5] * len(STREAM_FEATURES), T0 - 1, False, ())


def test_complete_record_fits_the_schema_and_scores_the_return() -> None:
    record = experience_record(signal("a", T0), outcome("a", T0 + 10), RESOLVED, COMPLETE, 0, AgentSettings())
    value = ExperienceEncoder(CODEC).encode(record)
    assert CODEC.decode("experiences", value) == record
    assert record["event_id"] == experience_id("a", 0) != experience_id("a", 1)
    assert record["state"][-len(STREAM_FEATURES) :] == [0.5] * len(STREAM_FEATURES)
    assert len(record["state"]) == SIZER_SPEC.size and record["feature_spec_version"] == SIZER_SPEC.version
    assert (
        record["profitability"] == math.tanh(0.01 / 0.01)
        and record["priority"] == 1 + record["profitability"]
    )


def test_ids_are_uuid5_of_signal_and_revision() -> None:
    for signal_id in ("a", "sig-Ω-42", "x" * 300):
        for revision in (0, 1):
            assert experience_id(signal_id, revision) == uuid.uuid5(EXPERIENCE_NAMESPACE, f"{signal_id}/{revision}").hex


def test_the_hash_is_sha256_of_the_body_with_the_field_empty_checked_independently() -> None:
    record = experience_record(signal("a", T0), outcome("a", T0 + 10), RESOLVED, COMPLETE, 0, AgentSettings())
    value = ExperienceEncoder(CODEC).encode(record)
    # What a consumer in another language does, from the schema doc: body without its last 66
    # bytes (the 2-byte length and the 64 hex digits), plus the encoding of "" (one zero byte).
    body = value[10:]
    assert body[-66:-64] == b"\x80\x01" and body[-64:].decode() == record["integrity_hash"]
    assert hashlib.sha256(body[:-66] + b"\x00").hexdigest() == record["integrity_hash"]
    assert verify(value)
    tampered = bytearray(value)
    tampered[20] ^= 1
    assert not verify(bytes(tampered))


def test_censored_has_no_reward_and_low_positive_priority_premium_raises_it() -> None:
    plain = experience_record(signal("a", T0), None, RESOLVED, CENSORED, 0, AgentSettings())
    assert plain["return_unit"] is None and plain["pnl"] is None and plain["outcome_ts"] is None
    assert plain["profitability"] == 0.0 and 0 < plain["priority"] < 1
    premium = Resolved(RESOLVED.stream_values, RESOLVED.snapshot_ts, True, ())
    hot = experience_record(
        signal("a", T0), None, premium, CENSORED, 0, AgentSettings(premium_multiplier=2.0)
    )
    assert hot["priority"] == 2 * plain["priority"] and hot["premium"]


def test_missing_snapshot_and_engine_features_lower_completeness_and_are_flagged() -> None:
    empty = Resolved(None, None, False, ("no_snapshot",))
    record = experience_record(signal("a", T0, features={}), None, empty, CENSORED, 0, AgentSettings())
    assert record["completeness"] < 0.2
    assert record["validation_flags"] == ["missing_features", "no_snapshot"]


def _sell_outcome(entry: float, exit_: float, fees: float, as_side: str, notional: float = 1000.0) -> dict:
    """An outcome an engine computed for a SELL signal, but with the return of ``as_side``."""
    direction = 1.0 if as_side == "BUY" else -1.0
    unit = direction * (exit_ / entry - 1.0) - fees / notional
    return {**outcome("s", T0 + 10), "entry_price": entry, "exit_price": exit_, "fees": fees,
            "return_unit": unit, "pnl": unit * notional, "side": None}  # fmt: skip


@pytest.mark.parametrize(("exit_", "fees"), [(99.0, 1.0), (101.0, 0.0), (100.5, 2.0), (90.0, 0.5)])
def test_a_sell_outcome_reported_with_the_buy_sign_is_corrected_and_flagged(exit_: float, fees: float) -> None:
    sell = {**signal("s", T0), "side": "SELL"}
    wrong = _sell_outcome(100.0, exit_, fees, as_side="BUY")
    unit, pnl, corrected = checked_return(sell, wrong)
    right = _sell_outcome(100.0, exit_, fees, as_side="SELL")
    assert corrected and unit == pytest.approx(right["return_unit"]) and pnl == pytest.approx(right["pnl"])
    record = experience_record(sell, wrong, RESOLVED, COMPLETE, 0, AgentSettings())
    assert SIDE_MISMATCH in record["validation_flags"]
    assert math.copysign(1, record["return_unit"]) == math.copysign(1, right["return_unit"])
    # Reported with the right side, nothing changes.
    assert checked_return(sell, right) == (right["return_unit"], right["pnl"], False)


def test_costs_beyond_fees_are_not_mistaken_for_a_flipped_side() -> None:
    buy = signal("b", T0)
    # A 0.1% gain eaten by 0.6% of costs the engine did not report as fees.
    out = {**outcome("b", T0 + 10), "entry_price": 100.0, "exit_price": 100.1, "fees": 0.0,
           "return_unit": -0.005, "pnl": -5.0, "side": "BUY"}  # fmt: skip
    assert checked_return(buy, out) == (-0.005, -5.0, False)


def test_an_outcome_naming_the_other_side_is_recomputed_for_the_signals_side() -> None:
    buy = signal("b", T0)
    out = {**outcome("b", T0 + 10), "entry_price": 100.0, "exit_price": 102.0, "fees": 0.0,
           "return_unit": -0.02, "pnl": -20.0, "side": "SELL"}  # fmt: skip
    unit, pnl, corrected = checked_return(buy, out)
    assert corrected and unit == pytest.approx(0.02) and pnl == pytest.approx(20.0)
