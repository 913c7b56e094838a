"""Determinism: replaying the same inputs into a fresh prefix reproduces the experiences byte for byte."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from streams.kafka.admin import create_topics
from streams.kafka.consumer import EventConsumer
from streams.settings import Settings
from tests.kit.agents.scenario import build, expected, scenario_settings
from tests.kit.agents.worker import WorkerProcess, wait_for
from tests.kit.engine import produce_events

pytestmark = pytest.mark.integration


def run_once(settings: Settings, events: list, n_experiences: int, n_snapshots: int, log: Path) -> tuple[dict, dict]:
    """Produce ``events`` (all before the worker starts), run a worker, return (experiences, snapshots)."""
    create_topics(settings)
    produce_events(settings, events)
    worker = WorkerProcess(settings, log).start()
    consumer = EventConsumer(settings, f"replay-reader-{uuid.uuid4().hex[:6]}")
    consumer.assign_all(["experiences", "features"])
    experiences: dict[tuple[str, int], bytes] = {}
    snapshots: dict[str, bytes] = {}
    copies = 0

    def poll() -> None:
        nonlocal copies
        for message in consumer.poll_batch(5000, timeout=0.2):
            record = consumer.decode(message)
            if "signal_id" in record:
                copies += 1
                experiences[(record["signal_id"], record["revision"])] = message.value() or b""
            else:
                snapshots[record["event_id"]] = message.value() or b""

    try:
        wait_for(lambda: len(experiences) >= n_experiences and len(snapshots) >= n_snapshots, 120,
                 "every experience and snapshot", poll, worker)  # fmt: skip
    finally:
        consumer.close()
        worker.stop()
    assert copies == len(experiences), "no duplicates in normal operation"
    return experiences, snapshots


def test_replay_into_a_fresh_prefix_reproduces_every_byte(settings: Settings, tmp_path: Path) -> None:
    sc = build(n_signals=48, seed=21)
    # Live-like order: trades, signals and outcomes interleaved by time in one stream of events.
    events = sorted(sc.trades + sc.joins, key=lambda e: e[2]["ts"]) + sc.late
    want = expected(sc, scenario_settings())
    n_experiences, n_snapshots = len(want.encoded()), len(want.snapshots)
    runs = []
    for run in range(2):
        prefix = f"r{uuid.uuid4().hex[:8]}."
        agents = scenario_settings(app_id=f"{prefix}agents")
        copy = settings.model_copy(update={"topic_prefix": prefix, "agents": agents})
        runs.append(run_once(copy, events, n_experiences, n_snapshots, log=tmp_path / f"worker-{run}.log"))
    (exp_a, snap_a), (exp_b, snap_b) = runs
    assert exp_a == exp_b
    assert snap_a == snap_b and len(snap_a) > 800
