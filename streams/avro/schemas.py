"""Local schema files: loading, parsing, fingerprints, and the topic -> schema map.

The ``.avsc`` files under ``schemas/`` are the public contract. This module loads each once,
keeps a parsed copy for fastavro, and indexes it by its CRC-64-AVRO fingerprint (for Avro
single-object framing, :mod:`streams.avro.single_object`) and by name.

Timestamps are ``timestamp-micros`` in the files; tradeloop handles them as plain ``int``
microseconds in memory (the wire bytes are the same, and fingerprints use the Parsing Canonical
Form, which ignores logical types), so decoding never builds ``datetime`` objects on the hot path.

Example:
    >>> reg = SchemaRegistry.default()
    >>> reg.for_topic("trades").name
    'tradeloop.Trade'
    >>> reg.by_fingerprint(reg.get("Trade").fingerprint).name
    'tradeloop.Trade'
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import to_parsing_canonical_form

from streams.avro.single_object import fingerprint64, fingerprint_hex, header, swap64
from streams.errors import SchemaError
from streams.topics import BATCH_SCHEMA_OF_TOPIC, SCHEMA_OF_TOPIC

__all__ = ["SCHEMA_DIR", "LoadedSchema", "SchemaRegistry", "strip_logical_types"]

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"


def strip_logical_types(schema: Any) -> Any:
    """A copy of ``schema`` without ``logicalType`` annotations (same wire format, plain ints)."""
    if isinstance(schema, dict):
        return {k: strip_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [strip_logical_types(v) for v in schema]
    return schema


@dataclass(frozen=True, slots=True)
class LoadedSchema:
    """One schema: its JSON, fastavro's parsed form, and its identities.

    Attributes:
        fingerprint: the CRC-64-AVRO fingerprint of ``canonical`` as the 64-bit value.
        header: the single-object header that frames records of this schema.
    """

    name: str
    json: dict[str, Any]
    parsed: Any
    canonical: str
    fingerprint: int
    header: bytes

    @classmethod
    def from_json(cls, schema: dict[str, Any]) -> LoadedSchema:
        try:
            parsed = fastavro.parse_schema(strip_logical_types(copy.deepcopy(schema)), named_schemas={})
            canonical = to_parsing_canonical_form(schema)
        except Exception as exc:  # fastavro raises several types for invalid schemas
            raise SchemaError(f"invalid schema {schema.get('name')!r}: {exc}") from exc
        fp = fingerprint64(canonical)
        return cls(
            name=f"{schema.get('namespace', '')}.{schema['name']}".lstrip("."),
            json=schema,
            parsed=parsed,
            canonical=canonical,
            fingerprint=fp,
            header=header(fp),
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
        self._by_fingerprint: dict[int, LoadedSchema] = {}
        for schema in schemas:
            self.add_version(schema)

    @classmethod
    def from_dir(cls, directory: Path, history: bool = True) -> SchemaRegistry:
        """Load ``directory/*.avsc``; with ``history``, also index ``history/**`` by fingerprint."""
        current = [LoadedSchema.from_file(p) for p in sorted(directory.glob("*.avsc"))]
        if not current:
            raise SchemaError(f"no .avsc files in {directory}")
        registry = cls(current)
        if history and (directory / "history").is_dir():
            for path in sorted((directory / "history").rglob("*.avsc")):
                registry.add_version(LoadedSchema.from_file(path))
        return registry

    def add_version(self, schema: LoadedSchema) -> None:
        """Index ``schema`` by fingerprint only (an earlier version that writers may still use)."""
        self._by_fingerprint.setdefault(schema.fingerprint, schema)
        clash = self._by_fingerprint.get(swap64(schema.fingerprint))
        if clash is not None and clash.canonical != schema.canonical:
            # Cannot happen in practice (2^-64), but would make a legacy header ambiguous.
            raise SchemaError(
                f"{schema.name} {fingerprint_hex(schema.fingerprint)} is the byte-swapped fingerprint "
                f"of {clash.name}: the pre-0.2 header of one would read as the other"
            )

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

    def batch_for_topic(self, topic: str) -> LoadedSchema | None:
        """The batch value schema of a logical topic (``trades`` -> ``TradeBatch``), if it has one."""
        short = BATCH_SCHEMA_OF_TOPIC.get(topic)
        return None if short is None else self.get(short)

    def by_fingerprint(self, fp: int) -> LoadedSchema | None:
        """The schema (current or earlier version) whose CRC-64-AVRO fingerprint is ``fp``."""
        return self._by_fingerprint.get(fp)

    def by_legacy_fingerprint(self, fp: int) -> LoadedSchema | None:
        """The schema whose fingerprint a pre-0.2 (big-endian) header, read little-endian, gives as ``fp``."""
        return self._by_fingerprint.get(swap64(fp))

    def versions(self) -> list[LoadedSchema]:
        """Every indexed schema, current and earlier versions, by name then fingerprint."""
        return sorted(self._by_fingerprint.values(), key=lambda s: (s.name, s.fingerprint))

    def names(self) -> list[str]:
        return sorted(self._by_short)
