"""``tradeloop schemas list``: the Avro contracts with their fingerprints and wire headers."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from streams.avro.schemas import SchemaRegistry
from streams.avro.single_object import fingerprint_hex
from streams.topics import ALL_TOPICS

__all__ = ["register", "schema_rows"]

schemas_app = typer.Typer(help="The Avro schemas (the public contract) and their wire headers.",
                          no_args_is_help=True)  # fmt: skip

FINGERPRINT_NOTE = (
    "fingerprint: CRC-64-AVRO of the schema's Parsing Canonical Form, the 64-bit value in hex as the Avro "
    "specification writes it; header: the single-object header, C3 01 + that value little-endian"
)


def schema_rows(registry: SchemaRegistry | None = None) -> list[dict[str, Any]]:
    """One row per schema version (current and history): name, topics, fingerprint, header.

    Example:
        >>> row = next(r for r in schema_rows() if r["name"] == "tradeloop.Trade" and r["current"])
        >>> row["topics"], row["header"][:5]
        (['trades'], 'c3 01')
    """
    registry = registry or SchemaRegistry.default()
    rows = []
    for schema in registry.versions():
        short = schema.json["name"]
        current = registry.get(short).fingerprint == schema.fingerprint
        rows.append({
            "name": schema.name, "current": current,
            "topics": [t.name for t in ALL_TOPICS if t.schema == short] if current else [],
            "fingerprint": fingerprint_hex(schema.fingerprint), "header": schema.header.hex(" "),
        })  # fmt: skip
    return rows


@schemas_app.command("list")
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    history: Annotated[bool, typer.Option(help="Include earlier versions from schemas/history.")] = False,
) -> None:
    """Every schema with its topics, CRC-64-AVRO fingerprint and single-object header."""
    rows = [r for r in schema_rows() if history or r["current"]]
    if as_json:
        typer.echo(json.dumps({"note": FINGERPRINT_NOTE, "schemas": rows}, indent=2))
        return
    table = Table("schema", "topics", "fingerprint", "header (wire bytes)", caption=FINGERPRINT_NOTE)
    for row in rows:
        name = row["name"] if row["current"] else f"{row['name']} (earlier)"
        table.add_row(name, ", ".join(row["topics"]), row["fingerprint"], row["header"])
    Console(width=max(120, Console().width)).print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(schemas_app, name="schemas")
