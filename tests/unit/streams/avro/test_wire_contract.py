"""The wire contracts checked against the specifications, not against tradeloop's own encoder.

``spec_reference`` is written from the Avro specification and Kafka's Java client and shares no
code with tradeloop or fastavro; it is itself checked against the published test vectors first.
"""

from __future__ import annotations

import io
import json
import logging

import fastavro
import pytest

from streams.avro.codec import LEGACY_HEADERS, Codec
from streams.avro.schemas import SCHEMA_DIR, SchemaRegistry, strip_logical_types
from streams.avro.single_object import fingerprint64, fingerprint_hex, legacy_header
from streams.errors import SchemaDecodeError
from streams.kafka.partitioning import partition_for
from streams.topics import ALL_TOPICS
from tests.kit import spec_reference as spec
from tests.kit.records import SAMPLES

# Apache Avro's share/test/data/schema-tests.txt: (input, canonical form, fingerprint as a Java long).
AVRO_VECTORS = [
    ('"null"', '"null"', 7195948357588979594),
    ('{"type":"boolean"}', '"boolean"', -6970731678124411036),
    ('"int"', '"int"', 8247732601305521295),
    ('"long"', '"long"', -3434872931120570953),
    ('"string"', '"string"', -8142146995180207161),
    ('[ "int" , {"type":"boolean"} ]', '["int","boolean"]', 5392556393470105090),
    ('{"fields":[], "type":"record", "name":"foo", "namespace":"x.y"}',
     '{"name":"x.y.foo","type":"record","fields":[]}', 5916914534497305771),
    ('{"fields":[], "type":"record", "name":"a.b.foo", "namespace":"x.y"}',
     '{"name":"a.b.foo","type":"record","fields":[]}', -4616218487480524110),
    ('{"fields":[], "type":"record", "name":"foo", "doc":"foo", "aliases":["foo","bar"]}',
     '{"name":"foo","type":"record","fields":[]}', -4824392279771201922),
    ('{"fields":[{"type":"boolean", "aliases":[], "name":"f1", "default":"true"},'
     '{"order":"descending","name":"f2","doc":"Hello","type":"int"}], "type":"record", "name":"foo"}',
     '{"name":"foo","type":"record","fields":[{"name":"f1","type":"boolean"},{"name":"f2","type":"int"}]}',
     -4860222112080293046),
    ('{"namespace":"x.y.z", "type":"enum", "name":"foo", "doc":"foo bar", "symbols":["A1", "A2"]}',
     '{"name":"x.y.z.foo","type":"enum","symbols":["A1","A2"]}', -4448647247586288245),
    ('{"namespace":"x.y.z", "type":"fixed", "name":"foo", "doc":"foo bar", "size":32}',
     '{"name":"x.y.z.foo","type":"fixed","size":32}', -3064184465700546786),
    ('{ "items":{"type":"null"}, "type":"array"}', '{"type":"array","items":"null"}', -589620603366471059),
    ('{ "values":"string", "type":"map"}', '{"type":"map","values":"string"}', -8732877298790414990),
    ('{"name":"PigValue","type":"record","fields":[{"name":"value", "type":["null", "int", "long", "PigValue"]}]}',
     '{"name":"PigValue","type":"record","fields":[{"name":"value","type":["null","int","long","PigValue"]}]}',
     -1759257747318642341),
]  # fmt: skip

# Kafka's UtilsTest.testMurmur2.
KAFKA_MURMUR2 = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}

SCHEMA_FILES = sorted(SCHEMA_DIR.glob("*.avsc"))


def _file_json(name: str) -> dict:
    return json.loads((SCHEMA_DIR / f"{name}.avsc").read_text())


@pytest.mark.parametrize(("text", "canonical", "fingerprint"), AVRO_VECTORS)
def test_the_reference_matches_the_avro_test_vectors(text: str, canonical: str, fingerprint: int) -> None:
    assert spec.canonical_form(json.loads(text)) == canonical
    assert spec.signed64(spec.rabin64(canonical.encode())) == fingerprint


def test_the_int_schema_header_is_the_one_the_spec_gives() -> None:
    assert spec.single_object_header("int").hex(" ") == "c3 01 8f 5c 39 3f 1a d5 75 72"
    assert fingerprint_hex(fingerprint64('"int"')) == "0x7275d51a3f395c8f"


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.stem)
def test_every_schema_has_the_spec_fingerprint_and_header(path) -> None:
    schema = SchemaRegistry.default().get(path.stem)
    file_json = json.loads(path.read_text())
    assert schema.canonical == spec.canonical_form(file_json)
    assert schema.fingerprint == spec.rabin64(spec.canonical_form(file_json).encode())
    assert schema.header == spec.single_object_header(file_json)


@pytest.mark.parametrize("spec_topic", ALL_TOPICS, ids=lambda t: t.name)
def test_independently_encoded_records_decode_in_tradeloop(spec_topic) -> None:
    """fastavro's bare writer + a header built from the reference: what another language writes."""
    file_json = _file_json(spec_topic.schema)
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(strip_logical_types(file_json)), SAMPLES[spec_topic.name])
    data = spec.single_object_header(file_json) + body.getvalue()
    assert Codec().decode(spec_topic.name, data) == SAMPLES[spec_topic.name]


@pytest.mark.parametrize("spec_topic", ALL_TOPICS, ids=lambda t: t.name)
def test_tradeloop_records_decode_with_the_reference_header_and_bare_fastavro(spec_topic) -> None:
    file_json = _file_json(spec_topic.schema)
    data = Codec().encode(spec_topic.name, SAMPLES[spec_topic.name])
    header = spec.single_object_header(file_json)
    assert data[: len(header)] == header
    parsed = fastavro.parse_schema(strip_logical_types(file_json))
    assert fastavro.schemaless_reader(io.BytesIO(data[len(header) :]), parsed, None) == SAMPLES[spec_topic.name]


def test_legacy_big_endian_headers_are_read_counted_and_logged_once(caplog) -> None:
    schema = SchemaRegistry.default().for_topic("trades")
    good = Codec().encode("trades", SAMPLES["trades"])
    legacy = legacy_header(schema.fingerprint) + good[len(schema.header) :]
    assert legacy != good
    before = LEGACY_HEADERS.labels(schema.name)._value.get()
    with caplog.at_level(logging.WARNING, logger="streams.avro.codec"):
        for _ in range(3):
            assert Codec().decode("trades", legacy) == SAMPLES["trades"]
    assert LEGACY_HEADERS.labels(schema.name)._value.get() == before + 3
    assert sum("pre-0.2" in r.message for r in caplog.records) <= 1  # once per schema and process


def test_an_unknown_fingerprint_names_it_as_the_spec_writes_it() -> None:
    data = b"\xc3\x01" + (0x0123456789ABCDEF).to_bytes(8, "little") + b"\x00"
    with pytest.raises(SchemaDecodeError) as err:
        Codec().decode("trades", data)
    assert err.value.reason == "unknown_schema" and "0x0123456789abcdef" in err.value.detail


@pytest.mark.parametrize(("key", "expected"), KAFKA_MURMUR2.items())
def test_the_reference_murmur2_matches_kafkas_vectors(key: bytes, expected: int) -> None:
    assert spec.murmur2(key) == expected


def test_partition_for_agrees_with_the_reference_partitioner() -> None:
    keys = [f"SYM-{i}".encode() for i in range(500)] + list(KAFKA_MURMUR2) + [b"", "€uro".encode()]
    for partitions in (1, 3, 7, 12):
        assert [partition_for(k, partitions) for k in keys] == [spec.kafka_partition(k, partitions) for k in keys]
