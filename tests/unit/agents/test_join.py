"""The join without a broker: arrival orders, duplicates, expiry, corrections, restarts."""

from __future__ import annotations

import itertools

import numpy as np

from agents.join import DUPLICATE_OUTCOME, DUPLICATE_SIGNAL, ORPHAN_OUTCOME
from agents.join_state import Entry
from streams.avro.integrity import verify
from streams.config.agents import AgentSettings
from streams.features import SIZER_SPEC
from tests.kit.agents.builders import CODEC, SECOND, T0, outcome, signal
from tests.kit.agents.harness import Harness

S = SECOND


def warm(h: Harness, until: int = T0 + 200 * S) -> None:
    h.trades(T0, until)


def test_signal_then_outcome_gives_one_complete_experience_with_point_in_time_state() -> None:
    h = Harness()
    warm(h)
    ts = T0 + 100 * S + 500_000
    h.feed(("signals", signal("a", ts, horizon=30)))
    h.feed(("outcomes", outcome("a", ts + 20 * S, return_unit=0.02)))
    [(key, exp)] = h.experiences
    assert key == "a" and exp["status"] == "COMPLETE" and exp["revision"] == 0
    assert exp["snapshot_ts"] == T0 + 100 * S, "the newest snapshot at or before the signal"
    assert exp["return_unit"] == 0.02 and exp["outcome_ts"] == ts + 20 * S
    assert len(exp["state"]) == SIZER_SPEC.size and exp["completeness"] == 1.0
    assert exp["profitability"] == np.tanh(0.02 / 0.01) and exp["priority"] > 1.0
    value = h.values[("a", 0)]
    assert verify(value) and CODEC.decode("experiences", value) == exp
    assert h.joiner.pending() == 0


def test_signal_waits_for_features_past_its_time_and_never_takes_a_later_snapshot() -> None:
    h = Harness()
    h.trades(T0, T0 + 50 * S)
    ts = T0 + 60 * S
    h.feed(("signals", signal("a", ts)), ("outcomes", outcome("a", ts + 10 * S)))
    assert h.experiences == [], "features have not reached the signal time yet"
    h.trades(T0 + 50 * S, T0 + 80 * S)
    h.tick()
    [(_, exp)] = h.experiences
    assert exp["snapshot_ts"] == ts and "stale_snapshot" not in exp["validation_flags"]


def test_outcome_first_or_signal_first_give_the_same_bytes() -> None:
    results = []
    for order in (("signals", "outcomes"), ("outcomes", "signals")):
        h = Harness()
        warm(h)
        events = {"signals": signal("a", T0 + 90 * S), "outcomes": outcome("a", T0 + 120 * S)}
        for topic in order:
            h.feed((topic, events[topic]))
        results.append(h.encoded())
    assert results[0] == results[1] and len(results[0]) == 1


def test_duplicates_are_dead_lettered_and_never_yield_a_second_experience() -> None:
    h = Harness()
    warm(h)
    sig, out = signal("a", T0 + 90 * S), outcome("a", T0 + 100 * S)
    h.feed(("signals", sig), ("signals", sig), ("signals", signal("a", T0 + 91 * S, event_id="other")))
    h.feed(("outcomes", out), ("outcomes", out), ("outcomes", outcome("a", T0 + 101 * S, event_id="x")))
    h.feed(("signals", sig))  # after completion too
    assert len(h.experiences) == 1
    assert [d.reason for d in h.dead] == [
        "duplicate",
        DUPLICATE_SIGNAL,
        "duplicate",
        DUPLICATE_OUTCOME,
        "duplicate",
    ]
    assert {d.stage for d in h.dead} == {"dedup", "join"}


