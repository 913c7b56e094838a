"""Batch records through the pure handlers: same results as single records, one dead letter per bad event."""

from __future__ import annotations

import pytest

from agents.inputs import InputDecoder
from agents.market import Market
from agents.routing import Router
from agents.validate import Inbound
from streams.avro.batches import to_columns
from streams.config.agents import AgentSettings
from streams.deadletter import DeadLetter
from streams.kafka.partitioning import partition_for
from tests.kit.agents.badinputs import bad_batches
from tests.kit.agents.builders import CODEC, SECOND, T0, outcome, random_trades, signal, trade
from tests.kit.agents.harness import Harness

PARTITIONS = 3
BTC = partition_for(b"BTC", PARTITIONS)
NOW = T0 + 10**10


def batch_msg(
    topic: str, records: list[dict], offset: int, partition: int = BTC, key: bytes = b"BTC"
) -> Inbound:
    return Inbound(
        topic, f"t.{topic}", partition, offset, key, CODEC.encode_batch(topic, to_columns(topic, records))
    )


def test_batched_trades_give_the_same_features_and_snapshots_as_single_records() -> None:
    trades = random_trades(3000, seed=5)
    single, batched = Market(AgentSettings(), CODEC, PARTITIONS), Market(AgentSettings(), CODEC, PARTITIONS)
    one = single.handle([Inbound("trades", "t", BTC, i, b"BTC", CODEC.encode("trades", t)) for i, t in enumerate(trades)],
                        NOW)  # fmt: skip
    many = batched.handle([batch_msg("trades", trades[i : i + 700], i) for i in range(0, 3000, 700)], NOW)
    assert one.accepted == many.accepted == 3000 and not one.dead and not many.dead
    assert [CODEC.encode("features", r) for _, r in one.snapshots] == [
        CODEC.encode("features", r) for _, r in many.snapshots
    ]
    assert single.view("BTC").features.core() == batched.view("BTC").features.core()


@pytest.mark.parametrize(("topic", "reason", "key", "value", "index"), bad_batches(PARTITIONS),
                         ids=lambda v: str(v)[:20])  # fmt: skip
def test_a_bad_batch_or_bad_event_is_one_dead_letter_with_its_index(
    topic: str, reason: str, key: bytes, value: bytes, index: int | None
) -> None:
    msg = Inbound(topic, f"t.{topic}", BTC, 9, key, value)
    decoder = InputDecoder(CODEC, AgentSettings(), PARTITIONS)
    if topic == "trades":
        good, dead = decoder.trades([msg], NOW)
        count = len(good)
    else:
        events, dead = decoder.events([msg], NOW)
        count = len(events)
    [letter] = dead
    assert (letter.reason, letter.batch_index, letter.offset, letter.partition) == (reason, index, 9, BTC)
    if index is None:
        assert letter.raw == value and count == 0  # the whole record, its original bytes
    else:
        # The event alone, in its single-event encoding; the rest of the batch goes on.
        alone = CODEC.decode(topic, letter.raw)
        assert alone["event_id"].endswith(f"-{index}") and count == (4 if topic == "trades" else 2)
    record = letter.record("w", NOW)
    assert CODEC.decode("dead-letter", CODEC.encode("dead-letter", record))["batch_index"] == index


def test_dead_letter_ids_differ_per_event_of_one_batch() -> None:
    a = DeadLetter("validate", "t", 0, 5, None, b"", "non_finite", "x", 1).record("w", NOW)
    b = DeadLetter("validate", "t", 0, 5, None, b"", "non_finite", "x", 2).record("w", NOW)
    assert a["event_id"] != b["event_id"]


def test_an_oversized_batch_is_one_dead_letter() -> None:
    trades = [trade(f"o-{i}", T0 + i, "BTC") for i in range(11)]
    decoder = InputDecoder(CODEC, AgentSettings(max_batch_events=10), PARTITIONS)
    good, [letter] = decoder.trades([batch_msg("trades", trades, 0)], NOW)
    assert letter.reason == "batch_too_large" and letter.batch_index is None and len(good) == 0


