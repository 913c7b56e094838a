"""Fuzzed input through the validator: every message is a record or a dead letter, never a crash."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.validate import Inbound, Validator
from streams.avro.batches import to_columns
from streams.avro.schemas import SchemaRegistry
from streams.deadletter import DeadLetter
from tests.kit.agents.builders import CODEC, T0, outcome, signal, trade

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


_NUMBER = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, -0.0, 1.0, -1.0, 1.5, 1e300])
)


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(
        st.fixed_dictionaries({
            "price": _NUMBER, "score": _NUMBER, "horizon_seconds": _NUMBER, "action": _NUMBER,
            "ts": st.sampled_from([-5, 0, 1, T0, NOW + 10**12]), "symbol": st.sampled_from(["", "BTC"]),
            "feature": _NUMBER, "entry_price": _NUMBER, "fees": _NUMBER, "return_unit": _NUMBER,
        }),
        min_size=1,
        max_size=8,
    ),
    topic=st.sampled_from(["signals", "outcomes"]),
)
def test_rows_the_column_checks_pass_are_rows_the_record_checks_pass(rows: list, topic: str) -> None:
    records = []
    for i, r in enumerate(rows):
        base = signal(f"s{i}", r["ts"]) if topic == "signals" else outcome(f"s{i}", r["ts"])
        fields = ("price", "score", "horizon_seconds", "action") if topic == "signals" else (
            "entry_price", "fees", "return_unit")  # fmt: skip
        record = {**base, **{k: r[k] for k in fields}, "symbol": r["symbol"]}
        if topic == "signals":
            record["features"] = {"eng_zscore": r["feature"]}
        records.append(record)
    validator = Validator(CODEC, 300)
    flagged = validator.suspects(topic, to_columns(topic, records), NOW)
    for record, suspect in zip(records, flagged, strict=True):
        if not suspect:
            assert validator.problem(topic, record, None, NOW, check_key=False) is None
