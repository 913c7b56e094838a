"""Atomic per-entity state in a key-value changelog: a journal of deltas with periodic checkpoints.

An entity (a symbol, a portfolio) has named parts (``core``, one bucket row, one chunk of ids).
Each batch writes *one* record holding every part it changed, so a crash can never persist half
of a batch: after a restart the state is exactly that of some batch boundary, and the offsets in
``core`` say which inputs to skip as already applied. Every ``checkpoint_every`` records the
journal writes all parts in one checkpoint record and deletes the records before it, so the table
stays small however long the stream runs.

Keys are ``j:<seq>:<entity>`` (delta) and ``k:<seq>:<entity>`` (checkpoint).

Example:
    >>> journal = Journal(checkpoint_every=2)
    >>> writes = journal.record(0, "BTC", {"core": b"1", "row:5": b"x"})
    >>> writes += journal.record(0, "BTC", {"core": b"2", "row:5": None})
    >>> table = {k: v for _, k, v in writes if v is not None}
    >>> Journal.replay(table.items())["BTC"]
    {'core': b'2'}
"""

from __future__ import annotations

import json
import struct
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Final

__all__ = ["Journal", "Write"]

Write = tuple[int, bytes, bytes | None]  # (partition, key, value or None to delete)
_LEN: Final = struct.Struct("<I")


def _pack(seq: int, parts: Mapping[str, bytes | None]) -> bytes:
    names = [[name, -1 if value is None else len(value)] for name, value in parts.items()]
    header = json.dumps({"seq": seq, "parts": names}, separators=(",", ":")).encode()
    return _LEN.pack(len(header)) + header + b"".join(v for v in parts.values() if v is not None)


def _unpack(data: bytes) -> dict[str, bytes | None]:
    (size,) = _LEN.unpack_from(data)
    header = json.loads(data[_LEN.size : _LEN.size + size])
    pos = _LEN.size + size
    parts: dict[str, bytes | None] = {}
    for name, length in header["parts"]:
        if length < 0:
            parts[name] = None
        else:
            parts[name] = data[pos : pos + length]
            pos += length
    return parts


class Journal:
    """Writes and replays the delta/checkpoint records of many entities."""

    def __init__(self, checkpoint_every: int = 64) -> None:
        self.checkpoint_every = checkpoint_every
        self._parts: dict[str, dict[str, bytes]] = defaultdict(dict)
        self._seq: dict[str, int] = {}
        self._keys: dict[str, list[bytes]] = defaultdict(list)  # records that replay would read

    def record(self, partition: int, entity: str, parts: Mapping[str, bytes | None]) -> list[Write]:
        """The writes that persist ``parts`` of ``entity`` (None deletes a part) in one record."""
        seq = self._seq.get(entity, 0) + 1
        self._seq[entity] = seq
        merged = self._parts[entity]
        for name, value in parts.items():
            if value is None:
                merged.pop(name, None)
            else:
                merged[name] = value
        if seq % self.checkpoint_every:
            key = f"j:{seq:012d}:{entity}".encode()
            self._keys[entity].append(key)
            return [(partition, key, _pack(seq, parts))]
        key = f"k:{seq:012d}:{entity}".encode()
        writes: list[Write] = [(partition, key, _pack(seq, merged))]
        writes += [(partition, old, None) for old in self._keys[entity]]  # after the checkpoint: crash-safe
        self._keys[entity] = [key]
        return writes

    def forget(self, entity: str) -> None:
        """Drop ``entity`` from the journal (its partition went to another worker)."""
        self._parts.pop(entity, None)
        self._seq.pop(entity, None)
        self._keys.pop(entity, None)

    @staticmethod
    def _records(items: Iterable[tuple[bytes, bytes]]) -> dict[str, list[tuple[int, bool, bytes, bytes]]]:
        found: dict[str, list[tuple[int, bool, bytes, bytes]]] = defaultdict(list)
        for key, value in items:
            kind, seq, entity = key.decode().split(":", 2)
            if kind in ("j", "k"):
                found[entity].append((int(seq), kind == "k", key, value))
        return found

    @classmethod
    def replay(cls, items: Iterable[tuple[bytes, bytes]]) -> dict[str, dict[str, bytes]]:
        """The parts of every entity: newest checkpoint, then the deltas after it, in order."""
        return cls().load(items)

    def load(self, items: Iterable[tuple[bytes, bytes]]) -> dict[str, dict[str, bytes]]:
        """Replay persisted records and continue the journal from them; returns the parts per entity."""
        self._parts.clear()
        self._seq.clear()
        self._keys.clear()
        for entity, records in self._records(items).items():
            records.sort()
            start = max((i for i, r in enumerate(records) if r[1]), default=0)
            merged: dict[str, bytes] = {}
            for seq, _, _, value in records[start:]:
                for name, part in _unpack(value).items():
                    if part is None:
                        merged.pop(name, None)
                    else:
                        merged[name] = part
                self._seq[entity] = seq
            self._parts[entity] = merged
            self._keys[entity] = [r[2] for r in records]  # older ones go at the next checkpoint
        return {entity: dict(parts) for entity, parts in self._parts.items()}
