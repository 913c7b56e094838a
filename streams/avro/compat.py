"""Backward-compatibility check of a schema against its earlier versions.

"Backward" as the Schema Registry defines it: a consumer using the *new* schema can read data
written with the *old* one. Checked two ways: structurally (every new field the old schema lacks
needs a default; enums may only gain symbols when they have a default) and by resolution (records
generated from the old schema, written with it, read with the new one).

Example:
    >>> old = {"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"}]}
    >>> new = {"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"},
    ...                                                  {"name": "b", "type": "string"}]}
    >>> backward_problems(new, old)
    ["field 'R.b' is new and has no default"]
"""

from __future__ import annotations

import copy
import io
from typing import Any

import fastavro
from fastavro.utils import generate_many

from streams.avro.schemas import strip_logical_types

__all__ = ["backward_problems"]


def _structural(new: Any, old: Any, path: str, problems: list[str]) -> None:
    if isinstance(new, dict) and isinstance(old, dict) and new.get("type") == old.get("type") == "record":
        old_fields = {f["name"]: f for f in old["fields"]}
        for field in new["fields"]:
            where = f"{path}{new['name']}.{field['name']}"
            if field["name"] not in old_fields:
                if "default" not in field:
                    problems.append(f"field {where!r} is new and has no default")
                continue
            _structural(field["type"], old_fields[field["name"]]["type"], f"{path}{new['name']}.", problems)
    elif isinstance(new, dict) and isinstance(old, dict) and new.get("type") == old.get("type") == "enum":
        missing = set(old["symbols"]) - set(new["symbols"])
        if missing and "default" not in new:
            problems.append(f"enum {new['name']!r} dropped {sorted(missing)} without a default")


def backward_problems(new: dict[str, Any], old: dict[str, Any], samples: int = 50) -> list[str]:
    """Reasons ``new`` cannot read data written with ``old``; empty when compatible."""
    problems: list[str] = []
    _structural(new, old, "", problems)
    if problems:
        return problems
    writer = fastavro.parse_schema(strip_logical_types(copy.deepcopy(old)), named_schemas={})
    reader = fastavro.parse_schema(strip_logical_types(copy.deepcopy(new)), named_schemas={})
    for record in generate_many(writer, samples):
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, writer, record)
        buffer.seek(0)
        try:
            fastavro.schemaless_reader(buffer, writer, reader)
        except Exception as exc:  # any resolution failure is the answer we are looking for
            return [f"cannot read old data with the new schema: {type(exc).__name__}: {exc}"]
    return []
