"""Avro single-object encoding: the one place that writes and parses its header.

The Avro specification ("Single-object encoding") frames a datum as ``C3 01``, then the 8-byte
CRC-64-AVRO fingerprint of the writer schema's Parsing Canonical Form **little-endian**, then the
Avro binary body. The specification writes a fingerprint as the 64-bit value (Java's
``SchemaNormalization.parsingFingerprint64`` returns it as a ``long``), so that is how tradeloop
holds and prints it: an ``int``, shown as ``0x`` and 16 hex digits.

Before 0.2 tradeloop wrote the fingerprint big-endian. :func:`parse_header` still recognises that
layout (``legacy=True``) so records already on topics are read; docs/wire-format.md says until when.

Example:
    >>> fp = fingerprint64('"int"')
    >>> fingerprint_hex(fp)
    '0x7275d51a3f395c8f'
    >>> header(fp).hex(" ")
    'c3 01 8f 5c 39 3f 1a d5 75 72'
    >>> parse_header(header(fp) + b"body") == fp
    True
"""

from __future__ import annotations

from typing import Final

from fastavro.schema import fingerprint

__all__ = [
    "HEADER_SIZE",
    "MAGIC",
    "fingerprint64",
    "fingerprint_hex",
    "header",
    "legacy_header",
    "parse_header",
    "swap64",
]

MAGIC: Final = b"\xc3\x01"
HEADER_SIZE: Final = 10


def fingerprint64(canonical: str) -> int:
    """The CRC-64-AVRO (Rabin) fingerprint of a Parsing Canonical Form, as the 64-bit value."""
    # fastavro returns the value's little-endian bytes as hex (its _schema_common.rabin_fingerprint).
    return int.from_bytes(bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO")), "little")


def fingerprint_hex(fp: int) -> str:
    """The fingerprint as the specification writes it: the 64-bit value in hex."""
    return f"0x{fp:016x}"


def swap64(fp: int) -> int:
    """The value whose little-endian bytes are ``fp``'s big-endian ones (the pre-0.2 layout)."""
    return int.from_bytes(fp.to_bytes(8, "little"), "big")


def header(fp: int) -> bytes:
    """The single-object header of a schema with fingerprint ``fp``."""
    return MAGIC + fp.to_bytes(8, "little")


def legacy_header(fp: int) -> bytes:
    """The big-endian header tradeloop wrote before 0.2 (kept for tests of the legacy read path)."""
    return MAGIC + fp.to_bytes(8, "big")


def parse_header(data: bytes) -> int | None:
    """The fingerprint in ``data``'s single-object header, read little-endian.

    Returns None when ``data`` does not start with the magic or is shorter than the header; a
    reader that does not know the value may try :func:`swap64` of it (a pre-0.2 header).
    """
    if len(data) < HEADER_SIZE or data[:2] != MAGIC:
        return None
    return int.from_bytes(data[2:HEADER_SIZE], "little")
