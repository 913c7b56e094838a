"""Compact, exact, fast bytes for the records the join keeps in its changelog.

Turning a float into text (``json``, ``repr``) costs about a microsecond each on the machines this
runs on, and a join entry holds dozens of floats, so entries are packed instead: the text-like
fields of a record (strings, ints, enums, nulls, map keys) as one compact JSON list, and every
double as 8 bytes (exact, no rounding). The field list comes from the record's schema, so a packer
follows the ``.avsc`` file.

Example:
    >>> packer = RecordPacker("outcomes")
    >>> record = {"event_id": "o1", "ts": 5, "signal_id": "s", "symbol": "X", "strategy": "a",
    ...           "entry_price": 10.0, "exit_price": 10.5, "size_multiplier": 1.0, "return_unit": 0.05,
    ...           "pnl": 0.5, "fees": 0.0, "exit_reason": "TIME", "side": "BUY"}
    >>> texts, floats = packer.pack(record)
    >>> packer.unpack(texts, floats) == record
    True
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from typing import Any, Final

import numpy as np

from streams.avro.schemas import SchemaRegistry

__all__ = ["RecordPacker", "join_bytes", "split_bytes"]

_DOUBLE: Final = 0
_MAP: Final = 1
_OTHER: Final = 2
_LENGTHS = struct.Struct("<II")


def _kind(schema: Any) -> int:
    if schema == "double" or schema == {"type": "double"}:
        return _DOUBLE
    if isinstance(schema, dict) and schema.get("type") == "map" and schema["values"] == "double":
        return _MAP
    return _OTHER


class RecordPacker:
    """Packs single-event records of one topic into (JSON-ready list, floats) and back."""

    def __init__(self, topic: str) -> None:
        schema = SchemaRegistry.default().for_topic(topic).json
        self.fields = [(f["name"], _kind(f["type"])) for f in schema["fields"]]

    def pack(self, record: dict[str, Any]) -> tuple[list[Any], list[float]]:
        texts: list[Any] = []
        floats: list[float] = []
        for name, kind in self.fields:
            value = record[name]
            if kind == _DOUBLE:
                floats.append(value)
            elif kind == _MAP:
                texts.append(list(value))
                floats.extend(value.values())
            else:
                texts.append(value)
        return texts, floats

    def unpack(self, texts: Sequence[Any], floats: Sequence[float]) -> dict[str, Any]:
        record: dict[str, Any] = {}
        t = f = 0
        for name, kind in self.fields:
            if kind == _DOUBLE:
                record[name] = floats[f]
                f += 1
            elif kind == _MAP:
                keys = texts[t]
                t += 1
                record[name] = dict(zip(keys, floats[f : f + len(keys)], strict=True))
                f += len(keys)
            else:
                record[name] = texts[t]
                t += 1
        return record


def join_bytes(texts: Any, floats: Sequence[float] | np.ndarray, tail: bytes = b"") -> bytes:
    """One value: lengths, compact JSON of ``texts``, the floats as little-endian doubles, ``tail``."""
    head = json.dumps(texts, separators=(",", ":")).encode()
    body = np.asarray(floats, dtype="<f8").tobytes()
    return _LENGTHS.pack(len(head), len(body)) + head + body + tail


def split_bytes(data: bytes) -> tuple[Any, list[float], bytes]:
    """The (texts, floats, tail) of :func:`join_bytes`.

    Raises:
        ValueError: ``data`` is not what :func:`join_bytes` makes (truncated or garbled).
    """
    if len(data) < _LENGTHS.size:
        raise ValueError(f"{len(data)} bytes, too short for a packed value")
    head, body = _LENGTHS.unpack_from(data)
    start = _LENGTHS.size
    if start + head + body > len(data) or body % 8:
        raise ValueError("packed value truncated")
    texts = json.loads(data[start : start + head])
    floats = np.frombuffer(data, dtype="<f8", count=body // 8, offset=start + head).tolist()
    return texts, floats, data[start + head + body :]
