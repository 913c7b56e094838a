"""The stream worker against the embedded broker: features, join cases, dead letters, idle expiry.

One worker process serves the whole scenario (startup and a consumer-group join cost seconds).
"""

from __future__ import annotations

import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from streams.features import STREAM_FEATURES
from streams.kafka.consumer import EventConsumer
from streams.kafka.producer import EventProducer
from streams.sdk import EngineClient
from streams.settings import Settings
from tests.kit.agents.badinputs import bad_batches, bad_inputs, duplicate_trade
from tests.kit.agents.builders import CODEC, SECOND, outcome, signal
from tests.kit.agents.reference import reference
from tests.kit.agents.scenario import LAST_TRADES, build, expected, scenario_settings
from tests.kit.agents.worker import WorkerProcess, wait_for
from tests.kit.engine import produce_events as produce

pytestmark = pytest.mark.integration

Got = list[tuple[bytes | None, bytes, dict[str, Any]]]


def worker_settings(topics: Settings, **agents: Any) -> Settings:
    section = scenario_settings(app_id=f"agents-{uuid.uuid4().hex[:8]}", **agents)
    return topics.model_copy(update={"agents": section})


def reader(settings: Settings, topics: list[str]) -> EventConsumer:
    consumer = EventConsumer(settings, f"reader-{uuid.uuid4().hex[:6]}")
    consumer.assign_all(topics)
    return consumer


def by_topic(consumer: EventConsumer, got: dict[str, Got]) -> None:
    for message in consumer.poll_batch(5000, timeout=0.2):
        topic = consumer.logical(message.topic() or "")
        got.setdefault(topic, []).append((message.key(), message.value() or b"", consumer.decode(message)))


def trade_arrays(records: list[dict[str, Any]]) -> tuple[np.ndarray, ...]:
    ts = np.maximum.accumulate(np.array([r["ts"] for r in records], dtype=np.int64))
    price = np.array([r["price"] for r in records])
    size = np.array([r["size"] for r in records])
    buy = np.array([1.0 if r["side"] == "BUY" else 0.0 for r in records])
    return ts, price, size, buy


