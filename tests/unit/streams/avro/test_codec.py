"""Codec: round trips, both framings, and one typed error for every kind of bad bytes."""

from __future__ import annotations

import io
import struct

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.avro.codec import CONFLUENT_MAGIC, SINGLE_OBJECT_MAGIC, Codec
from streams.avro.schemas import SchemaRegistry
from streams.errors import SchemaDecodeError, SchemaEncodeError
from streams.topics import ALL_TOPICS
from tests.kit.records import SAMPLES

TRADE = SAMPLES["trades"]


def test_every_topic_has_a_sample_and_round_trips() -> None:
    codec = Codec()
    assert {spec.name for spec in ALL_TOPICS} == set(SAMPLES)
    for topic, record in SAMPLES.items():
        assert codec.decode(topic, codec.encode(topic, record)) == record


def test_single_object_header_is_the_avro_spec_one() -> None:
    data = Codec().encode("trades", TRADE)
    schema = SchemaRegistry.default().for_topic("trades")
    assert data[:2] == SINGLE_OBJECT_MAGIC
    assert data[2:10] == schema.fingerprint.to_bytes(8, "little")
    # The body is plain Avro binary: bare fastavro reads it.
    body = fastavro.schemaless_reader(io.BytesIO(data[10:]), schema.parsed, None)
    assert body == TRADE


def test_fingerprint_bytes_are_fastavros_which_are_little_endian() -> None:
    from fastavro.schema import fingerprint, to_parsing_canonical_form

    schema = SchemaRegistry.default().for_topic("trades")
    expected = bytes.fromhex(fingerprint(to_parsing_canonical_form(schema.json), "CRC-64-AVRO"))
    assert schema.header[2:] == expected


class _FakeRegistryClient:
    """Stands in for the Schema Registry *HTTP server* (not Kafka): ids by subject."""

    def __init__(self) -> None:
        self.subjects: dict[str, int] = {}
        self.by_id: dict[int, dict] = {}

    def register(self, subject: str, schema: dict) -> int:
        schema_id = self.subjects.setdefault(subject, 100 + len(self.subjects))
        self.by_id[schema_id] = schema
        return schema_id

    def schema(self, schema_id: int) -> dict:
        return self.by_id[schema_id]


def test_confluent_framing_round_trip_and_plain_reader_accepts_it() -> None:
    client = _FakeRegistryClient()
    confluent = Codec(confluent=client)  # type: ignore[arg-type]
    data = confluent.encode("trades", TRADE)
    assert data[:1] == CONFLUENT_MAGIC
    (schema_id,) = struct.unpack(">I", data[1:5])
    assert client.subjects == {"tradeloop.trades-value": schema_id}
    assert confluent.decode("trades", data) == TRADE
    # A reader in single-object mode still accepts single-object bytes, and vice versa.
    plain = Codec()
    assert confluent.decode("trades", plain.encode("trades", TRADE)) == TRADE


def test_confluent_bytes_without_a_registry_are_unknown_schema() -> None:
    data = CONFLUENT_MAGIC + struct.pack(">I", 7) + b"\x00"
    with pytest.raises(SchemaDecodeError) as info:
        Codec().decode("trades", data)
    assert info.value.reason == "unknown_schema"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"\xc3", "bad_magic"),
        (b"\xc3\x01\x00\x01", "truncated"),
        (b"\xc3\x01" + b"\xff" * 8 + b"\x00", "unknown_schema"),
        (b'{"json": true}', "bad_magic"),
        (b"\x00\x00\x00", "truncated"),
    ],
)
def test_bad_bytes_raise_one_typed_error_with_reason(data: bytes, reason: str) -> None:
    with pytest.raises(SchemaDecodeError) as info:
        Codec().decode("trades", data)
    assert info.value.reason == reason
    assert info.value.topic == "trades"
    assert info.value.raw == data
    assert "trades" in str(info.value)


def test_truncated_body_and_trailing_bytes() -> None:
    codec = Codec()
    data = codec.encode("trades", TRADE)
    with pytest.raises(SchemaDecodeError) as info:
        codec.decode("trades", data[:-5])
    assert info.value.reason == "truncated"
    with pytest.raises(SchemaDecodeError) as info:
        codec.decode("trades", data + b"\x00")
    assert info.value.reason == "trailing_bytes"


def test_record_for_another_topic_is_rejected_or_unknown() -> None:
    codec = Codec()
    data = codec.encode("signals", SAMPLES["signals"])
    # A Signal's fingerprint is known, but reading it as a Trade cannot resolve.
    with pytest.raises(SchemaDecodeError):
        codec.decode("trades", data)


def test_encode_errors_name_the_topic() -> None:
    with pytest.raises(SchemaEncodeError, match="trades"):
        Codec().encode("trades", {**TRADE, "price": "not a number"})
    missing = dict(TRADE)
    del missing["symbol"]
    with pytest.raises(SchemaEncodeError):
        Codec().encode("trades", missing)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_fuzzed_bytes_never_escape_the_typed_error(data: bytes) -> None:
    codec = Codec()
    prefix = SchemaRegistry.default().for_topic("trades").header
    for candidate in (data, prefix + data):
        try:
            record = codec.decode("trades", candidate)
        except SchemaDecodeError as exc:
            assert exc.raw == candidate
        else:
            assert set(record) == set(TRADE)
