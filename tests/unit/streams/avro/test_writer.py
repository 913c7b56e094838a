"""The generated Avro writer writes exactly fastavro's bytes, and refuses what it cannot write."""

from __future__ import annotations

import io

import fastavro
import pytest
from fastavro.utils import generate_many

from streams.avro.schemas import SchemaRegistry, strip_logical_types
from streams.avro.writer import UnsupportedSchema, compile_writer
from streams.errors import SchemaEncodeError

REGISTRY = SchemaRegistry.default()
SUPPORTED = []
for name in REGISTRY.names():
    try:
        compile_writer(REGISTRY.get(name).json)
        SUPPORTED.append(name)
    except UnsupportedSchema:
        pass


def test_the_hot_records_are_supported() -> None:
    assert {"Experience", "Trade", "Signal", "Outcome", "TradeBatch", "SignalBatch"} <= set(SUPPORTED)


@pytest.mark.parametrize("name", SUPPORTED)
def test_bytes_equal_fastavros_on_generated_records(name: str) -> None:
    schema = REGISTRY.get(name)
    write = compile_writer(schema.json)
    parsed = fastavro.parse_schema(strip_logical_types(schema.json))
    for record in generate_many(parsed, 300):
        expected = io.BytesIO()
        fastavro.schemaless_writer(expected, parsed, record)
        assert write(record) == expected.getvalue()


def test_a_record_that_does_not_fit_is_a_schema_encode_error() -> None:
    write = compile_writer(REGISTRY.get("Trade").json)
    good = {"event_id": "e", "ts": 1, "symbol": "X", "price": 1.0, "size": 1.0, "side": "BUY"}
    for bad in ({**good, "ts": "1"}, {**good, "side": "LONG"}, {k: v for k, v in good.items() if k != "price"}):
        with pytest.raises(SchemaEncodeError):
            write(bad)


def test_unions_of_two_non_null_types_fall_back() -> None:
    schema = {"type": "record", "name": "R", "fields": [{"name": "a", "type": ["int", "string"]}]}
    with pytest.raises(UnsupportedSchema):
        compile_writer(schema)
