"""Experience records: state vector, scores, priority, hash, and deterministic ids."""

from __future__ import annotations

import math

from agents.experience import CENSORED, COMPLETE, Resolved, experience_id, experience_record, integrity_hash
from streams.config.agents import AgentSettings
from streams.features import SIZER_SPEC, STREAM_FEATURES
from tests.unit.agents.builders import CODEC, T0, outcome, signal

RESOLVED = Resolved([0.5] * len(STREAM_FEATURES), T0 - 1, False, ())


def test_complete_record_fits_the_schema_and_scores_the_return() -> None:
    record = experience_record(signal("a", T0), outcome("a", T0 + 10), RESOLVED, COMPLETE, 0, AgentSettings())
    assert CODEC.decode("experiences", CODEC.encode("experiences", record)) == record
    assert record["event_id"] == experience_id("a", 0) != experience_id("a", 1)
    assert record["state"][-len(STREAM_FEATURES) :] == [0.5] * len(STREAM_FEATURES)
    assert len(record["state"]) == SIZER_SPEC.size and record["feature_spec_version"] == SIZER_SPEC.version
    assert (
        record["profitability"] == math.tanh(0.01 / 0.01)
        and record["priority"] == 1 + record["profitability"]
    )
    assert record["integrity_hash"] == integrity_hash(record)


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


def test_hash_changes_when_any_field_changes() -> None:
    record = experience_record(signal("a", T0), outcome("a", T0 + 10), RESOLVED, COMPLETE, 0, AgentSettings())
    tampered = {**record, "return_unit": 0.5}
    assert integrity_hash(tampered) != record["integrity_hash"]
