"""`tradeloop status` and the health monitor against the embedded broker: real heartbeats, real offsets."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import TopicPartition
from typer.testing import CliRunner

from streams.config.health import HealthSettings
from streams.errors import BrokerError
from streams.heartbeat import Heartbeater
from streams.kafka.broker import free_port
from streams.kafka.consumer import EventConsumer
from streams.kafka.offsets import OffsetReader
from streams.kafka.producer import EventProducer
from streams.settings import Settings
from streams.topics import DEAD_LETTER, HEARTBEATS, TRADES
from tests.kit.bus import wait_for_beats
from tests.kit.cli_apps import status_app
from tradeloop.commands import status as status_command
from tradeloop.ops.health import HealthMonitor, run_health_monitor
from tradeloop.ops.status_model import CONSUMERS

pytestmark = pytest.mark.integration


def trade(i: int) -> dict[str, object]:
    now = time.time_ns() // 1000
    return {"event_id": f"t{i}", "ts": now, "symbol": "BTC", "price": 100.0 + i, "size": 1.0, "side": "BUY"}


def produce_trades(settings: Settings, count: int, start: int = 0) -> None:
    with EventProducer(settings, "test-engine") as producer:
        for i in range(start, start + count):
            producer.send(TRADES, "BTC", trade(i))


def run_status(settings: Settings, *args: str) -> tuple[int, dict]:
    result = CliRunner().invoke(status_app(settings), ["status", "--json", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, json.loads(result.stdout)


def test_status_reports_up_and_down_and_exits_accordingly(topics: Settings) -> None:
    worker = Heartbeater(
        topics, "worker", ident="worker-a", interval=0.5, gauges=lambda: {"events_per_s": 12.0}
    )
    inference = Heartbeater(
        topics, "inference", ident="inference-a", interval=0.5, info=lambda: {"sizer": "v1"}
    )
    worker.start()
    inference.start()
    try:
        produce_trades(topics, 20)
        wait_for_beats(topics, "worker-a", "inference-a")
        code, data = run_status(topics, "--window", "1")
        states = {c["component_id"]: c["state"] for c in data["components"]}
        assert states == {"worker-a": "UP", "inference-a": "UP"}, data["reasons"]
        assert data["healthy"] is True and code == 0, data["reasons"]
        assert data["totals"]["trades"] == 20
        assert data["serving"] == [
            {
                "worker": "inference-a",
                "model": "sizer",
                "role": "serving",
                "version": "v1",
                "age_seconds": None,
            }
        ]

        # The inference worker dies without a goodbye: no more beats. 3 missed periods = 1.5 s.
        inference._stop.set()
        inference._thread.join()  # type: ignore[union-attr]
        time.sleep(2.0)
        produce_trades(topics, 5, start=20)
        code, data = run_status(topics, "--window", "0")
        states = {c["component_id"]: c["state"] for c in data["components"]}
        assert states == {"worker-a": "UP", "inference-a": "DOWN"}
        assert code == 1
        assert data["healthy"] is False
        assert any(r.startswith("inference-a (inference) is down") for r in data["reasons"]), data["reasons"]
    finally:
        worker.stop()


def test_status_table_renders_and_probe_fails_without_processes(topics: Settings) -> None:
    result = CliRunner().invoke(status_app(topics), ["status", "--window", "0"])
    assert result.exit_code == 1
    assert "UNHEALTHY" in result.stdout
    assert "no tradeloop process is running" in result.stdout


def stall_group(settings: Settings) -> tuple[str, EventConsumer]:
    """The Faust worker's group commits offset 5 on every partition, then stops consuming."""
    group = settings.agents.app_id
    consumer = EventConsumer(settings, group, "stalled-worker")
    full = settings.topic(TRADES)
    partitions = consumer.raw.list_topics(full, timeout=10).topics[full].partitions
    consumer.commit_offsets([TopicPartition(full, p, 5) for p in partitions])
    return group, consumer


def test_monitor_catches_a_consumer_that_stops_while_lag_grows(topics: Settings) -> None:
    limits = HealthSettings(stall_checks=3, stall_min_seconds=1.0, check_interval_seconds=0.5)
    produce_trades(topics, 60)
    group, consumer = stall_group(topics)
    monitor = HealthMonitor(topics, {}, ident="health-it", limits=limits)
    try:
        verdicts = []
        for round_ in range(4):
            produce_trades(topics, 30, start=100 + 30 * round_)
            verdicts.append(monitor.check_once().check(CONSUMERS))
            time.sleep(0.5)
        assert verdicts[0].ok and verdicts[1].ok, "two checks are too few to call a stall"
        assert [p.subject for p in verdicts[-1].problems] == [group]
        lag = next(g for g in monitor.last.groups if g.group == group)  # type: ignore[union-attr]
        assert lag.stalled and lag.lag["trades"] == 60 + 120 - 5  # one symbol: one partition
        assert monitor.stalled_groups() == [group]

        # The group commits again (it caught up): the stall clears at the next check.
        with OffsetReader(topics) as reader:
            ends = reader.end_offsets(TRADES)
        full = topics.topic(TRADES)
        consumer.commit_offsets([TopicPartition(full, p, o) for p, o in ends.items()])
        produce_trades(topics, 30, start=500)
        assert monitor.check_once().check(CONSUMERS).ok
    finally:
        monitor.close()
        consumer.close()


def test_status_picks_up_the_monitor_verdict_from_its_heartbeat(topics: Settings) -> None:
    limits = HealthSettings(stall_checks=3, stall_min_seconds=1.0, check_interval_seconds=0.5)
    produce_trades(topics, 30)
    group, consumer = stall_group(topics)
    stop = threading.Event()
    thread = threading.Thread(target=run_health_monitor, args=(topics, {}, stop), kwargs={"limits": limits})
    thread.start()
    try:
        deadline = time.monotonic() + 20
        stalled: list[str] = []
        while time.monotonic() < deadline and group not in stalled:
            produce_trades(topics, 10, start=int(time.monotonic() * 1000))
            code, data = run_status(topics, "--window", "0")
            stalled = [p["subject"] for p in data["checks"]["consumers"]["problems"]]
            time.sleep(0.3)
        assert stalled == [group], data["checks"]["consumers"]
        assert code == 1
        monitor = next(c for c in data["components"] if c["component"] == "health")
        assert monitor["state"] == "UP"
    finally:
        stop.set()
        thread.join(10)
        consumer.close()


def test_status_fails_loudly_when_the_broker_is_unreachable(tmp_path: Path) -> None:
    nowhere = Settings(kafka_bootstrap=f"127.0.0.1:{free_port()}", data_dir=tmp_path, metrics_enabled=False)
    started = time.monotonic()
    with pytest.raises(BrokerError, match=r"unavailable|cannot"):
        status_command.take_status(nowhere, window=0)
    assert time.monotonic() - started < 20


def test_undecodable_status_records_are_counted_not_dropped(topics: Settings) -> None:
    with EventProducer(topics, "garbage") as producer:
        producer.send_raw(HEARTBEATS, "x", b"\x00\x00\x00\x00\x01not avro")
        producer.send_raw(DEAD_LETTER, "y", b"\xc3\x01garbage")
    code, data = run_status(topics, "--window", "0")
    assert data["unreadable"] == {"heartbeats": 1, "dead-letter": 1}
    assert data["totals"]["heartbeats"] == 1 and code == 1