def test_worker_end_to_end(topics: Settings, tmp_path: Path) -> None:
    settings = worker_settings(topics, idle_expiry_seconds=4)
    sc = build()
    want = expected(sc, scenario_settings(idle_expiry_seconds=4))
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    out = reader(settings, ["features", "experiences", "dead-letter", "allocation-periods", "heartbeats"])
    got: dict[str, Got] = {}

    def count(topic: str, pred: Any = lambda r: True) -> int:
        return sum(1 for _, _, r in got.get(topic, []) if pred(r))

    try:
        # Trades first, so every signal finds its features already computed.
        produce(settings, sc.trades)
        wait_for(lambda: count("features", lambda r: r["ts"] >= LAST_TRADES) >= 2, 90, "last snapshots",
                 lambda: by_topic(out, got), worker)  # fmt: skip
        produce(settings, sc.joins + sc.late)
        batches = bad_batches(settings.partitions)
        with EventProducer(settings, "test-bad") as producer:
            for topic, _, key, value in bad_inputs():
                producer.send_raw(topic, key, value)
            key, value = duplicate_trade()
            producer.send_raw("trades", key, value)
            producer.send_raw("trades", key, value)
            for topic, _, key, value, _ in batches:
                producer.send_raw(topic, key, value)
        n_expected, n_dead = len(want.experiences), len(want.dead) + len(bad_inputs()) + 1 + len(batches)
        wait_for(lambda: count("experiences") >= n_expected and count("dead-letter") >= n_dead,
                 60, "experiences and dead letters", lambda: by_topic(out, got), worker)  # fmt: skip

        # Join: exactly the pure handlers' records, byte for byte, and nothing twice.
        records = {(r["signal_id"], r["revision"]): v for _, v, r in got["experiences"]}
        assert len(got["experiences"]) == len(records), "no experience was produced twice"
        # The good signals of the bad batch join too (they expire: no outcome); the rest is the scenario.
        assert {k for k in records if k[0].startswith("bs-")} == {("bs-0", 0), ("bs-2", 0)}
        assert {k: v for k, v in records.items() if not k[0].startswith("bs-")} == want.encoded()
        statuses = Counter(r["status"] for _, _, r in got["experiences"] if not r["signal_id"].startswith("bs-"))
        # 60 signals in six patterns (40 complete, 10 censored, 10 censored then corrected), plus the
        # complete sentinels: per symbol one keyed by symbol and one per source partition.
        assert statuses == {"COMPLETE": 48, "CENSORED": 20, "CORRECTION": 10}
        assert all(k == r["signal_id"].encode() for k, _, r in got["experiences"])

        # Every class of bad input ends in the dead-letter topic with its reason and bytes.
        letters = [
            (r["topic"].removeprefix(settings.topic_prefix), r["reason"], r["raw"])
            for _, _, r in got["dead-letter"]
        ]
        for topic, reason, _, value in bad_inputs():
            assert (topic, reason, value) in letters, f"{topic}/{reason} missing from the dead letters"
        indexed = {(r["reason"], r["batch_index"]) for _, _, r in got["dead-letter"]}
        for _, reason, _, _, index in batches:
            assert (reason, index) in indexed, f"{reason} (batch index {index}) missing from the dead letters"
        reasons = Counter(reason for _, reason, _ in letters)
        assert reasons["duplicate"] == 10 + 1 and reasons["duplicate_outcome"] == 10

        # Features: the snapshots of BTC equal the numpy reference on the same trades.
        btc = [r for _, _, r in sc.trades if r["symbol"] == "BTC"]
        arrays = trade_arrays(btc)
        snaps = [r for _, _, r in got["features"] if r["symbol"] == "BTC"]
        assert len(snaps) > 400
        for snap in snaps[::25]:
            ref = reference(*arrays, snap["trade_count"] - 1)
            np.testing.assert_allclose(
                snap["values"], [ref[n] for n in STREAM_FEATURES], rtol=1e-9, atol=1e-12
            )

        # Wall-clock expiry on an idle stream, then a late outcome corrects it.
        idle_ts = LAST_TRADES + 60 * SECOND
        produce(settings, [("signals", "idle-1", signal("idle-1", idle_ts, horizon=1.0))])
        wait_for(lambda: count("experiences", lambda r: r["signal_id"] == "idle-1") >= 1, 40, "idle expiry",
                 lambda: by_topic(out, got), worker)  # fmt: skip
        [censored] = [r for _, _, r in got["experiences"] if r["signal_id"] == "idle-1"]
        assert censored["status"] == "CENSORED" and "features_lagging" in censored["validation_flags"]
        produce(settings, [("outcomes", "idle-1", outcome("idle-1", idle_ts + SECOND, 0.02))])
        wait_for(lambda: count("experiences", lambda r: r["signal_id"] == "idle-1") >= 2, 30, "correction",
                 lambda: by_topic(out, got), worker)  # fmt: skip
        idle = sorted(
            (r["revision"], r["status"]) for _, _, r in got["experiences"] if r["signal_id"] == "idle-1"
        )
        assert idle == [(0, "CENSORED"), (1, "CORRECTION")]

        # An engine reports a SELL signal's outcome as a BUY (the 0.1 SDK's silent default): the
        # experience is flagged and its reward has the SELL side's sign.
        flip_ts = LAST_TRADES + 90 * SECOND
        with EngineClient(settings, client_id="engine-flip") as engine:
            engine.signal("flip-1", strategy="strat-0", family="ema_cross", symbol="ETH", side="SELL", price=100.0,
                          score=0.6, features={}, horizon_seconds=30.0, ts=flip_ts)  # fmt: skip
            engine.outcome("flip-1", symbol="ETH", strategy="strat-0", side="BUY", entry_price=100.0,
                           exit_price=98.0, size_multiplier=1.0, fees=1.0, ts=flip_ts + SECOND)  # fmt: skip
        wait_for(lambda: count("experiences", lambda r: r["signal_id"] == "flip-1") >= 1, 40, "the flipped outcome",
                 lambda: by_topic(out, got), worker)  # fmt: skip
        [flip] = [r for _, _, r in got["experiences"] if r["signal_id"] == "flip-1"]
        assert flip["status"] == "COMPLETE" and "side_mismatch" in flip["validation_flags"]
        assert flip["return_unit"] == pytest.approx(0.02 - 0.001) and flip["pnl"] > 0  # SELL from 100 to 98

        # Allocation periods: the first two close by event time; their returns add up.
        wait_for(
            lambda: count("allocation-periods") >= 2,
            30,
            "allocation periods",
            lambda: by_topic(out, got),
            worker,
        )
        periods = sorted((r for _, _, r in got["allocation-periods"]), key=lambda r: r["period_start"])
        first = periods[0]
        assert first["strategies"] == sorted(first["strategies"]) and len(first["market"]) == 8
        assert len(first["portfolio_state"]) == 6 and len(first["regime"]) == 4
        # Which period a late experience lands in depends on how the join partitions interleave (it
        # counts in the oldest open period), so the exact sums are unit-tested; here: the totals.
        with_return = [r for _, r in want.experiences if r["return_unit"] is not None]
        assert 0 < sum(p["trades"] for p in periods) <= len(with_return)
        # Periods only name strategies of joined experiences (the scenario's, plus the default
        # strategy of the out-of-order cases, depending on which period they land in).
        assert set(first["strategies"]) <= {r["strategy"] for _, r in want.experiences}
        emitted = sum(sum(p["strategy_returns"]) for p in periods)
        assert abs(emitted) <= sum(abs(r["return_unit"]) for r in with_return)
        assert CODEC.decode("allocation-periods", CODEC.encode("allocation-periods", first)) == first

        # The worker publishes heartbeats with its key gauges.
        wait_for(lambda: count("heartbeats", lambda r: r["gauges"].get("events_in_total", 0) > 2400), 10,
                 "a heartbeat with the input count", lambda: by_topic(out, got), worker)  # fmt: skip
        beat = got["heartbeats"][-1][2]
        assert beat["component"] == "worker" and {"dead_letters_total", "pending_joins", "lag"} <= set(
            beat["gauges"]
        )
    finally:
        out.close()
        code = worker.stop()
    assert code == 0, worker.log()[-3000:]
