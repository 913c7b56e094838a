"""Replay-store ingestion against the embedded broker: restart and crash without loss or duplicates."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from streams.avro.codec import Codec
from streams.settings import Settings
from streams.topics import DEAD_LETTER, EXPERIENCES
from tests.kit.trainers.records import make_record, produce_experiences
from trainers.store.ingest import Ingestor
from trainers.store.replay import ReplayStore

pytestmark = pytest.mark.integration

UNIQUE = 300  # signals: 280 complete, 20 censored of which 12 get a correction


def _stream() -> list[dict[str, Any]]:
    records = [make_record(i, ret=0.001 * ((i % 11) - 5)) for i in range(280)]
    records += [make_record(i, status="CENSORED") for i in range(280, 300)]
    records += [make_record(i, status="CORRECTION", revision=1, ret=0.004) for i in range(280, 292)]
    records += [make_record(i, ret=0.001 * ((i % 11) - 5)) for i in range(0, 280, 7)]  # 40 re-deliveries
    return records


def _assert_complete(settings: Settings, ends: dict[int, int]) -> None:
    with ReplayStore.open(settings.data_dir) as store:
        assert store.count() == UNIQUE
        assert store.count(trainable_only=True) == 280 + 12
        stats = store.stats()
        assert stats["censored"] == 8
        assert stats["by_status"] == {"COMPLETE": 280, "CENSORED": 8, "CORRECTION": 12}
        assert store.offsets(settings.topic(EXPERIENCES)) == ends
        rows = store.trainable()
        assert len(set(rows.signal_id)) == len(rows)


class _CrashBeforeCommit(Ingestor):
    """Stops committing to Kafka: what a crash between the store transaction and the commit leaves."""

    def _commit(self, offsets: dict[tuple[str, int], int]) -> None:
        return None


def test_restart_mid_stream_loses_and_duplicates_nothing(topics: Settings) -> None:
    ends = produce_experiences(topics, _stream(), garbage=2)
    with ReplayStore.open(topics.data_dir) as store:
        first = _CrashBeforeCommit(topics, store, "trainer-a")
        first.start()
        for _ in range(20):
            first.poll(max_messages=40, timeout=1.0)
            if store.count() >= 100:
                break
        stored_midway = store.count()
        first.close()
    assert 0 < stored_midway < UNIQUE

    with ReplayStore.open(topics.data_dir) as store:
        second = Ingestor(topics, store, "trainer-b")
        second.start()
        totals = second.drain(deadline=60)
        second.close()
    assert stored_midway + totals.inserted == UNIQUE  # every row inserted exactly once
    assert sum(totals.rejected.values()) + sum(first.totals.rejected.values()) == 2
    _assert_complete(topics, ends)

    # A third start reads nothing new: the store's offsets are at the end.
    with ReplayStore.open(topics.data_dir) as store:
        third = Ingestor(topics, store, "trainer-c")
        third.start()
        assert third.poll(timeout=2.0).messages == 0
        third.close()
    # Kafka's committed offsets match the store's (committed only after the rows were durable).
    consumer = Consumer({"bootstrap.servers": topics.bootstrap, "group.id": topics.trainer.group_id})
    topic = topics.topic(EXPERIENCES)
    committed = consumer.committed([TopicPartition(topic, p) for p in ends], timeout=10)
    consumer.close()
    assert {tp.partition: tp.offset for tp in committed} == ends


def test_dead_letters_carry_bad_bytes_with_a_reason(topics: Settings) -> None:
    produce_experiences(topics, [make_record(1)], garbage=1)
    bad_state = {**make_record(2), "state": [1.0, 2.0]}
    produce_experiences(topics, [bad_state])
    with ReplayStore.open(topics.data_dir) as store:
        ingestor = Ingestor(topics, store, "trainer-dl")
        ingestor.start()
        ingestor.drain(deadline=30)
        ingestor.close()
        assert store.count() == 1
        assert store.counters()["rejected:bad_magic"] == 1
        assert store.counters()["rejected:state_size"] == 1
    consumer = Consumer({"bootstrap.servers": topics.bootstrap, "group.id": "dl-reader"})
    topic = topics.topic(DEAD_LETTER)
    parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, 0) for p in parts])
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + 15
    while len(found) < 2 and time.monotonic() < deadline:
        found += [
            Codec().decode(DEAD_LETTER, m.value()) for m in consumer.consume(10, 0.5) if m.error() is None
        ]
    consumer.close()
    assert sorted(r["reason"] for r in found) == ["bad_magic", "state_size"]
    assert b"not avro at all" in [r["raw"] for r in found]


_CHILD = """
import sys, time
from streams.settings import Settings
from trainers.store.ingest import Ingestor
from trainers.store.replay import ReplayStore
settings = Settings()
store = ReplayStore.open(settings.data_dir)
ingestor = Ingestor(settings, store, "trainer-child")
ingestor.start()
while True:
    ingestor.poll(max_messages=15, timeout=0.5)
    print(store.count(), flush=True)
    time.sleep(0.05)
"""


@pytest.mark.faults
def test_sigkill_during_ingestion_loses_and_duplicates_nothing(topics: Settings) -> None:
    ends = produce_experiences(topics, _stream())
    env = {
        **os.environ,
        "TRADELOOP_KAFKA_BOOTSTRAP": topics.bootstrap,
        "TRADELOOP_TOPIC_PREFIX": topics.topic_prefix,
        "TRADELOOP_DATA_DIR": str(topics.data_dir),
        "TRADELOOP_METRICS_ENABLED": "false",
    }
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD], env=env, stdout=subprocess.PIPE, text=True,
        cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert child.stdout is not None
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = child.stdout.readline()
            if line and int(line) >= 120:
                break
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(10)
    with ReplayStore.open(topics.data_dir) as store:
        killed_at = store.count()
        assert 0 < killed_at < UNIQUE
        ingestor = Ingestor(topics, store, "trainer-after-kill")
        ingestor.start()
        ingestor.drain(deadline=60)
        ingestor.close()
    _assert_complete(topics, ends)
