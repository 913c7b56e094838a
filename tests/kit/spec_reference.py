"""Independent implementations of the wire contracts, written from the specifications.

Nothing here imports tradeloop or fastavro: these are what an engine in another language would
write from the Avro specification and Kafka's Java client, so the contract tests compare
tradeloop's bytes against them rather than against tradeloop's own encoder.

* Parsing Canonical Form and the CRC-64-AVRO (Rabin) fingerprint: Avro specification, "Parsing
  Canonical Form for Schemas" and "Schema Fingerprints".
* Single-object encoding: ``C3 01`` + the fingerprint's 8 bytes little-endian + the body.
* murmur2: Kafka's ``org.apache.kafka.common.utils.Utils.murmur2`` and the default partitioner's
  ``toPositive(murmur2(key)) % partitions``.
"""

from __future__ import annotations

import json
from typing import Any

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
NAMED = frozenset({"record", "error", "enum", "fixed"})
EMPTY_64 = 0xC15D213AA4D7A795
MASK_64 = (1 << 64) - 1


def _string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # [STRINGS]: no escapes but the JSON-required ones


def _fullname(name: str, namespace: str | None) -> str:
    if "." in name or not namespace:
        return name
    return f"{namespace}.{name}"


def canonical_form(schema: Any, namespace: str | None = None, seen: set[str] | None = None) -> str:
    """The Parsing Canonical Form of a parsed-JSON schema (PRIMITIVES, FULLNAMES, STRIP, ORDER, ...)."""
    seen = set() if seen is None else seen
    if isinstance(schema, str):
        return _string(schema if schema in PRIMITIVES else _fullname(schema, namespace))
    if isinstance(schema, list):
        return "[" + ",".join(canonical_form(s, namespace, seen) for s in schema) + "]"
    kind = schema["type"]
    if not isinstance(kind, str):
        return canonical_form(kind, namespace, seen)
    if kind in PRIMITIVES:
        return _string(kind)  # logicalType and every other attribute are stripped
    if kind in NAMED:
        name = _fullname(schema["name"], schema.get("namespace", namespace))
        if name in seen:
            return _string(name)
        seen.add(name)
        inner = name.rpartition(".")[0] or None
        head = f'{{"name":{_string(name)},"type":{_string(kind)}'
        if kind in ("record", "error"):
            fields = ",".join(
                f'{{"name":{_string(f["name"])},"type":{canonical_form(f["type"], inner, seen)}}}'
                for f in schema["fields"]
            )
            return f"{head},\"fields\":[{fields}]}}"
        if kind == "enum":
            return f'{head},"symbols":[{",".join(_string(s) for s in schema["symbols"])}]}}'
        return f'{head},"size":{int(schema["size"])}}}'
    if kind == "array":
        return f'{{"type":"array","items":{canonical_form(schema["items"], namespace, seen)}}}'
    if kind == "map":
        return f'{{"type":"map","values":{canonical_form(schema["values"], namespace, seen)}}}'
    return _string(_fullname(kind, namespace))  # {"type": "SomeNamedType"}


def _rabin_table() -> list[int]:
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (EMPTY_64 & -(fp & 1))
        table.append(fp & MASK_64)
    return table


_TABLE = _rabin_table()


def rabin64(data: bytes) -> int:
    """The CRC-64-AVRO fingerprint of ``data`` as the unsigned 64-bit value."""
    fp = EMPTY_64
    for byte in data:
        fp = (fp >> 8) ^ _TABLE[(fp ^ byte) & 0xFF]
    return fp


def signed64(value: int) -> int:
    """The value as Java's ``long`` (how the Avro test data writes fingerprints)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def single_object_header(schema: Any) -> bytes:
    """``C3 01`` + the fingerprint of the schema's canonical form, little-endian."""
    fp = rabin64(canonical_form(schema).encode())
    return b"\xc3\x01" + fp.to_bytes(8, "little")


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (seed 0x9747b28c) as the Java client returns it: a signed 32-bit int."""
    m, r, mask = 0x5BD1E995, 24, 0xFFFFFFFF
    length = len(data)
    h = (0x9747B28C ^ length) & mask
    for i in range(length // 4):
        k = int.from_bytes(data[4 * i : 4 * i + 4], "little")
        k = (k * m) & mask
        k ^= k >> r
        k = (k * m) & mask
        h = ((h * m) & mask) ^ k
    tail = length & ~3
    rest = length % 4
    if rest == 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h - (1 << 32) if h >= 1 << 31 else h


def kafka_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a non-null ``key``."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions
