"""The journal: atomic records per entity, checkpoints, and crash-consistent replay."""

from __future__ import annotations

import itertools

from agents.journal import Journal


def apply(table: dict[bytes, bytes], writes: list) -> None:
    for _, key, value in writes:
        if value is None:
            table.pop(key, None)
        else:
            table[key] = value


def test_replay_after_a_crash_returns_the_state_of_a_batch_boundary() -> None:
    journal = Journal(checkpoint_every=4)
    table: dict[bytes, bytes] = {}
    states = []
    for i in range(11):
        apply(
            table,
            journal.record(1, "BTC", {"core": str(i).encode(), f"row{i % 3}": bytes([i]), "gone": None}),
        )
        states.append(Journal.replay(table.items())["BTC"])
    assert states[-1] == {"core": b"10", "row0": bytes([9]), "row1": bytes([10]), "row2": bytes([8])}
    assert len(table) <= 4, "old records are deleted at each checkpoint"
    # A crash persists a prefix of the writes: every prefix replays to some earlier batch's state.
    journal, table, writes = Journal(checkpoint_every=4), {}, []
    for i in range(11):
        writes += journal.record(1, "BTC", {"core": str(i).encode(), f"row{i % 3}": bytes([i])})
    seen = []
    for n in range(len(writes) + 1):
        prefix: dict[bytes, bytes] = {}
        apply(prefix, writes[:n])
        seen.append(Journal.replay(prefix.items()).get("BTC", {}).get("core"))
    assert all(a is None or (b is not None and int(b) >= int(a)) for a, b in itertools.pairwise(seen))


def test_a_loaded_journal_continues_its_sequence_and_cleans_up() -> None:
    first = Journal(checkpoint_every=3)
    table: dict[bytes, bytes] = {}
    for i in range(5):
        apply(table, first.record(0, "ETH", {"core": bytes([i])}))
    second = Journal(checkpoint_every=3)
    assert second.load(table.items()) == {"ETH": {"core": bytes([4])}}
    apply(table, second.record(0, "ETH", {"core": b"x"}))
    assert sorted(k.split(b":")[0] for k in table) == [b"k"], "the checkpoint replaced every earlier record"
    assert Journal.replay(table.items()) == {"ETH": {"core": b"x"}}