def test_a_redelivered_batch_record_is_skipped_whole_and_duplicates_inside_are_caught() -> None:
    market = Market(AgentSettings(), CODEC, PARTITIONS)
    trades = [trade(f"r-{i}", T0 + i * SECOND, "BTC") for i in range(10)]
    first = market.handle([batch_msg("trades", trades, 3)], NOW)
    again = market.handle([batch_msg("trades", trades, 3)], NOW)
    later = market.handle([batch_msg("trades", [trades[4], trade("r-new", T0 + 20 * SECOND)], 4)], NOW)
    assert first.accepted == 10 and again.accepted == 0 and again.redelivered == 10 and not again.writes
    assert later.accepted == 1 and [(d.reason, d.batch_index) for d in later.dead] == [("duplicate", 0)]


def test_batched_signals_and_outcomes_join_like_single_records() -> None:
    runs = []
    for batched in (False, True):
        h = Harness(partitions=PARTITIONS)
        h.trades(T0, T0 + 400 * SECOND)
        sigs = [signal(f"s{i}", T0 + (60 + 5 * i) * SECOND, horizon=20) for i in range(30)]
        outs = [outcome(f"s{i}", T0 + (70 + 5 * i) * SECOND, return_unit=0.001 * i) for i in range(0, 30, 2)]
        if batched:
            msgs = [
                batch_msg("signals", sigs[:15], 0),
                batch_msg("outcomes", outs, 0),
                batch_msg("signals", sigs[15:], 1),
            ]
        else:
            msgs = [h.msg(t, r, BTC, key=b"BTC") for t, rs in (("signals", sigs[:15]), ("outcomes", outs),
                                                                 ("signals", sigs[15:])) for r in rs]  # fmt: skip
        h.join(msgs)
        h.tick(0)
        runs.append(h.encoded())
    assert runs[0] == runs[1]
    statuses = sorted(CODEC.decode("experiences", v)["status"] for v in runs[0].values())
    assert statuses.count("COMPLETE") == 15 and statuses.count("CENSORED") >= 10


def test_router_keeps_symbol_keyed_events_and_forwards_single_records_keyed_by_signal_id() -> None:
    decoder, router = InputDecoder(CODEC, AgentSettings(), PARTITIONS), Router(PARTITIONS)
    sid = next(f"x{i}" for i in range(100) if partition_for(f"x{i}".encode(), PARTITIONS) != BTC)
    away = partition_for(sid.encode(), PARTITIONS)
    msgs = [
        Inbound("signals", "t.signals", BTC, 0, b"BTC", CODEC.encode("signals", signal("k", T0))),
        Inbound("signals", "t.signals", away, 0, sid.encode(), CODEC.encode("signals", signal(sid, T0))),
        batch_msg("outcomes", [outcome("k", T0 + SECOND)], 1),
    ]
    events, dead = decoder.events(msgs, NOW)
    here, forwards = router.split(events)
    assert not dead and [e.record["signal_id"] for e in here] == ["k", "k"]
    [forward] = forwards
    assert (forward.partition, forward.key, forward.provenance.partition) == (BTC, sid.encode(), away)
    assert forward.value == msgs[1].value  # key and bytes unchanged


def test_a_key_that_is_neither_symbol_nor_signal_id_is_a_key_mismatch() -> None:
    msg = Inbound("outcomes", "t.outcomes", BTC, 0, b"nope", CODEC.encode("outcomes", outcome("k", T0)))
    events, [letter] = InputDecoder(CODEC, AgentSettings(), PARTITIONS).events([msg], NOW)
    assert not events and letter.reason == "key_mismatch" and letter.batch_index is None


def test_market_load_keeps_only_the_symbols_of_held_partitions() -> None:
    market = Market(AgentSettings(), CODEC, PARTITIONS)
    eth = partition_for(b"ETH", PARTITIONS)
    out = market.handle([batch_msg("trades", [trade("a", T0, "BTC")], 0),
                         batch_msg("trades", [trade("b", T0, "ETH")], 0, partition=eth, key=b"ETH")], NOW)  # fmt: skip
    table = {key: value for _, key, value in out.writes if value is not None}
    restored = Market(AgentSettings(), CODEC, PARTITIONS)
    restored.load(table.items(), partitions=[BTC])
    assert set(restored.symbols) == ({"BTC"} if eth != BTC else {"BTC", "ETH"})
