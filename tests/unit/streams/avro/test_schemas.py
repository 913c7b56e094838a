"""The public contract: every schema is documented, event-timed, and backward compatible."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streams.avro.compat import backward_problems
from streams.avro.schemas import SCHEMA_DIR, SchemaRegistry
from streams.topics import ALL_TOPICS, BATCH_SCHEMA_OF_TOPIC

CURRENT = sorted(SCHEMA_DIR.glob("*.avsc"))
BATCHES = set(BATCH_SCHEMA_OF_TOPIC.values())


def _fields(schema: dict) -> list[dict]:
    return schema["fields"]


@pytest.mark.parametrize("path", CURRENT, ids=lambda p: p.stem)
def test_every_field_has_a_doc_and_events_have_id_and_time(path: Path) -> None:
    schema = json.loads(path.read_text())
    assert schema.get("doc"), f"{path.name} has no doc"
    fields = _fields(schema)
    assert all(f.get("doc") for f in fields), [f["name"] for f in fields if not f.get("doc")]
    names = [f["name"] for f in fields]
    assert names[:2] == ["event_id", "ts"]
    ts = fields[1]["type"]["items"] if path.stem in BATCHES else fields[1]["type"]
    assert ts == {"type": "long", "logicalType": "timestamp-micros"}


@pytest.mark.parametrize(("topic", "batch"), BATCH_SCHEMA_OF_TOPIC.items())
def test_every_batch_schema_is_one_array_per_field_of_its_single_schema(topic: str, batch: str) -> None:
    registry = SchemaRegistry.default()
    single, columns = registry.for_topic(topic).json, registry.get(batch).json
    assert [f["name"] for f in columns["fields"]] == [f["name"] for f in single["fields"]]
    for field, column in zip(single["fields"], columns["fields"], strict=True):
        assert column["type"] == {"type": "array", "items": field["type"]}, field["name"]


def test_every_topic_has_a_schema_file() -> None:
    registry = SchemaRegistry.default()
    for spec in ALL_TOPICS:
        assert registry.for_topic(spec.name).json["name"] == spec.schema


@pytest.mark.parametrize("path", CURRENT, ids=lambda p: p.stem)
def test_schema_reads_every_earlier_version(path: Path) -> None:
    history = sorted((SCHEMA_DIR / "history" / path.stem).glob("v*.avsc"))
    assert history, f"no history for {path.stem}: copy the published version to schemas/history/{path.stem}/"
    new = json.loads(path.read_text())
    for old_path in history:
        assert backward_problems(new, json.loads(old_path.read_text())) == [], old_path


def test_checker_rejects_a_new_field_without_default() -> None:
    old = json.loads((SCHEMA_DIR / "Trade.avsc").read_text())
    new = json.loads(json.dumps(old))
    new["fields"].append({"name": "venue", "type": "string", "doc": "d"})
    assert backward_problems(new, old)
    new["fields"][-1]["default"] = "X"
    assert backward_problems(new, old) == []


def test_checker_rejects_a_type_change_by_resolution() -> None:
    old = json.loads((SCHEMA_DIR / "Trade.avsc").read_text())
    new = json.loads(json.dumps(old))
    for field in new["fields"]:
        if field["name"] == "symbol":
            field["type"] = "int"
    assert backward_problems(new, old)


def test_codec_reads_old_writer_version(tmp_path: Path) -> None:
    """A record written with an older schema (in history) decodes with the current one."""
    from streams.avro.codec import Codec
    from streams.avro.schemas import LoadedSchema

    old = json.loads((SCHEMA_DIR / "Trade.avsc").read_text())
    old["fields"] = [f for f in old["fields"] if f["name"] != "side"]
    current = json.loads((SCHEMA_DIR / "Trade.avsc").read_text())
    for field in current["fields"]:
        if field["name"] == "side":
            field["default"] = "BUY"
    registry = SchemaRegistry([LoadedSchema.from_json(current)])
    registry.add_version(LoadedSchema.from_json(old))
    old_codec = Codec(SchemaRegistry([LoadedSchema.from_json(old)]))
    data = old_codec.encode("trades", {"event_id": "e", "ts": 1, "symbol": "X", "price": 1.0, "size": 1.0})
    assert Codec(registry).decode("trades", data)["side"] == "BUY"
