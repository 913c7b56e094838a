"""Engine SDK against the embedded broker: produce -> consume -> decode for every event type."""

from __future__ import annotations

import contextlib
import threading
import time
from itertools import pairwise

import pytest
from confluent_kafka import Consumer, TopicPartition

from streams.avro.batches import to_rows
from streams.avro.codec import Codec
from streams.config.batching import BatchingSettings
from streams.errors import DeliveryError, SchemaEncodeError
from streams.kafka.producer import EventProducer
from streams.sdk import EngineClient, SizeTimeoutError, StrategyWeights
from streams.settings import Settings
from streams.topics import ALL_TOPICS, SIZING_DECISIONS, SIZING_REQUESTS, STRATEGY_WEIGHTS
from tests.kit import spec_reference
from tests.kit.records import SAMPLES

pytestmark = pytest.mark.integration


def read_all(settings: Settings, topic: str, expected: int, timeout: float = 15.0) -> list:
    """Every message of a topic, read with a plain confluent-kafka consumer (no tradeloop code)."""
    full = settings.topic(topic)
    consumer = Consumer(
        {"bootstrap.servers": settings.bootstrap, "group.id": "reader", "enable.auto.commit": False}
    )
    partitions = consumer.list_topics(full, timeout=10).topics[full].partitions
    consumer.assign([TopicPartition(full, p, 0) for p in partitions])
    messages: list = []
    deadline = time.monotonic() + timeout
    while len(messages) < expected and time.monotonic() < deadline:
        messages.extend(m for m in consumer.consume(1000, 0.5) if m.error() is None)
    consumer.close()
    return messages


def test_every_event_type_round_trips_through_the_broker(topics: Settings) -> None:
    codec = Codec()
    with EventProducer(topics, "test") as producer:
        for spec in ALL_TOPICS:
            producer.send(spec.name, "k", SAMPLES[spec.name])
    for spec in ALL_TOPICS:
        (message,) = read_all(topics, spec.name, 1)
        assert message.key() == b"k"
        assert codec.decode(spec.name, message.value()) == SAMPLES[spec.name]


def events_of(settings: Settings, topic: str, messages: list) -> list[tuple[int, dict]]:
    """(partition, event) of every event in ``messages``, batch records unpacked, in order."""
    codec = Codec()
    out = []
    for message in messages:
        record, batch = codec.decode_any(topic, message.value())
        out += [(message.partition(), r) for r in (to_rows(topic, record) if batch else [record])]
    return out


def test_sdk_places_keys_where_kafkas_default_partitioner_does(topics: Settings) -> None:
    """The partitioning contract, checked against murmur2 written from Kafka's Java client."""
    symbols = [f"SYM-{i}" for i in range(60)]
    unbatched = topics.model_copy(update={"batching": BatchingSettings(enabled=False)})
    with EngineClient(unbatched, client_id="engine-p") as engine:
        for symbol in symbols:
            engine.trade(symbol, price=10.0, size=1.0, side="BUY")
    messages = read_all(topics, "trades", len(symbols))
    assert len(messages) == len(symbols)
    placed = {m.key(): m.partition() for m in messages}
    assert placed == {
        s.encode(): spec_reference.kafka_partition(s.encode(), topics.partitions) for s in symbols
    }
    assert len(set(placed.values())) == topics.partitions  # a constant partitioner would not pass


def test_sdk_batches_events_per_partition_in_order(topics: Settings) -> None:
    symbols = [f"SYM-{i}" for i in range(30)]
    settings = topics.model_copy(update={"batching": BatchingSettings(linger_ms=50, max_events=400)})
    with EngineClient(settings, client_id="engine-b") as engine:
        for i in range(3000):
            engine.trade(symbols[i % 30], price=100.0 + i, size=1.0, side="BUY", ts=1_000_000 + i)
    events = events_of(topics, "trades", read_all(topics, "trades", 8))
    assert len(events) == 3000
    messages = read_all(topics, "trades", 8)
    assert len(messages) < 3000 / 50, "events travel many to a record"
    for message in messages:
        record, batch = Codec().decode_any("trades", message.value())
        assert batch and len(record["symbol"]) <= 400
        assert message.key() == record["symbol"][0].encode()  # the first event's key
    for partition, event in events:  # every event sits on its own key's partition
        assert partition == spec_reference.kafka_partition(event["symbol"].encode(), topics.partitions)
    for symbol in symbols:  # and each symbol's events keep the order they were made in
        ts = [e["ts"] for _, e in events if e["symbol"] == symbol]
        assert ts == sorted(ts) and len(ts) == 100


