"""The broker stopped for 10 s and restarted: clients report the outage, components come back by themselves.

Each test runs its own Tansu on a fixed port (the session's broker must stay up for other tests) and
stops it under running clients. Tansu keeps everything in memory (DESIGN.md section 3), so a restart
loses topics, offsets, groups and producer ids: the tests recreate the topics after the restart (as
an operator would) and test the clients' behaviour, not the broker's durability.

One Tansu gap shapes them: a restarted Tansu rejects every produce of an idempotent producer id it
handed out before the restart (UNKNOWN_PRODUCER_ID, even for sequence 0, where Kafka accepts a
producer it does not know). librdkafka answers with a local epoch bump and retries until the records
time out, so such a client never delivers again. The first test reproduces this with plain
confluent-kafka clients; the tests that need a client to deliver again after the restart are marked
with it until :class:`streams.kafka.producer.EventProducer` replaces a client that timed out or failed
fatally (docs/reliability.md).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, Message, Producer
from typer.testing import CliRunner

from streams.errors import BrokerError, DeliveryError
from streams.kafka.admin import create_topics
from streams.kafka.broker import EmbeddedBroker, free_port
from streams.kafka.producer import EventProducer
from streams.sdk import EngineClient, SizeTimeoutError
from streams.settings import Settings
from streams.topics import TRADES
from tests.kit.cli_apps import status_app
from tests.kit.components import ROOT, component_env, spawn, stop_child, wait_until
from tests.kit.inference.harness import ENGINE_VALUES, publish
from tests.kit.inference.model_factory import sizer_update
from tradeloop.commands import status as status_command

pytestmark = [pytest.mark.integration, pytest.mark.faults]

OUTAGE_S = 10.0

TANSU_FORGETS_PRODUCER_IDS = (
    "Tansu 0.6 keeps producer ids in memory: after a restart it answers UNKNOWN_PRODUCER_ID to every "
    "produce of an idempotent client it knew (reproduced with plain clients in "
    "test_tansu_forgets_idempotent_producer_ids_across_a_restart); recovery needs EventProducer to "
    "replace a client whose records time out (docs/reliability.md)"
)

REQUEST = {
    "strategy": "momentum_fast",
    "symbol": "SYM",
    "side": "BUY",
    "score": 0.6,
    "features": ENGINE_VALUES,
}


@pytest.fixture()
def broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A private embedded broker on a fixed port, for a test to stop and restart."""
    if os.environ.get("TRADELOOP_KAFKA_BOOTSTRAP"):
        pytest.skip("stops and restarts the embedded broker; an external cluster is not ours to stop")
    running = EmbeddedBroker(port=free_port(), log_path=tmp_path / "tansu.log").start()
    yield running
    running.stop(timeout=2.0)  # Tansu lingers ~5 s on SIGTERM while clients are connected


@pytest.fixture()
def outage_settings(broker: EmbeddedBroker, tmp_path: Path) -> Settings:
    settings = Settings(
        kafka_bootstrap=broker.bootstrap, topic_prefix="outage.", partitions=3, data_dir=tmp_path / "data",
        metrics_enabled=False, session_timeout_ms=6000, heartbeat_interval_ms=1000,
    )  # fmt: skip
    create_topics(settings)
    return settings


def restart(broker: EmbeddedBroker, settings: Settings) -> float:
    """Start the stopped broker again on its port and recreate the topics it forgot. Returns when."""
    broker.start()
    create_topics(settings)
    return time.monotonic()


def trade(i: int) -> dict[str, Any]:
    return {"event_id": f"t{i}", "ts": time.time_ns() // 1000, "symbol": "BTC", "price": 100.0 + i,
            "size": 1.0, "side": "BUY"}  # fmt: skip


def status_json(settings: Settings) -> tuple[int, dict[str, Any]]:
    """``tradeloop status --json --window 0``: its exit code and its JSON."""
    result = CliRunner().invoke(status_app(settings), ["status", "--json", "--window", "0"])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, json.loads(result.stdout)