def test_event_time_expiry_censors_and_a_late_outcome_corrects() -> None:
    h = Harness()
    warm(h, T0 + 400 * S)
    h.feed(("signals", signal("a", T0 + 100 * S, horizon=10)), ("signals", signal("b", T0 + 120 * S)))
    h.feed(("outcomes", outcome("b", T0 + 130 * S)))  # outcome time passes a's deadline (100+10+5)
    exp = h.by_key()
    assert exp[("a", 0)]["status"] == "CENSORED" and exp[("a", 0)]["return_unit"] is None
    assert exp[("a", 0)]["profitability"] == 0.0 and exp[("a", 0)]["priority"] > 0
    h.feed(("outcomes", outcome("a", T0 + 112 * S, return_unit=-0.01)))
    exp = h.by_key()
    assert exp[("a", 1)]["status"] == "CORRECTION" and exp[("a", 1)]["return_unit"] == -0.01
    assert "late_outcome" in exp[("a", 1)]["validation_flags"]
    statuses = [r["status"] for k, r in h.experiences if k == "a"]
    assert statuses == ["CENSORED", "CORRECTION"], "never a second COMPLETE or CENSORED"


def test_outcome_that_arrives_before_its_expired_signal_gives_censored_then_correction() -> None:
    h = Harness()
    warm(h, T0 + 400 * S)
    h.feed(("outcomes", outcome("b", T0 + 130 * S)), ("outcomes", outcome("a", T0 + 112 * S)))
    h.feed(("signals", signal("a", T0 + 100 * S, horizon=10)))
    assert [(k, r["status"]) for k, r in h.experiences] == [("a", "CENSORED"), ("a", "CORRECTION")]


def test_wall_clock_expiry_on_an_idle_stream() -> None:
    h = Harness(AgentSettings(join_grace_seconds=1, idle_expiry_seconds=2))
    warm(h)
    h.feed(("signals", signal("a", T0 + 150 * S, horizon=3)))
    h.tick(1.0)
    assert h.experiences == []
    h.tick(1.5)  # idle for 2.5 s: the watermark follows the wall clock from the newest event
    h.tick(2.0)  # 4.5 s of idle time > horizon + grace = 4 s
    [(_, exp)] = h.experiences
    assert exp["status"] == "CENSORED"
    h.feed(("outcomes", outcome("a", T0 + 152 * S)))
    assert [r["status"] for _, r in h.experiences] == ["CENSORED", "CORRECTION"]


def test_redelivered_offsets_after_a_restart_change_nothing() -> None:
    h = Harness()
    warm(h)
    msgs = [h.msg("signals", signal("a", T0 + 90 * S)), h.msg("outcomes", outcome("a", T0 + 95 * S))]
    h.join(msgs)
    again = h.join(msgs)
    assert again.experiences == [] and again.dead == [] and again.results["redelivered"] == 2


def test_restart_from_persisted_state_continues_exactly_once() -> None:
    settings = AgentSettings(join_grace_seconds=5, idle_expiry_seconds=2)
    events = []
    for i in range(30):
        ts = T0 + (60 + 3 * i) * S
        events.append(("signals", signal(f"s{i}", ts, horizon=20)))
        if i % 4 != 3:
            events.append(("outcomes", outcome(f"s{i}", ts + (8 if i % 5 else 40) * S)))
    full = Harness(settings)
    warm(full)
    for item in events:
        full.feed(item)
    crashed = Harness(settings)
    warm(crashed)
    msgs = [crashed.msg(t, r) for t, r in events]
    for m in msgs[:25]:
        crashed.join([m])
    restarted = Harness(settings)
    restarted.market = crashed.market
    restarted.table = dict(crashed.table)
    restarted.joiner.market = crashed.market
    restarted.joiner.load(restarted.table.items(), restarted.now)
    for m in msgs[20:]:  # offsets 20..24 are redelivered
        restarted.join([m])
    combined = {**crashed.encoded(), **restarted.encoded()}
    assert len(crashed.experiences) + len(restarted.experiences) == len(combined), "no duplicates"
    assert combined == full.encoded()


