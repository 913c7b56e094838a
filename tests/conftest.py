"""Shared fixtures: one embedded broker per test session, a fresh topic prefix per test.

With ``TRADELOOP_KAFKA_BOOTSTRAP`` set, integration tests run against that cluster instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.kafka.admin import create_topics
from streams.kafka.broker import EmbeddedBroker, free_port
from streams.settings import Settings


@pytest.fixture(scope="session")
def bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The bootstrap address of the session's broker (embedded Tansu unless configured)."""
    existing = os.environ.get("TRADELOOP_KAFKA_BOOTSTRAP")
    if existing:
        yield existing
        return
    log_path = tmp_path_factory.mktemp("broker") / "tansu.log"
    with EmbeddedBroker(port=free_port(), log_path=log_path) as broker:
        yield broker.bootstrap


@pytest.fixture()
def settings(bootstrap: str, tmp_path: Path) -> Settings:
    """Settings for one test: the session broker, a unique topic prefix, a private data dir.

    Topics are not created; use ``topics`` for that.
    """
    prefix = f"t{uuid.uuid4().hex[:10]}."
    return Settings(
        kafka_bootstrap=bootstrap,
        topic_prefix=prefix,
        partitions=3,
        data_dir=tmp_path / "data",
        metrics_enabled=False,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
    )


@pytest.fixture()
def topics(settings: Settings) -> Settings:
    """``settings`` with every tradeloop topic created under its prefix."""
    create_topics(settings)
    return settings


@pytest.fixture(autouse=True)
def _reset_client_log_levels() -> Iterator[None]:
    """The CLI quiets client libraries' loggers for the whole process; a test that ran the CLI in
    process must not hide those logs from the next test's ``caplog``."""
    import logging

    names = ("aiokafka", "librdkafka", "faust", "mode", "kafka")
    for name in names:
        logging.getLogger(name).setLevel(logging.NOTSET)
    yield