def components(data: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """component -> (component id, state) from a status JSON."""
    return {c["component"]: (c["component_id"], c["state"]) for c in data["components"]}


# -- the broker gap, with plain clients --------------------------------------------------------------


def test_tansu_forgets_idempotent_producer_ids_across_a_restart(
    broker: EmbeddedBroker, outage_settings: Settings
) -> None:
    """Plain confluent-kafka: after a restart the idempotent client never delivers, the plain one does.

    When this test fails, Tansu keeps producer ids across restarts (or accepts unknown ones at
    sequence 0 as Kafka does), and ``EventProducer``'s client renewal is no longer needed for it.
    """
    topic = outage_settings.topic(TRADES)
    acked: dict[str, list[int]] = {"idempotent": [], "plain": []}
    failed: dict[str, list[int]] = {"idempotent": [], "plain": []}

    def report(name: str) -> Callable[[KafkaError | None, Message], None]:
        def on_delivery(error: KafkaError | None, message: Message) -> None:
            (acked if error is None else failed)[name].append(int(message.value() or b"0"))

        return on_delivery

    clients = {
        name: Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": name == "idempotent",
                        "acks": "all", "linger.ms": 0, "message.timeout.ms": 6000, "log_level": 0})
        for name in acked
    }  # fmt: skip
    for name, client in clients.items():
        client.produce(topic, key=b"k", value=b"1", on_delivery=report(name))
        assert client.flush(10) == 0 and acked[name] == [1], (name, failed[name])
    broker.stop()
    restart(broker, outage_settings)
    for name, client in clients.items():
        client.produce(topic, key=b"k", value=b"2", on_delivery=report(name))
    for client in clients.values():
        client.flush(10)
    assert acked["plain"] == [1, 2]
    assert acked["idempotent"] == [1] and failed["idempotent"] == [2]  # timed out, never accepted


# -- producers and the SDK during the outage -------------------------------------------------------


def test_producers_and_the_sdk_report_the_outage_instead_of_hanging(
    broker: EmbeddedBroker, outage_settings: Settings
) -> None:
    settings = outage_settings
    producer = EventProducer(settings, "outage-producer", config={"message.timeout.ms": 5000})
    engine = EngineClient(settings, client_id="outage-engine")
    try:
        producer.send(TRADES, "BTC", trade(0))
        producer.flush(10.0)
        engine.trade("BTC", price=100.0, size=1.0, side="BUY")
        engine.flush(10.0)
        with pytest.raises(SizeTimeoutError):  # no inference worker: the timeout path itself works
            engine.request_size("before", timeout=0.5, **REQUEST)
        assert producer.broker_down_since is None

        broker.stop()
        down = time.monotonic()
        producer.send(TRADES, "BTC", trade(1))
        started = time.monotonic()
        with pytest.raises(DeliveryError, match="unacknowledged"):
            producer.flush(3.0)
        assert time.monotonic() - started < 4.0
        assert producer.broker_down_since is not None and producer.broker_down_since >= down - 1.0
        assert producer.last_error is not None

        engine.trade("BTC", price=101.0, size=1.0, side="BUY")
        started = time.monotonic()
        with pytest.raises(DeliveryError):
            engine.flush(3.0)
        assert time.monotonic() - started < 4.0
        started = time.monotonic()
        with pytest.raises(SizeTimeoutError):
            engine.request_size("during", timeout=2.0, **REQUEST)
        assert time.monotonic() - started < 3.0

        # `tradeloop status` cannot read the bus: it fails as a probe would need it to, promptly.
        started = time.monotonic()
        with pytest.raises(BrokerError):
            status_command.take_status(settings, window=0)
        assert time.monotonic() - started < 15.0
        # The records produced during the outage time out and are counted, never dropped silently.
        assert wait_until(lambda: producer.poll(0.2) >= 0 and producer.failed >= 1, 8.0)
    finally:
        broker.stop()
    with pytest.raises(DeliveryError):  # closing says what it could not deliver, after its timeout
        engine.close(1.0)


