"""``--json`` of the list commands that read the bus: ``topics list`` and ``control versions``."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from streams.heartbeat import Heartbeater
from streams.kafka.producer import EventProducer
from streams.settings import Settings
from streams.topics import ALL_TOPICS
from tests.kit.cli_apps import cli_app
from tradeloop.commands import infer as infer_command
from tradeloop.commands import topics as topics_command

pytestmark = pytest.mark.integration


def test_topics_list_json(settings: Settings) -> None:
    runner = CliRunner()
    missing = runner.invoke(cli_app(settings, topics_command), ["topics", "list", "--json"])
    assert missing.exit_code == 1  # nothing created under this prefix yet
    assert not any(t["exists"] for t in json.loads(missing.stdout)["topics"])
    assert runner.invoke(cli_app(settings, topics_command), ["topics", "create"]).exit_code == 0
    result = runner.invoke(cli_app(settings, topics_command), ["topics", "list", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["bootstrap"] == settings.bootstrap
    assert {t["name"] for t in document["topics"]} == {settings.topic(t.name) for t in ALL_TOPICS}
    assert all(t["exists"] and t["partitions"] >= 1 for t in document["topics"])


def test_control_versions_json(topics: Settings) -> None:
    producer = EventProducer(topics, "test-heartbeats")
    beat = Heartbeater(
        topics, "inference", ident="inference-test-1", info=lambda: {"sizer": "v0003-x"}, producer=producer
    )
    beat.start()
    producer.flush(10.0)  # on the topic before the command reads it
    try:
        result = CliRunner().invoke(
            cli_app(topics, infer_command), ["control", "versions", "--json", "--timeout", "5"]
        )
    finally:
        beat.stop()
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"workers": {"inference-test-1": {"sizer": "v0003-x"}}}
