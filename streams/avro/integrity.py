"""The integrity hash of Experience records, computed on their Avro bytes.

``integrity_hash`` is the last field of ``Experience``. Its value is the sha256 hex digest of the
record's Avro binary body (the bytes after the framing header) **with the field set to the empty
string**. Because the field is last, the empty string is the body's final byte (``00``), and the
sealed record is that body with its last byte replaced by the Avro encoding of the 64-character
digest (``80 01`` + 64 ASCII hex digits). So a consumer in any language checks a record without
re-encoding it: take the body, drop its last 66 bytes, append ``00``, hash, compare.

Hashing the bytes the record is encoded in anyway costs about a microsecond; the JSON form used
before 0.2 cost tens (float formatting). A record written with another schema version is checked
on the bytes as written.

Example:
    >>> framed = b"\\xc3\\x01" + bytes(8) + b"\\x02ab" + b"\\x00"  # header, one field "ab", empty hash
    >>> sealed, digest = seal(framed, header_size=10)
    >>> len(digest), verify(sealed), verify(sealed[:-1] + b"0")
    (64, True, False)
"""

from __future__ import annotations

import hashlib
from typing import Final

from streams.avro.single_object import HEADER_SIZE, MAGIC

__all__ = ["seal", "verify"]

_EMPTY: Final = b"\x00"  # Avro: the empty string
_LENGTH_64: Final = b"\x80\x01"  # Avro: the length (zigzag varint) of a 64-character string
_SEALED_TAIL: Final = len(_LENGTH_64) + 64
_CONFLUENT_HEADER: Final = 5


def seal(framed: bytes, header_size: int) -> tuple[bytes, str]:
    """The record with its hash filled in, and the hash.

    Args:
        framed: the encoded record (header + body) with ``integrity_hash`` set to ``""``.
        header_size: bytes of framing before the Avro body.

    Raises:
        ValueError: the body does not end with an empty string (the field is not last, or not empty).
    """
    if not framed.endswith(_EMPTY):
        raise ValueError("integrity_hash must be the last field and encoded empty before sealing")
    digest = hashlib.sha256(memoryview(framed)[header_size:]).hexdigest()
    return framed[:-1] + _LENGTH_64 + digest.encode(), digest


def verify(framed: bytes) -> bool:
    """True when a framed Experience record (single-object or Confluent) carries its own hash."""
    header_size = HEADER_SIZE if framed[:2] == MAGIC else _CONFLUENT_HEADER
    body = memoryview(framed)[header_size:]
    if len(body) < _SEALED_TAIL or bytes(body[-_SEALED_TAIL:-64]) != _LENGTH_64:
        return False
    digest = hashlib.sha256(bytes(body[:-_SEALED_TAIL]) + _EMPTY).hexdigest()
    return digest.encode() == bytes(body[-64:])