def test_the_same_producer_delivers_again_after_the_broker_returns(
    broker: EmbeddedBroker, outage_settings: Settings
) -> None:
    settings = outage_settings
    producer = EventProducer(settings, "comeback-producer", config={"message.timeout.ms": 5000})
    reports: dict[int, str | None] = {}  # record number -> None (acknowledged) or the error's name

    def send(i: int) -> None:
        def on_delivery(error: KafkaError | None, message: Message) -> None:
            reports[i] = None if error is None else error.name()

        producer.send(TRADES, "BTC", trade(i), on_delivery=on_delivery)

    send(0)
    producer.flush(10.0)
    broker.stop()
    send(1)
    with pytest.raises(DeliveryError):
        producer.flush(2.0)
    time.sleep(OUTAGE_S - 2.0)
    restart(broker, settings)
    sent = 2

    def delivers() -> bool:
        nonlocal sent
        send(sent)
        sent += 1
        producer.poll(0.3)
        return any(reports.get(i, "") is None for i in range(2, sent))

    assert wait_until(delivers, 25.0, interval=0.2), producer.last_error
    # What the producer could not deliver is reported (the outage's records time out), never lost
    # silently: every record gets a report, and from the first acknowledged one on, all succeed.
    with pytest.raises(DeliveryError, match="failed delivery"):
        producer.flush(10.0)
    assert sorted(reports) == list(range(sent))
    acked = [reports[i] is None for i in range(sent)]
    first = acked.index(True, 1)
    assert acked == [True] + [False] * (first - 1) + [True] * (sent - first), reports
    send(sent)
    producer.flush(10.0)
    assert reports[sent] is None


# -- running components ---------------------------------------------------------------------------


def test_components_turn_unhealthy_then_recover_without_a_restart(
    broker: EmbeddedBroker, outage_settings: Settings, tmp_path: Path
) -> None:
    """An inference worker and the trainer, as processes: UP, unreachable, then UP again by themselves."""
    settings = outage_settings
    publish(settings, sizer_update("v1", settings.signing_key(), constant=1.3))
    env = component_env(settings, TRADELOOP_INFERENCE__HEARTBEAT_INTERVAL_SECONDS="1.0")
    began = time.monotonic()
    children = {
        "inference": spawn(["infer"], env, tmp_path / "inference.log"),
        "trainer": spawn(["trainer"], env, tmp_path / "trainer.log"),
    }
    try:
        seen: dict[str, tuple[str, str]] = {}

        def both_up() -> bool:
            nonlocal seen
            _, data = status_json(settings)
            seen = components(data)
            return {name: state for name, (_, state) in seen.items()} == {"inference": "UP", "trainer": "UP"}

        assert wait_until(both_up, 90.0, interval=1.0), seen
        print(f"both UP {time.monotonic() - began:.1f}s after start")
        ids = {name: ident for name, (ident, _) in seen.items()}
        with EngineClient(settings, client_id="engine-before") as engine:
            before = engine.request_size("before", timeout=10.0, **REQUEST)
        assert before.model_version == "v1" and before.worker_id == ids["inference"]

        broker.stop()
        stopped = time.monotonic()
        # The probe during the outage: `tradeloop status --json` exits non-zero, it does not hang.
        probe = subprocess.run(
            [sys.executable, "-m", "tradeloop", "status", "--json", "--window", "0"],
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert probe.returncode == 1 and "broker" in probe.stderr.lower(), probe.stderr[-500:]
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - stopped)))
        assert all(child.poll() is None for child in children.values()), "a component died in the outage"

        restarted = restart(broker, settings)
        code, data = status_json(settings)
        assert code == 1 and not data["healthy"]  # every heartbeat went with the broker's memory

        assert wait_until(both_up, 40.0, interval=1.0), (seen, time.monotonic() - restarted)
        recovered = time.monotonic() - restarted
        # The same processes (component ids carry the pid), not replacements.
        assert {name: ident for name, (ident, _) in seen.items()} == ids
        with EngineClient(settings, client_id="engine-after") as engine:
            after = engine.request_size("after", timeout=15.0, **REQUEST)
        # Still the model loaded before the outage, though the model-updates topic is empty now.
        assert after.model_version == "v1" and after.worker_id == ids["inference"] and not after.fallback
        print(f"components UP again {recovered:.1f}s after the broker returned")
    finally:
        stopping = time.monotonic()
        for child in children.values():  # both at once: each may wait on its final flushes
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        codes = {name: stop_child(child, timeout=20.0) for name, child in children.items()}
        print(f"stopped in {time.monotonic() - stopping:.1f}s")
    assert codes == {"inference": 0, "trainer": 0}, codes
