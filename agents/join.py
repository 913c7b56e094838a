"""The signal-outcome join: point-in-time features, either arrival order, expiry and corrections.

Decisions depend only on the order of events *within* a lane, never on how the signals and
outcomes topics interleave, so replaying the inputs rebuilds the same experiences. A lane is a
(route, source) pair of partitions: the partition the entry's state lives on (its symbol's, where
its trades are) and the partition the event was produced to. Signals and outcomes keyed by symbol
(the contract since 0.2) arrive on their symbol's partition, so their lane is (p, p); records
keyed by signal id are forwarded by the worker to their symbol's partition (:mod:`agents.routing`)
and keep their source partition. Within a lane the events keep their source order. The watermarks
below are kept per lane:

* A signal is **resolved** (its state vector fixed) once the features of its symbol passed the
  signal time, with the newest snapshot at or before it; if the symbol's features lag for
  ``idle_expiry_seconds`` of wall clock, it resolves with what exists (flag ``features_lagging``).
* An outcome is **on time** when the outcome watermark of its lane (newest outcome time seen
  before it) had not passed the signal's deadline ``ts + horizon + grace``. On time -> COMPLETE.
* A signal with no outcome **expires** when the outcome watermark passes its deadline (CENSORED).
  When a lane's outcomes are idle for ``idle_expiry_seconds``, the watermark follows the signals
  and then the wall clock, so an idle stream cannot hold signals forever.
* A late outcome (after expiry) yields a CORRECTION (revision 1) that replaces the CENSORED record.
* Duplicated signals or outcomes are dead-lettered; redelivered events (after a restart) are
  skipped. An outcome whose signal never came is dead-lettered as an orphan.

The handler returns each experience encoded and sealed (:class:`agents.experience.ExperienceEncoder`)
and the table writes of the entries it changed, many entries to a record (:mod:`agents.entrylog`).

Example:
    >>> # see tests/unit/agents/test_join.py for complete scenarios
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

from agents.entrylog import EntryLog
from agents.experience import CENSORED, COMPLETE, CORRECTION, ExperienceEncoder, Resolved, experience_record
from agents.inputs import SINGLE, Event
from agents.join_state import (
    CLOCK_PREFIX,
    FINAL_SIGNAL_FIELDS,
    Clock,
    Entry,
    Lane,
    clock_key,
    parse_clock_key,
)
from agents.journal import Write
from agents.market import Market
from agents.validate import DUPLICATE
from streams.avro.codec import Codec
from streams.config.agents import AgentSettings
from streams.deadletter import STAGE_DEDUP, STAGE_JOIN, DeadLetter
from streams.topics import SIGNALS

__all__ = ["DUPLICATE_OUTCOME", "DUPLICATE_SIGNAL", "ORPHAN_OUTCOME", "Emitted", "JoinBatch", "Joiner"]

DUPLICATE_SIGNAL: Final = "duplicate_signal"
DUPLICATE_OUTCOME: Final = "duplicate_outcome"
ORPHAN_OUTCOME: Final = "orphan_outcome"
WARMUP_US: Final = 300_000_000  # a snapshot younger than 5 minutes of trading is flagged "warmup"


class Emitted(NamedTuple):
    """One experience: its key (the signal id), the record, and its sealed bytes."""

    key: str
    record: dict[str, Any]
    value: bytes


@dataclass(slots=True)
class JoinBatch:
    """What one batch (or one timer tick) of the join produced."""

    experiences: list[Emitted] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)
    results: Counter[str] = field(default_factory=Counter)


class Joiner:
    """Joins signals with point-in-time features from ``market`` and with their outcomes."""

    def __init__(self, settings: AgentSettings, codec: Codec, market: Market) -> None:
        self.settings = settings
        self.codec = codec
        self.market = market
        self.encoder = ExperienceEncoder(codec)
        self.grace_us = int(settings.join_grace_seconds * 1_000_000)
        self.idle_us = int(settings.idle_expiry_seconds * 1_000_000)
        # Wall time of the worker's last input of any kind (trades included). A worker that is
        # still receiving input is busy, not idle: under a backlog Faust can starve one topic for
        # longer than the idle window, and advancing the watermark by wall clock then would
        # censor signals and orphan outcomes that are merely queued.
        self.last_input_us = 0
        self.retention_us = int(settings.join_retention_seconds * 1_000_000)
        self.stale_us = int(settings.stale_snapshot_seconds * 1_000_000)
        self._reset()

    def _reset(self) -> None:
        self.partitions: set[int] = set()  # held, when the worker assigns them (see assign)
        self.entries: dict[str, Entry] = {}
        self.clocks: dict[Lane, Clock] = {}
        self.log = EntryLog("e")
        self._waiting: dict[str, set[str]] = defaultdict(set)  # symbol -> unresolved signal ids
        self._expiry: dict[Lane, list[tuple[int, str]]] = defaultdict(list)  # lane -> (deadline, id)
        self._orphans: dict[Lane, list[tuple[int, str]]] = defaultdict(list)
        self._purge: dict[Lane, list[tuple[int, str]]] = defaultdict(list)
        self._dirty: set[str] = set()
        self._deleted: dict[str, int] = {}  # signal id -> route partition
        self._dirty_clocks: set[Lane] = set()

    # ---- public ----------------------------------------------------------------------------------

    def handle(self, events: Iterable[Event], now: int) -> JoinBatch:
        """Process valid signals and outcomes (``event.topic`` says which) in order, then sweep."""
        out = JoinBatch()
        for event in events:
            if event.topic == SIGNALS:
                self._on_signal(event, now, out)
            else:
                self._on_outcome(event, now, out)
        self._sweep(now, out)
        self._flush(out)
        return out

    def tick(self, now: int) -> JoinBatch:
        """Wall-clock work with no new events: resolutions, expiries, orphans and purges."""
        out = JoinBatch()
        self._sweep(now, out)
        self._flush(out)
        return out

    def pending(self) -> int:
        """Signals waiting for an outcome or features, plus outcomes waiting for their signal."""
        return sum(1 for e in self.entries.values() if not e.final and e.emitted < 0 and not e.orphaned)

    def load(self, items: Iterable[tuple[bytes, bytes]], now: int) -> None:
        """Rebuild all state and indexes from persisted keys (a table after changelog recovery)."""
        self._reset()
        self._load(list(items), now, None)

    def assign(self, items: Iterable[tuple[bytes, bytes]], now: int, partitions: Collection[int]) -> int:
        """Hold exactly ``partitions``: drop the state of others, load the state of new ones.

        The state of partitions held before and after is kept as it is: it mirrors the table,
        write for write. A table can still hold keys of partitions given away (the memory store
        keeps what this worker wrote), and that state is another worker's now. Returns how many
        entries were loaded.
        """
        held = set(partitions)
        gone = self.partitions - held
        if gone:
            self._drop(gone)
        new = held - self.partitions
        self.partitions = held
        return self._load(list(items), now, new) if new else 0

    def _load(self, items: list[tuple[bytes, bytes]], now: int, partitions: Collection[int] | None) -> int:
        for key, value in items:
            if key.startswith(CLOCK_PREFIX):
                lane = parse_clock_key(key)
                if partitions is None or lane[0] in partitions:
                    self.clocks[lane] = Clock.from_json(value, now)
        loaded = self.log.load(items, partitions)
        for signal_id, (_, value) in loaded.items():
            entry = Entry.from_bytes(signal_id, value)
            entry.arrived_wall = now
            self.entries[signal_id] = entry
            self._index(entry)
        return len(loaded)

    def _drop(self, partitions: Collection[int]) -> None:
        gone = [sid for sid, entry in self.entries.items() if entry.route in partitions]
        for signal_id in gone:
            del self.entries[signal_id]
        for ids in self._waiting.values():
            ids.difference_update(gone)
        self.clocks = {lane: clock for lane, clock in self.clocks.items() if lane[0] not in partitions}
        for heaps in (self._expiry, self._orphans, self._purge):
            for lane in [lane for lane in heaps if lane[0] in partitions]:
                del heaps[lane]
        self.log.forget(partitions)

    # ---- events ----------------------------------------------------------------------------------

    def _arrival(self, event: Event, now: int) -> tuple[Lane, Clock, Entry]:
        """The lane, clock and entry an arriving signal or outcome updates."""
        lane = (event.partition if event.route is None else event.route), event.partition
        clock = self.clocks.get(lane)
        if clock is None:
            clock = self.clocks[lane] = Clock(seen_sig=now, seen_out=now)
        signal_id = event.record["signal_id"]
        entry = self.entries.get(signal_id)
        if entry is None:
            entry = self.entries[signal_id] = Entry(signal_id, lane[1], route=lane[0])
            self._deleted.pop(signal_id, None)
        return lane, clock, entry

    def _on_signal(self, event: Event, now: int, out: JoinBatch) -> None:
        signal = event.record
        lane, clock, entry = self._arrival(event, now)
        clock.seen_sig = now
        if signal["ts"] > clock.wm_sig:
            clock.wm_sig = signal["ts"]
            self._dirty_clocks.add(lane)
        if entry.sig_src == event.src:
            out.results["redelivered"] += 1
            return
        if entry.sig_event is not None:
            self._reject_second(event, entry.sig_event, DUPLICATE_SIGNAL, f"signal {entry.signal_id}", out)
            return
        entry.signal, entry.sig_src, entry.sig_event = signal, event.src, signal["event_id"]
        entry.arrived_wall = now
        self._dirty.add(entry.signal_id)
        self._waiting[signal["symbol"]].add(entry.signal_id)
        self._advance(entry, now, out)

    def _reject_second(self, event: Event, first_id: str, conflict: str, what: str, out: JoinBatch) -> None:
        """Dead-letter a second signal or outcome for an entry: a redelivered copy (same event id) is
        a duplicate; a different event under the same signal id is a conflict."""
        same = first_id == event.record["event_id"]
        reason, stage = (DUPLICATE, STAGE_DEDUP) if same else (conflict, STAGE_JOIN)
        out.dead.append(event.reject(self.codec, stage, reason, f"{what} already received"))
        out.results["duplicate"] += 1

    def _on_outcome(self, event: Event, now: int, out: JoinBatch) -> None:
        outcome = event.record
        lane, clock, entry = self._arrival(event, now)
        clock.seen_out = now
        if entry.out_src == event.src:
            # The entry was persisted but maybe not the clock: the watermark is a max, so replay it.
            if outcome["ts"] > clock.wm_out:
                clock.wm_out = outcome["ts"]
                self._dirty_clocks.add(lane)
            out.results["redelivered"] += 1
            return
        if entry.out_event is not None:
            self._reject_second(
                event, entry.out_event, DUPLICATE_OUTCOME, f"outcome of {entry.signal_id}", out
            )
            return
        entry.outcome, entry.out_src, entry.out_event = outcome, event.src, outcome["event_id"]
        entry.out_wm = clock.wm_out
        if outcome["ts"] > clock.wm_out:
            clock.wm_out = outcome["ts"]
            self._dirty_clocks.add(lane)
        self._dirty.add(entry.signal_id)
        if entry.signal is None:
            raw = event.raw if event.raw is not None else self.codec.encode(event.topic, outcome)
            entry.orphan = (event.source, raw)
            heapq.heappush(self._orphans[entry.lane], (outcome["ts"] + self.grace_us, entry.signal_id))
        self._advance(entry, now, out)

    # ---- decisions -------------------------------------------------------------------------------

    def _effective(self, lane: Lane, outcomes: bool, now: int) -> int:
        """The event-time watermark of one input of ``lane``, advanced by wall clock when idle."""
        clock = self.clocks.get(lane)
        if clock is None:
            return 0
        wm, seen = (clock.wm_out, clock.seen_out) if outcomes else (clock.wm_sig, clock.seen_sig)
        if now - max(seen, self.last_input_us) >= self.idle_us:
            wm = max(clock.wm_out, clock.wm_sig) + max(0, now - max(clock.seen_out, clock.seen_sig))
        return wm

    def _resolve(self, entry: Entry, now: int) -> bool:
        signal = entry.signal
        assert signal is not None
        view = self.market.view(signal["symbol"])
        flags = []
        if view is None or view.watermark <= signal["ts"]:
            if now - entry.arrived_wall < self.idle_us:
                return False
            flags.append("features_lagging")
        snap = view.snapshot_at(signal["ts"]) if view is not None else None
        if snap is None:
            flags.append("no_snapshot")
        else:
            if signal["ts"] - snap.ts > self.stale_us:
                flags.append("stale_snapshot")
            if view is not None and snap.ts - view.features.first_ts < WARMUP_US:
                flags.append("warmup")
        premium = view is not None and view.moves.premium_at(signal["ts"])
        values = None if snap is None else snap.values.tolist()
        entry.resolved = Resolved(values, None if snap is None else snap.ts, premium, tuple(flags))
        self._waiting[signal["symbol"]].discard(entry.signal_id)
        self._dirty.add(entry.signal_id)
        return True

    def _emit(self, entry: Entry, status: str, revision: int, out: JoinBatch) -> None:
        assert entry.signal is not None and entry.resolved is not None
        outcome = None if status == CENSORED else entry.outcome
        record = experience_record(entry.signal, outcome, entry.resolved, status, revision, self.settings)
        value = self.encoder.encode(record)
        out.experiences.append(Emitted(entry.signal_id, record, value))
        if "side_mismatch" in record["validation_flags"]:
            out.results["side_mismatch"] += 1
        entry.emitted = revision
        if revision == 0:
            entry.status0 = status
        self._dirty.add(entry.signal_id)

    def _advance(self, entry: Entry, now: int, out: JoinBatch) -> None:
        """Take every step ``entry`` is ready for."""
        if entry.signal is None or entry.final:
            return
        if entry.resolved is None and not self._resolve(entry, now):
            return
        deadline = entry.deadline(self.grace_us)
        if entry.emitted < 0:
            if entry.outcome is not None and entry.out_wm <= deadline:
                self._emit(entry, COMPLETE, 0, out)
                out.results["joined"] += 1
            elif entry.outcome is not None:
                self._emit(entry, CENSORED, 0, out)
                self._emit(entry, CORRECTION, 1, out)
                out.results["late"] += 1
            elif self._effective(entry.lane, True, now) > deadline:
                self._emit(entry, CENSORED, 0, out)
                out.results["expired"] += 1
            else:
                heapq.heappush(self._expiry[entry.lane], (deadline, entry.signal_id))
                return
        elif entry.status0 == CENSORED and entry.outcome is not None:
            self._emit(entry, CORRECTION, 1, out)
            out.results["late"] += 1
        if entry.emitted == 1 or entry.status0 == COMPLETE:
            self._finish(entry)
        heapq.heappush(self._purge[entry.lane], (deadline + self.retention_us, entry.signal_id))

    def _finish(self, entry: Entry) -> None:
        """Keep only what duplicate detection needs once nothing more can be emitted."""
        assert entry.signal is not None
        entry.final = True
        entry.signal = {k: entry.signal[k] for k in FINAL_SIGNAL_FIELDS}
        entry.outcome = None
        entry.resolved = None

    def _sweep(self, now: int, out: JoinBatch) -> None:
        for symbol in [s for s, ids in self._waiting.items() if ids]:
            for signal_id in sorted(self._waiting[symbol]):
                entry = self.entries.get(signal_id)
                if entry is None or entry.resolved is not None:
                    self._waiting[symbol].discard(signal_id)
                elif self._resolve(entry, now):
                    self._advance(entry, now, out)
        for lane, heap in self._expiry.items():
            wm = self._effective(lane, True, now)
            while heap and heap[0][0] < wm:
                entry = self.entries.get(heapq.heappop(heap)[1])
                if entry is not None and entry.emitted < 0 and entry.resolved is not None:
                    self._advance(entry, now, out)
        for lane, heap in self._orphans.items():
            wm = self._effective(lane, False, now)
            while heap and heap[0][0] < wm:
                entry = self.entries.get(heapq.heappop(heap)[1])
                if entry is not None and entry.signal is None and entry.orphan is not None:
                    self._orphaned(entry, out)
        for lane, heap in self._purge.items():
            wm = self._effective(lane, False, now)
            while heap and heap[0][0] < wm:
                entry = self.entries.get(heapq.heappop(heap)[1])
                if entry is not None and (entry.final or entry.emitted == 0 or entry.signal is None):
                    self._delete(entry)

    def _orphaned(self, entry: Entry, out: JoinBatch) -> None:
        """Dead-letter an outcome whose signal never came; keep a marker until it is purged.

        The marker (not a deletion) makes a redelivered copy count as redelivered, and keeps the
        dead letter from being sent again after a restart restores an older version of the entry.
        """
        assert entry.out_src is not None and entry.orphan is not None and entry.outcome is not None
        source, raw = entry.orphan
        partition, offset, index = entry.out_src
        error = f"no signal {entry.signal_id} arrived before the signals passed the outcome time + grace"
        out.dead.append(DeadLetter(
            STAGE_JOIN, source, partition, offset, entry.signal_id.encode(), raw, ORPHAN_OUTCOME, error,
            None if index == SINGLE else index,
        ))  # fmt: skip
        out.results["orphan"] += 1
        purge_at = entry.outcome["ts"] + self.grace_us + self.retention_us
        entry.orphan, entry.outcome, entry.orphaned = None, None, True
        self._dirty.add(entry.signal_id)
        heapq.heappush(self._purge[entry.lane], (purge_at, entry.signal_id))

    def _delete(self, entry: Entry) -> None:
        del self.entries[entry.signal_id]
        self._dirty.discard(entry.signal_id)
        self._deleted[entry.signal_id] = entry.route

    def _index(self, entry: Entry) -> None:
        """Put a loaded entry back on the work queues it belongs to."""
        if entry.signal is None:
            if entry.outcome is not None and entry.orphan is not None:
                heapq.heappush(
                    self._orphans[entry.lane], (entry.outcome["ts"] + self.grace_us, entry.signal_id)
                )
            elif entry.orphaned:
                heapq.heappush(self._purge[entry.lane], (0, entry.signal_id))  # purged at the next sweep
            return
        deadline = entry.deadline(self.grace_us)
        if entry.final or entry.emitted >= 0:
            heapq.heappush(self._purge[entry.lane], (deadline + self.retention_us, entry.signal_id))
            return
        if entry.resolved is None:
            self._waiting[entry.signal["symbol"]].add(entry.signal_id)
        heapq.heappush(self._expiry[entry.lane], (deadline, entry.signal_id))

    def _flush(self, out: JoinBatch) -> None:
        by_route: dict[int, tuple[list[tuple[str, bytes]], list[str]]] = defaultdict(lambda: ([], []))
        for signal_id in sorted(self._dirty):
            entry = self.entries[signal_id]
            by_route[entry.route][0].append((signal_id, entry.to_bytes()))
        for signal_id, route in sorted(self._deleted.items()):
            by_route[route][1].append(signal_id)
        for route in sorted(by_route):
            changed, deleted = by_route[route]
            out.writes.extend(self.log.writes(route, changed, deleted))
        for lane in sorted(self._dirty_clocks):
            out.writes.append((lane[0], clock_key(lane), self.clocks[lane].to_json()))
        self._dirty.clear()
        self._deleted.clear()
        self._dirty_clocks.clear()
