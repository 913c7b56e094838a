"""The persisted state of the signal-outcome join: one entry per signal id, one clock per lane.

Entries are packed with :mod:`agents.packing` (exact doubles, no float-to-text on the hot path)
and stored many to a changelog record by :class:`agents.entrylog.EntryLog`.

Example:
    >>> entry = Entry("sig-1", home=2, route=1)
    >>> again = Entry.from_bytes("sig-1", entry.to_bytes())
    >>> (again.home, again.route, again.lane)
    (2, 1, (1, 2))
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import Any, Final

from agents.experience import Resolved
from agents.packing import RecordPacker, join_bytes, split_bytes
from streams.topics import OUTCOMES, SIGNALS

__all__ = ["CLOCK_PREFIX", "Clock", "Entry", "Lane", "Src", "clock_key", "parse_clock_key"]

CLOCK_PREFIX: Final = b"\x00clock:"
FINAL_SIGNAL_FIELDS: Final = ("ts", "horizon_seconds", "symbol")
# A finished entry (most entries of a long run) in a fixed layout: "F", home, route, emitted,
# signal ts, outcome watermark, horizon, both sources, then its strings. A restore reads
# hundreds of thousands of them; this parses in a fraction of the general form's time.
_FINAL = struct.Struct("<BiibqqdqqqqqqH")
_FINAL_TAG: Final = ord("F")
_SEP: Final = "\x1f"

Lane = tuple[int, int]  # (route partition, source partition): one event-time clock each
Src = tuple[int, int, int]  # (partition, offset, index in the batch record or -1)

_SIGNALS = RecordPacker(SIGNALS)
_OUTCOMES = RecordPacker(OUTCOMES)


def clock_key(lane: Lane) -> bytes:
    return CLOCK_PREFIX + f"{lane[0]}:{lane[1]}".encode()


def parse_clock_key(key: bytes) -> Lane:
    """The lane of a clock key; keys written before routing (``<p>``) name lane (p, p)."""
    route, _, source = key[len(CLOCK_PREFIX) :].decode().partition(":")
    return int(route), int(source or route)


def _src(value: Any) -> Src | None:
    return None if value is None else (int(value[0]), int(value[1]), int(value[2]))


@dataclass(slots=True)
class Entry:
    """Everything the join knows about one signal id.

    Attributes:
        home: source partition of the first event seen for the id; with ``route`` it names the
            entry's lane (signals and outcomes of one id share both).
        route: the partition the entry's state lives on (its symbol's partition); table writes go
            there.
        signal: the decoded signal (reduced to ts/horizon_seconds/symbol once final).
        sig_src, out_src: (partition, offset, batch index) of the signal and the outcome, which
            recognise a redelivered event.
        outcome: the decoded outcome, until final.
        out_wm: the outcome watermark of the lane just before the outcome arrived: the outcome is
            late when this already passed the signal's deadline.
        resolved: point-in-time features, fixed once the symbol's features passed the signal time.
        emitted: -1 nothing yet, 0 revision 0 sent, 1 correction sent.
        status0: status of revision 0 (COMPLETE or CENSORED).
        orphan: source topic and bytes of an outcome still waiting for its signal.
        orphaned: the outcome was dead-lettered as an orphan; the entry stays (for redeliveries)
            until it is purged.
        arrived_wall: wall clock (us) when the signal arrived or was loaded; not persisted.
    """

    signal_id: str
    home: int
    route: int = -1
    signal: dict[str, Any] | None = None
    sig_src: Src | None = None
    sig_event: str | None = None
    outcome: dict[str, Any] | None = None
    out_src: Src | None = None
    out_event: str | None = None
    out_wm: int = 0
    resolved: Resolved | None = None
    emitted: int = -1
    status0: str | None = None
    final: bool = False
    orphan: tuple[str, bytes] | None = None
    orphaned: bool = False
    arrived_wall: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        if self.route < 0:
            self.route = self.home

    @property
    def lane(self) -> Lane:
        return self.route, self.home

    def deadline(self, grace_us: int) -> int:
        """Event time after which the signal expires without an outcome: ts + horizon + grace."""
        assert self.signal is not None
        return int(self.signal["ts"] + self.signal["horizon_seconds"] * 1_000_000) + grace_us

    def _final_bytes(self) -> bytes | None:
        """The fixed layout of a finished entry, or None when it does not fit one."""
        if not (self.final and self.signal is not None and self.sig_src is not None and self.out_src is not None):
            return None
        strings = [self.sig_event or "", self.out_event or "", self.status0 or "", self.signal["symbol"]]
        text = _SEP.join(strings)
        if any(_SEP in x for x in strings) or self.orphaned or self.outcome is not None:
            return None
        data = text.encode()
        return _FINAL.pack(
            _FINAL_TAG, self.home, self.route, self.emitted, self.signal["ts"], self.out_wm,
            self.signal["horizon_seconds"], *self.sig_src, *self.out_src, len(data),
        ) + data  # fmt: skip

    @classmethod
    def _from_final(cls, signal_id: str, data: bytes) -> Entry:
        (_, home, route, emitted, ts, out_wm, horizon, sp, so, si, op, oo, oi, n) = _FINAL.unpack_from(data)
        sig_event, out_event, status0, symbol = data[_FINAL.size : _FINAL.size + n].decode().split(_SEP)
        signal = {"ts": ts, "horizon_seconds": horizon, "symbol": symbol}
        return cls(signal_id, home, route, signal, (sp, so, si), sig_event or None, None, (op, oo, oi),
                   out_event or None, out_wm, None, emitted, status0 or None, True)  # fmt: skip

    def to_bytes(self) -> bytes:
        final = self._final_bytes()
        if final is not None:
            return final
        floats: list[float] = []
        signal: Any = None
        if self.signal is not None:
            if self.final:
                signal = [self.signal["ts"], self.signal["symbol"]]
                floats.append(self.signal["horizon_seconds"])
            else:
                signal, values = _SIGNALS.pack(self.signal)
                floats += values
        n_signal = len(floats)
        outcome: Any = None
        if self.outcome is not None:
            outcome, values = _OUTCOMES.pack(self.outcome)
            floats += values
        n_outcome = len(floats) - n_signal
        resolved: Any = None
        if self.resolved is not None:
            r = self.resolved
            resolved = [None if r.stream_values is None else len(r.stream_values), r.snapshot_ts, r.premium,
                        list(r.flags)]  # fmt: skip
            floats += r.stream_values or []
        orphan_topic = None if self.orphan is None else self.orphan[0]
        texts = [
            self.home, self.route, self.sig_src, self.sig_event, self.out_src, self.out_event, self.out_wm,
            self.emitted, self.status0, self.final, self.orphaned, orphan_topic, signal, n_signal, outcome,
            n_outcome, resolved,
        ]  # fmt: skip
        return join_bytes(texts, floats, b"" if self.orphan is None else self.orphan[1])

    @classmethod
    def from_bytes(cls, signal_id: str, data: bytes) -> Entry:
        if data[:1] == b"F":
            return cls._from_final(signal_id, data)
        texts, floats, tail = split_bytes(data)
        (home, route, sig_src, sig_event, out_src, out_event, out_wm, emitted, status0, final, orphaned,
         orphan_topic, signal_texts, n_signal, outcome_texts, n_outcome, resolved_meta) = texts  # fmt: skip
        signal = None
        if signal_texts is not None:
            if final:
                signal = {"ts": signal_texts[0], "horizon_seconds": floats[0], "symbol": signal_texts[1]}
            else:
                signal = _SIGNALS.unpack(signal_texts, floats[:n_signal])
        outcome = None
        if outcome_texts is not None:
            outcome = _OUTCOMES.unpack(outcome_texts, floats[n_signal : n_signal + n_outcome])
        resolved = None
        if resolved_meta is not None:
            n_values, snapshot_ts, premium, flags = resolved_meta
            start = n_signal + n_outcome
            values = None if n_values is None else floats[start : start + n_values]
            resolved = Resolved(values, snapshot_ts, premium, tuple(flags))
        return cls(
            signal_id, home, route, signal, _src(sig_src), sig_event, outcome, _src(out_src), out_event,
            out_wm, resolved, emitted, status0, final, None if orphan_topic is None else (orphan_topic, tail),
            orphaned,
        )  # fmt: skip


@dataclass(slots=True)
class Clock:
    """Event-time progress of one lane of signals and outcomes.

    ``wm_sig``/``wm_out`` are persisted (decisions depend on them); the wall-clock times of the
    last events are not: after a restart every input counts as just seen.
    """

    wm_sig: int = 0
    wm_out: int = 0
    seen_sig: int = 0
    seen_out: int = 0

    def to_json(self) -> bytes:
        return json.dumps([self.wm_sig, self.wm_out]).encode()

    @classmethod
    def from_json(cls, data: bytes, now: int) -> Clock:
        wm_sig, wm_out = json.loads(data)
        return cls(wm_sig, wm_out, now, now)
