"""Many small entries in few changelog records: a log of batches, each deleted once it holds nothing current.

The join keeps one entry per signal id, hundreds of thousands of them. One table key per entry
would mean one changelog record per entry change, and a restore that reads them one by one
through Faust's per-record path (about 2,500 records/s). Instead each batch writes **one record
per partition** (``<kind>:<partition>:<seq>``) holding every entry it changed. An entry's current
version is the one in the newest record that holds it; a record whose entries have all been
superseded or deleted is deleted itself, so the table stays about as large as the live entries.

A restore reads the records in sequence order, newest version wins. An entry deleted while an
older record of its still held other current entries comes back from that record after a
restore; the join only deletes entries that are finished, so it deletes them again at its next
sweep, without output.

Example:
    >>> log = EntryLog()
    >>> writes = log.writes(0, [("a", b"1"), ("b", b"1")], [])
    >>> writes += log.writes(0, [("a", b"2"), ("b", b"2")], [])  # the first record is all stale now
    >>> [(key, value is None) for _, key, value in writes]
    [(b'e:0:000000000001', False), (b'e:0:000000000002', False), (b'e:0:000000000001', True)]
    >>> table = {key: value for _, key, value in writes if value is not None}
    >>> EntryLog().load(table.items())
    {'a': (0, b'2'), 'b': (0, b'2')}
"""

from __future__ import annotations

import struct
from collections.abc import Collection, Iterable
from typing import Final

from agents.journal import Write

__all__ = ["EntryLog"]

_COUNT: Final = struct.Struct("<I")
_ITEM: Final = struct.Struct("<HI")
Slot = tuple[int, int]  # (partition, seq)


def _pack(items: list[tuple[bytes, bytes]]) -> bytes:
    parts = [_COUNT.pack(len(items))]
    for name, value in items:
        parts += [_ITEM.pack(len(name), len(value)), name, value]
    return b"".join(parts)


def _unpack(data: bytes) -> list[tuple[str, bytes]]:
    (count,) = _COUNT.unpack_from(data)
    pos = _COUNT.size
    out = []
    for _ in range(count):
        name_len, value_len = _ITEM.unpack_from(data, pos)
        pos += _ITEM.size
        name = data[pos : pos + name_len].decode()
        pos += name_len
        out.append((name, data[pos : pos + value_len]))
        pos += value_len
    return out


class EntryLog:
    """The record log of one table: which record holds each entry's current version.

    Args:
        kind: key prefix of the records (one log per table).
        max_record_bytes: a batch's changes above this size go into several records.
    """

    def __init__(self, kind: str = "e", max_record_bytes: int = 512_000) -> None:
        self.kind = kind
        self.max_record_bytes = max_record_bytes
        self._seq: dict[int, int] = {}
        self._where: dict[str, Slot] = {}
        self._live: dict[Slot, int] = {}
        self._garbage: list[Slot] = []  # records found dead at load, deleted with the next write

    def key(self, slot: Slot) -> bytes:
        return f"{self.kind}:{slot[0]}:{slot[1]:012d}".encode()

    def records(self) -> int:
        """Records that hold at least one current entry."""
        return len(self._live)

    def _release(self, slot: Slot, dead: list[Slot]) -> None:
        left = self._live[slot] - 1
        if left:
            self._live[slot] = left
        else:
            del self._live[slot]
            dead.append(slot)

    def writes(self, partition: int, changed: Iterable[tuple[str, bytes]], deleted: Iterable[str]) -> list[Write]:
        """The table writes that make ``changed`` current and forget ``deleted``, in a safe order.

        The new records come first and the deletions of records that no longer hold anything
        current after them, so a crash in between leaves old versions behind, never a gap.
        """
        out: list[Write] = []
        dead: list[Slot] = self._garbage
        self._garbage = []
        batch: list[tuple[bytes, bytes]] = []
        size = 0
        names: list[str] = []

        def emit() -> None:
            seq = self._seq.get(partition, 0) + 1
            self._seq[partition] = seq
            slot = (partition, seq)
            out.append((partition, self.key(slot), _pack(batch)))
            for name in names:
                old = self._where.get(name)
                self._where[name] = slot
                self._live[slot] = self._live.get(slot, 0) + 1
                if old is not None:
                    self._release(old, dead)

        for name, value in changed:
            batch.append((name.encode(), value))
            names.append(name)
            size += len(name) + len(value) + _ITEM.size
            if size >= self.max_record_bytes:
                emit()
                batch, names, size = [], [], 0
        if batch:
            emit()
        for name in deleted:
            old = self._where.pop(name, None)
            if old is not None:
                self._release(old, dead)
        out.extend((slot[0], self.key(slot), None) for slot in dead)
        return out

    def forget(self, partitions: Collection[int]) -> None:
        """Drop what the log knows of ``partitions`` (they went to another worker)."""
        self._seq = {p: seq for p, seq in self._seq.items() if p not in partitions}
        self._where = {name: slot for name, slot in self._where.items() if slot[0] not in partitions}
        self._live = {slot: n for slot, n in self._live.items() if slot[0] not in partitions}
        self._garbage = [slot for slot in self._garbage if slot[0] not in partitions]

    def load(
        self, items: Iterable[tuple[bytes, bytes]], partitions: Collection[int] | None = None
    ) -> dict[str, tuple[int, bytes]]:
        """Current entries (name -> (partition, value)) from persisted records; continues the log.

        Without ``partitions``, everything the log knew is replaced; with them, only those
        partitions are (re)loaded and the others left as they are.
        """
        if partitions is None:
            self._seq.clear()
            self._where.clear()
            self._live.clear()
            self._garbage.clear()
        else:
            self.forget(partitions)
        prefix = f"{self.kind}:".encode()
        records: list[tuple[Slot, bytes]] = []
        for key, value in items:
            if key.startswith(prefix):
                _, partition, seq = key.decode().split(":")
                if partitions is None or int(partition) in partitions:
                    records.append(((int(partition), int(seq)), value))
        records.sort()
        current: dict[str, tuple[Slot, bytes]] = {}
        for slot, value in records:
            self._seq[slot[0]] = max(self._seq.get(slot[0], 0), slot[1])
            for name, entry in _unpack(value):
                current[name] = (slot, entry)
        for name, (slot, _) in current.items():
            self._where[name] = slot
            self._live[slot] = self._live.get(slot, 0) + 1
        self._garbage += [slot for slot, _ in records if slot not in self._live]
        return {name: (slot[0], entry) for name, (slot, entry) in current.items()}
