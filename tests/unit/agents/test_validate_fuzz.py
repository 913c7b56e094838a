"""Fuzzed input through the validator: every message is a record or a dead letter, never a crash."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.deadletter import DeadLetter
from agents.validate import Inbound, Validator
from streams.schemas import SchemaRegistry
from tests.unit.agents.builders import CODEC, T0, signal, trade

NOW = T0 + 10**10
TOPICS = ("trades", "signals", "outcomes")
REGISTRY = SchemaRegistry.default()


def _frame(topic: str, body: bytes) -> bytes:
    return REGISTRY.for_topic(topic).header + body


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(topic=st.sampled_from(TOPICS), body=st.binary(max_size=300), framed=st.booleans())
def test_fuzzed_bytes_end_as_a_record_or_a_dead_letter_with_a_reason(
    topic: str, body: bytes, framed: bool
) -> None:
    value = _frame(topic, body) if framed else body
    result = Validator(CODEC, 300).check(Inbound(topic, f"t.{topic}", 0, 7, b"k", value), NOW)
    if isinstance(result, DeadLetter):
        assert result.reason and result.raw == value and result.offset == 7
    else:
        assert isinstance(result, dict)


@settings(max_examples=20, deadline=None)
@given(size=st.integers(min_value=10_000, max_value=2_000_000))
def test_huge_strings_are_handled_not_fatal(size: int) -> None:
    huge = "X" * size
    record = trade("huge", T0)
    record["symbol"] = huge
    value = CODEC.encode("trades", record)
    result = Validator(CODEC, 300).check(Inbound("trades", "t.trades", 0, 1, b"BTC", value), NOW)
    # The key no longer matches the symbol: a dead letter with a reason, the bytes kept whole.
    assert (
        isinstance(result, DeadLetter) and result.reason == "key_mismatch" and len(result.raw) == len(value)
    )
    sig = signal("s-huge", T0, features={huge[:100_000]: 1.0})
    assert (
        Validator(CODEC, 300).check(
            Inbound("signals", "t.signals", 0, 2, b"s-huge", CODEC.encode("signals", sig)), NOW
        )
        is not None
    )
