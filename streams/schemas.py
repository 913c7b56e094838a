"""Local schema files: loading, parsing, fingerprints, and the topic -> schema map.

The ``.avsc`` files under ``schemas/`` are the public contract. This module loads each once,
keeps a parsed copy for fastavro, and indexes it by its CRC-64-AVRO fingerprint (for Avro
single-object framing) and by name.

Timestamps are ``timestamp-micros`` in the files; tradeloop handles them as plain ``int``
microseconds in memory (the wire bytes are the same, and fingerprints use the Parsing Canonical
Form, which ignores logical types), so decoding never builds ``datetime`` objects on the hot path.

Example:
    >>> reg = SchemaRegistry.default()
    >>> reg.for_topic("trades").name
    'tradeloop.Trade'
    >>> len(reg.for_topic("trades").fingerprint)
    8
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

from streams.errors import SchemaError
from streams.topics import SCHEMA_OF_TOPIC

__all__ = ["SCHEMA_DIR", "LoadedSchema", "SchemaRegistry", "strip_logical_types"]

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"


def strip_logical_types(schema: Any) -> Any:
    """A copy of ``schema`` without ``logicalType`` annotations (same wire format, plain ints)."""
    if isinstance(schema, dict):
        return {k: strip_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [strip_logical_types(v) for v in schema]
    return schema


@dataclass(frozen=True, slots=True)
class LoadedSchema:
    """One schema: its JSON, fastavro's parsed form, and its identities."""

    name: str
    json: dict[str, Any]
    parsed: Any
    canonical: str
    fingerprint: bytes

    @classmethod
    def from_json(cls, schema: dict[str, Any]) -> LoadedSchema:
        try:
            parsed = fastavro.parse_schema(strip_logical_types(copy.deepcopy(schema)), named_schemas={})
            canonical = to_parsing_canonical_form(schema)
        except Exception as exc:  # fastavro raises several types for invalid schemas
            raise SchemaError(f"invalid schema {schema.get('name')!r}: {exc}") from exc
        fp = bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))
        # Single-object encoding stores the fingerprint little-endian; fastavro prints it big-endian.
        return cls(
            name=f"{schema.get('namespace', '')}.{schema['name']}".lstrip("."),
            json=schema,
            parsed=parsed,
            canonical=canonical,
            fingerprint=fp[::-1],
        )

    @classmethod
    def from_file(cls, path: Path) -> LoadedSchema:
        try:
            schema = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise SchemaError(f"cannot load schema file {path}: {exc}") from exc
        return cls.from_json(schema)


class SchemaRegistry:
    """The local schemas by short name (``Trade``), full name, fingerprint and topic."""

    def __init__(self, schemas: list[LoadedSchema]) -> None:
        self._by_short = {s.json["name"]: s for s in schemas}
        self._by_fingerprint = {s.fingerprint: s for s in schemas}

    @classmethod
    def from_dir(cls, directory: Path, history: bool = True) -> SchemaRegistry:
        """Load ``directory/*.avsc``; with ``history``, also index ``history/**`` by fingerprint."""
        current = [LoadedSchema.from_file(p) for p in sorted(directory.glob("*.avsc"))]
        if not current:
            raise SchemaError(f"no .avsc files in {directory}")
        registry = cls(current)
        if history and (directory / "history").is_dir():
            for path in sorted((directory / "history").rglob("*.avsc")):
                old = LoadedSchema.from_file(path)
                registry._by_fingerprint.setdefault(old.fingerprint, old)
        return registry

    @staticmethod
    @cache
    def default() -> SchemaRegistry:
        """The registry of the project's own ``schemas/`` directory, loaded once per process."""
        return SchemaRegistry.from_dir(SCHEMA_DIR)

    def get(self, short_name: str) -> LoadedSchema:
        try:
            return self._by_short[short_name]
        except KeyError:
            raise SchemaError(f"no schema named {short_name!r}") from None

    def for_topic(self, topic: str) -> LoadedSchema:
        """The value schema of a logical topic (``trades``) or of a schema name (``Trade``)."""
        short = SCHEMA_OF_TOPIC.get(topic, topic)
        return self.get(short)

    def by_fingerprint(self, fp: bytes) -> LoadedSchema | None:
        return self._by_fingerprint.get(fp)

    def names(self) -> list[str]:
        return sorted(self._by_short)