def test_interleaving_of_signals_and_outcomes_does_not_change_any_byte() -> None:
    rng = np.random.default_rng(4)
    signals, outcomes = [], []
    for i in range(40):
        ts = T0 + int(rng.integers(60, 300)) * S
        signals.append(("signals", signal(f"s{i}", ts, horizon=float(rng.choice([5, 20, 60])))))
        if rng.random() < 0.8:
            outcomes.append(("outcomes", outcome(f"s{i}", ts + int(rng.integers(1, 90)) * S)))
    signals.sort(key=lambda e: e[1]["ts"])
    outcomes.sort(key=lambda e: e[1]["ts"])
    runs = []
    for arrangement in ("signals_first", "outcomes_first", "zip"):
        h = Harness()
        warm(h, T0 + 600 * S)
        if arrangement == "signals_first":
            items = signals + outcomes
        elif arrangement == "outcomes_first":
            items = outcomes + signals
        else:
            items = [e for pair in itertools.zip_longest(signals, outcomes) for e in pair if e]
        for start in range(0, len(items), 7):
            h.feed(*items[start : start + 7])
        runs.append(h.encoded())
    assert runs[0] == runs[1] == runs[2]
    statuses = {r["status"] for r in (CODEC.decode("experiences", b) for b in runs[0].values())}
    assert statuses == {"COMPLETE", "CENSORED", "CORRECTION"}, "the scenario covers every status"


def test_outcome_without_signal_is_dead_lettered_once_signals_pass_its_time() -> None:
    h = Harness()
    warm(h)
    h.feed(("outcomes", outcome("ghost", T0 + 50 * S)))
    assert h.dead == []
    h.feed(("signals", signal("b", T0 + 80 * S)))
    [letter] = h.dead
    assert letter.reason == ORPHAN_OUTCOME and CODEC.decode("outcomes", letter.raw)["signal_id"] == "ghost"


def test_signal_during_a_price_move_is_premium_with_higher_priority() -> None:
    h = Harness()
    h.trades(T0, T0 + 120 * S, price=100.0)
    h.trades(T0 + 120 * S, T0 + 180 * S, price=104.0)  # +4% within a minute: velocity alert
    h.feed(("signals", signal("calm", T0 + 60 * S)), ("outcomes", outcome("calm", T0 + 70 * S)))
    h.feed(("signals", signal("hot", T0 + 125 * S)), ("outcomes", outcome("hot", T0 + 130 * S)))
    exp = h.by_key()
    assert exp[("hot", 0)]["premium"] and not exp[("calm", 0)]["premium"]
    assert exp[("hot", 0)]["priority"] == exp[("calm", 0)]["priority"] * 1.5


def test_entry_round_trips_through_its_bytes_at_every_stage() -> None:
    h = Harness()
    warm(h)
    checked = []

    def check(signal_id: str) -> Entry:
        entry = h.joiner.entries[signal_id]
        again = Entry.from_bytes(signal_id, entry.to_bytes())
        assert again == entry and again.to_bytes() == entry.to_bytes()
        checked.append(entry.to_bytes())
        return again

    h.feed(("signals", signal("a", T0 + 90 * S)))
    assert check("a").resolved is not None and check("a").signal is not None
    h.feed(("outcomes", outcome("ghost", T0 + 91 * S)))
    assert check("ghost").orphan is not None
    h.feed(("outcomes", outcome("a", T0 + 95 * S)))
    assert check("a").final  # reduced to what duplicate detection needs
    assert len(set(checked)) == 3  # a pending signal, an orphan-to-be, a final entry


def test_assign_keeps_held_partitions_drops_given_away_ones_and_loads_new_ones() -> None:
    """A rebalance: the join holds exactly the partitions assigned, new ones from the table."""
    h = Harness(partitions=1)
    warm(h)
    for p in range(3):
        h.join([h.msg("signals", signal(f"p{p}", T0 + 90 * S), p, key=b"BTC")])
    table = dict(h.table)
    assert {e.route for e in h.joiner.entries.values()} == {0, 1, 2}
    worker = Harness(partitions=1).joiner
    worker.market = h.market
    assert worker.assign(table.items(), h.now, {0, 1}) == 2
    assert set(worker.entries) == {"p0", "p1"}
    kept = worker.entries["p0"]
    assert worker.assign(table.items(), h.now, {0, 2}) == 1  # p1 given away, p2 new
    assert set(worker.entries) == {"p0", "p2"} and worker.entries["p0"] is kept
    assert {lane[0] for lane in worker.clocks} == {0, 2}
    # Writes after the rebalance continue the record log of the held partitions.
    worker.handle([], h.now)
    assert all(key.startswith(b"e:") or key.startswith(b"\x00clock") for _, key, _ in worker.tick(h.now).writes)
