"""Engine SDK against the embedded broker: produce -> consume -> decode for every event type."""

from __future__ import annotations

import threading
import time

import pytest
from confluent_kafka import Consumer, TopicPartition

from streams.codec import Codec
from streams.errors import DeliveryError
from streams.producer import EventProducer
from streams.sdk import EngineClient, SizeTimeoutError, StrategyWeights
from streams.settings import Settings
from streams.topics import ALL_TOPICS, SIZING_DECISIONS, SIZING_REQUESTS, STRATEGY_WEIGHTS
from tests.unit.streams import spec_reference
from tests.unit.streams.records import SAMPLES

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


def test_sdk_places_keys_where_kafkas_default_partitioner_does(topics: Settings) -> None:
    """The partitioning contract, checked against murmur2 written from Kafka's Java client."""
    symbols = [f"SYM-{i}" for i in range(60)]
    with EngineClient(topics, client_id="engine-p") as engine:
        for symbol in symbols:
            engine.trade(symbol, price=10.0, size=1.0, side="BUY")
    messages = read_all(topics, "trades", len(symbols))
    assert len(messages) == len(symbols)
    placed = {m.key(): m.partition() for m in messages}
    assert placed == {s.encode(): spec_reference.kafka_partition(s.encode(), topics.partitions) for s in symbols}
    assert len(set(placed.values())) == topics.partitions  # a constant partitioner would not pass


def test_engine_client_produces_trades_signals_outcomes(topics: Settings) -> None:
    with EngineClient(topics, client_id="engine-a") as engine:
        engine.trade("ETH-USD", price=3000.0, size=1.5, side="SELL")
        engine.signal("sig-9", strategy="momentum_1", family="momentum", symbol="ETH-USD", side="BUY",
                      price=3000.0, score=0.9, features={"eng_momentum": 0.5}, horizon_seconds=60)  # fmt: skip
        engine.outcome("sig-9", symbol="ETH-USD", strategy="momentum_1", entry_price=3000.0, exit_price=3030.0,
                       size_multiplier=2.0, fees=1.0, side="BUY", notional=1000.0)  # fmt: skip
    codec = Codec()
    (trade,) = read_all(topics, "trades", 1)
    assert trade.key() == b"ETH-USD" and codec.decode("trades", trade.value())["side"] == "SELL"
    (signal,) = read_all(topics, "signals", 1)
    assert codec.decode("signals", signal.value())["features"] == {"eng_momentum": 0.5}
    (outcome,) = read_all(topics, "outcomes", 1)
    record = codec.decode("outcomes", outcome.value())
    # 1% gross on 2x size with 1.0 fee on 2000 notional: 0.01 - 0.0005 per unit.
    assert record["return_unit"] == pytest.approx(0.0095)
    assert record["pnl"] == pytest.approx(0.0095 * 2000.0)


def _answer_requests(settings: Settings, stop: threading.Event) -> None:
    """A minimal responder (plain clients) standing in for the inference worker in this SDK test."""
    from streams.consumer import EventConsumer

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
    from streams.broker import free_port

    dead = Settings(kafka_bootstrap=f"127.0.0.1:{free_port()}", metrics_enabled=False)
    producer = EventProducer(dead, "lonely", config={"message.timeout.ms": 1500})
    producer.send("trades", "X", SAMPLES["trades"])
    started = time.monotonic()
    with pytest.raises(DeliveryError):
        producer.flush(5.0)
    assert time.monotonic() - started < 6.0