def test_batches_of_one_partition_leave_in_order_when_the_linger_thread_races_a_full_batch(
    topics: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The linger thread sends the partial batch of each pause; its encoding is slowed so that the
    # caller fills and closes the partition's next batch meanwhile. That batch must not leave first
    # (one that did once turned outcomes into late ones and their experiences into corrections).
    settings = topics.model_copy(update={"batching": BatchingSettings(linger_ms=1, max_events=50)})
    n = 5_000
    with EngineClient(settings, client_id="engine-race") as engine:
        codec = engine._producer.codec
        encode = codec.encode_batch

        def slow_on_the_linger_thread(topic: str, columns: dict) -> bytes:
            if threading.current_thread().name == "sdk-batcher":
                time.sleep(0.004)  # releases the interpreter to the caller
            return encode(topic, columns)

        monkeypatch.setattr(codec, "encode_batch", slow_on_the_linger_thread)
        for i in range(n):
            engine.trade("ONE", price=100.0, size=1.0, side="BUY", ts=1_000_000 + i)
            if i % 137 == 136:
                time.sleep(0.003)  # a pause between bursts: the open batch lingers out
        batcher = engine._batcher
    records = batcher.records_sent  # after close(): the last open batches are sent too
    events = events_of(topics, "trades", read_all(topics, "trades", records, timeout=30))
    ts = [e["ts"] for _, e in events]
    assert len(ts) == n
    assert records > n / 50, "some batches left on the linger thread before they were full"
    overtaken = sum(1 for a, b in pairwise(ts) if b < a)
    assert overtaken == 0, f"{overtaken} places where a later batch overtook an earlier one"


def test_sdk_sends_a_lone_event_after_the_linger_without_a_flush(topics: Settings) -> None:
    settings = topics.model_copy(update={"batching": BatchingSettings(linger_ms=20)})
    engine = EngineClient(settings, client_id="engine-l")
    try:
        engine.trade("LONE", price=1.0, size=1.0, side="SELL")
        started = time.monotonic()
        (message,) = read_all(topics, "trades", 1, timeout=10)
        assert time.monotonic() - started < 5
        assert events_of(topics, "trades", [message])[0][1]["symbol"] == "LONE"
    finally:
        engine.close()


def test_sdk_rejects_a_bad_event_in_the_call_that_made_it(topics: Settings) -> None:
    with EngineClient(topics, client_id="engine-x") as engine:
        with pytest.raises(SchemaEncodeError, match="price"):
            engine.trade("X", price="1.0", size=1.0, side="BUY")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="side"):
            engine.outcome("s", symbol="X", strategy="a", side="LONG", entry_price=1.0, exit_price=1.1,
                           size_multiplier=1.0, fees=0.0)  # fmt: skip
        engine.trade("X", price=1.0, size=1.0, side="BUY")
    assert len(events_of(topics, "trades", read_all(topics, "trades", 1))) == 1


def test_engine_client_produces_trades_signals_outcomes(topics: Settings) -> None:
    with EngineClient(topics, client_id="engine-a") as engine:
        engine.trade("ETH-USD", price=3000.0, size=1.5, side="SELL")
        engine.signal("sig-9", strategy="momentum_1", family="momentum", symbol="ETH-USD", side="BUY",
                      price=3000.0, score=0.9, features={"eng_momentum": 0.5}, horizon_seconds=60)  # fmt: skip
        engine.outcome("sig-9", symbol="ETH-USD", strategy="momentum_1", entry_price=3000.0, exit_price=3030.0,
                       size_multiplier=2.0, fees=1.0, side="BUY", notional=1000.0)  # fmt: skip
    (trade,) = read_all(topics, "trades", 1)
    assert trade.key() == b"ETH-USD" and events_of(topics, "trades", [trade])[0][1]["side"] == "SELL"
    (signal,) = read_all(topics, "signals", 1)
    assert signal.key() == b"ETH-USD", "signals are keyed by symbol, beside their trades"
    assert events_of(topics, "signals", [signal])[0][1]["features"] == {"eng_momentum": 0.5}
    (outcome,) = read_all(topics, "outcomes", 1)
    record = events_of(topics, "outcomes", [outcome])[0][1]
    assert record["side"] == "BUY"
    # 1% gross on 2x size with 1.0 fee on 2000 notional: 0.01 - 0.0005 per unit.
    assert record["return_unit"] == pytest.approx(0.0095)
    assert record["pnl"] == pytest.approx(0.0095 * 2000.0)


