"""`tradeloop schemas list` prints fingerprints as the Avro specification writes them."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from streams.avro.schemas import SCHEMA_DIR
from tests.kit import spec_reference as spec
from tradeloop.cli import app


def test_schemas_list_json_gives_the_spec_fingerprint_and_header_of_every_schema() -> None:
    result = CliRunner().invoke(app, ["schemas", "list", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    rows = {row["name"].rsplit(".", 1)[1]: row for row in doc["schemas"]}
    assert set(rows) == {p.stem for p in SCHEMA_DIR.glob("*.avsc")}
    for name, row in rows.items():
        schema = json.loads((SCHEMA_DIR / f"{name}.avsc").read_text())
        fp = spec.rabin64(spec.canonical_form(schema).encode())
        assert row["fingerprint"] == f"0x{fp:016x}"
        assert bytes.fromhex(row["header"]) == spec.single_object_header(schema)
    assert "64-bit value in hex" in doc["note"]


def test_schemas_list_table_mentions_how_the_fingerprint_is_written() -> None:
    result = CliRunner().invoke(app, ["schemas", "list"])
    assert result.exit_code == 0 and "0x" in result.output and "little-endian" in result.output
