"""Commit positions from acknowledged answers: in order per partition, never past a pending request."""

from __future__ import annotations

import threading

from agents.inference.acks import Acknowledgements


def test_a_commit_never_passes_a_request_whose_answer_is_pending() -> None:
    acks = Acknowledgements()
    done = {(p, o): acks.track(p, o) for p in (0, 1) for o in (5, 6, 7)}
    done[(0, 6)]()
    done[(1, 5)]()
    assert acks.positions() == {1: 6} and acks.pending() == 5
    done[(0, 5)]()
    done[(0, 7)]()
    assert acks.positions() == {0: 8}
    assert acks.positions() == {}  # nothing new
    done[(1, 7)]()
    done[(1, 6)]()
    assert acks.positions() == {1: 8} and acks.pending() == 0


def test_revoked_partitions_are_forgotten() -> None:
    acks = Acknowledgements()
    acks.track(2, 1)
    late = acks.track(3, 1)
    acks.forget({3})
    late()  # a report that arrives after the revocation changes nothing
    assert acks.positions() == {} and acks.pending() == 1


def test_reports_from_other_threads() -> None:
    acks = Acknowledgements()
    callbacks = [acks.track(0, offset) for offset in range(1000)]
    threads = [threading.Thread(target=lambda part=callbacks[i::4]: [c() for c in part]) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert acks.positions() == {0: 1000}
