"""The persisted state of the signal-outcome join: one entry per signal id, one clock per partition.

Both serialise to compact JSON for the Faust table (floats round-trip exactly through ``json``).

Example:
    >>> entry = Entry("sig-1", home=2)
    >>> Entry.from_json("sig-1", entry.to_json()).home
    2
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Final

from agents.experience import Resolved

__all__ = ["CLOCK_PREFIX", "Clock", "Entry", "Lane", "clock_key", "parse_clock_key"]

CLOCK_PREFIX: Final = b"\x00clock:"


Lane = tuple[int, int]  # (route partition, source partition): one event-time clock each


def clock_key(lane: Lane) -> bytes:
    return CLOCK_PREFIX + f"{lane[0]}:{lane[1]}".encode()


def parse_clock_key(key: bytes) -> Lane:
    """The lane of a clock key; keys written before routing (``<p>``) name lane (p, p)."""
    route, _, source = key[len(CLOCK_PREFIX) :].decode().partition(":")
    return int(route), int(source or route)


@dataclass(slots=True)
class Entry:
    """Everything the join knows about one signal id.

    Attributes:
        home: source partition of the first event seen for the id (signals and outcomes of one id
            share it, both being keyed by signal id); with ``route`` it names the entry's clock.
        route: the partition the entry's state lives on (its symbol's partition); table writes go
            there.
        signal: the decoded signal (reduced to ts/horizon_seconds/symbol once final).
        outcome: the decoded outcome, until final.
        out_wm: the outcome watermark of the partition just before the outcome arrived: the
            outcome is late when this already passed the signal's deadline.
        resolved: point-in-time features, fixed once the symbol's features passed the signal time.
        emitted: -1 nothing yet, 0 revision 0 sent, 1 correction sent.
        status0: status of revision 0 (COMPLETE or CENSORED).
        orphan: source topic and base64 bytes of an outcome still waiting for its signal.
        arrived_wall: wall clock (us) when the signal arrived or was loaded; not persisted.
    """

    signal_id: str
    home: int
    signal: dict[str, Any] | None = None
    sig_src: tuple[int, int] | None = None
    sig_event: str | None = None
    outcome: dict[str, Any] | None = None
    out_src: tuple[int, int] | None = None
    out_event: str | None = None
    out_wm: int = 0
    resolved: Resolved | None = None
    emitted: int = -1
    status0: str | None = None
    final: bool = False
    orphan: tuple[str, str] | None = None  # (source topic, base64 value) while no signal matched
    arrived_wall: int = field(default=0, compare=False)
    route: int = -1

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

    def to_json(self) -> bytes:
        doc = {
            "h": self.home, "s": self.signal, "ss": self.sig_src, "se": self.sig_event, "o": self.outcome,
            "os": self.out_src, "oe": self.out_event, "ow": self.out_wm,
            "r": None if self.resolved is None else self.resolved.to_json(), "e": self.emitted,
            "s0": self.status0, "f": self.final, "x": self.orphan, "rt": self.route,
        }  # fmt: skip
        return json.dumps(doc, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, signal_id: str, data: bytes) -> Entry:
        d = json.loads(data)
        return cls(
            signal_id, d["h"], d["s"], tuple(d["ss"]) if d["ss"] else None, d["se"], d["o"],
            tuple(d["os"]) if d["os"] else None, d["oe"], d["ow"],
            None if d["r"] is None else Resolved.from_json(d["r"]), d["e"], d["s0"], d["f"],
            tuple(d["x"]) if d["x"] else None, 0, d.get("rt", d["h"]),
        )  # fmt: skip


@dataclass(slots=True)
class Clock:
    """Event-time progress of one partition of signals and outcomes.

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