def _answer_requests(settings: Settings, stop: threading.Event) -> None:
    """A minimal responder (plain clients) standing in for the inference worker in this SDK test."""
    from streams.kafka.consumer import EventConsumer

    with EventConsumer(settings, "responder") as consumer, EventProducer(settings, "responder") as producer:
        consumer.assign_all([SIZING_REQUESTS])
        while not stop.is_set():
            for message in consumer.poll_batch(100, 0.05):
                request = consumer.decode(message)
                producer.send(SIZING_DECISIONS, request["signal_id"], {
                    "event_id": "d-" + request["signal_id"], "ts": request["ts"],
                    "signal_id": request["signal_id"], "client_id": request["client_id"],
                    "request_ts": request["ts"], "multiplier": 1.5, "model_name": "rule", "model_version": None,
                    "fallback": True, "fallback_reason": "no_model", "latency_us": 10, "worker_id": "resp",
                })  # fmt: skip
                producer.poll(0)


def test_request_size_and_timeout(topics: Settings) -> None:
    stop = threading.Event()
    responder = threading.Thread(target=_answer_requests, args=(topics, stop), daemon=True)
    with EngineClient(topics, client_id="engine-b") as engine:
        with pytest.raises(SizeTimeoutError):
            engine.request_size("sig-early", strategy="s", symbol="X", side="BUY", score=0.9, features={},
                                timeout=0.3)  # fmt: skip
        responder.start()
        decision = engine.request_size("sig-1", strategy="s", symbol="X", side="BUY", score=0.9, features={},
                                       timeout=10.0)  # fmt: skip
        assert decision.multiplier == 1.5 and decision.fallback and decision.signal_id == "sig-1"
    stop.set()
    responder.join(5)


def test_subscribe_weights_receives_published_weights(topics: Settings) -> None:
    received: list[StrategyWeights] = []
    with EngineClient(topics, client_id="engine-c") as engine:
        engine.subscribe_weights(received.append)
        with EventProducer(topics, "pub") as producer:
            producer.send(STRATEGY_WEIGHTS, "main", SAMPLES["strategy-weights"])
        deadline = time.monotonic() + 10
        while not received and time.monotonic() < deadline:
            time.sleep(0.05)
    assert received and received[0].weights == {"a": 0.5, "b": 0.5} and received[0].fallback


def test_flush_reports_an_unreachable_broker_instead_of_hanging(tmp_path) -> None:
    from streams.kafka.broker import free_port

    dead = Settings(kafka_bootstrap=f"127.0.0.1:{free_port()}", metrics_enabled=False)
    producer = EventProducer(dead, "lonely", config={"message.timeout.ms": 1500})
    producer.send("trades", "X", SAMPLES["trades"])
    started = time.monotonic()
    with pytest.raises(DeliveryError):
        producer.flush(5.0)
    assert time.monotonic() - started < 6.0


def test_engine_flush_reports_batched_events_a_dead_broker_never_took(tmp_path) -> None:
    """Batched events keep the promise: acknowledged, or DeliveryError naming the events."""
    from streams.kafka.broker import free_port

    dead = Settings(kafka_bootstrap=f"127.0.0.1:{free_port()}", metrics_enabled=False)
    engine = EngineClient(dead, client_id="lonely-engine", producer_config={"message.timeout.ms": 1500})
    try:
        started = time.monotonic()
        for i in range(10):
            engine.trade(f"S{i}", price=1.0, size=1.0, side="BUY")
        assert time.monotonic() - started < 6.0, "a dead broker must not block the engine for long"
        with pytest.raises(DeliveryError, match="events"):
            engine.flush(5.0)
    finally:  # its client would otherwise retry the dead port for the rest of the session
        with contextlib.suppress(DeliveryError):
            engine.close(1.0)
