"""The simulator against the embedded broker: counts, keys, decodability, determinism, pacing, CLI."""

from __future__ import annotations

import time
import uuid
from collections import Counter

import pytest
import typer
from typer.testing import CliRunner

from streams.kafka.admin import create_topics
from streams.kafka.partitioning import partition_for
from streams.settings import Settings
from streams.simulator import SimConfig, Simulator
from streams.simulator.runner import SIM_TOPICS, MissingTopicsError, run_simulation
from streams.topics import OUTCOMES, SIGNALS, TRADES
from tests.kit.bus import read_events
from tradeloop import cli
from tradeloop.commands import simulate

pytestmark = pytest.mark.integration


def decoded(settings: Settings, counts: dict[str, int]) -> dict[str, list[tuple[bytes | None, dict]]]:
    """(record key, event) of every event on each simulator topic, batch records unpacked."""
    return {t: [(e.key, e.event) for e in read_events(settings, t, counts[t])] for t in SIM_TOPICS}


def test_five_thousand_events_land_keyed_and_decodable(topics: Settings) -> None:
    counts = run_simulation(topics, events=5000, seed=1, speed="max", progress=False, metrics=False)
    assert sum(counts.values()) == 5000 and all(counts[t] > 0 for t in SIM_TOPICS)
    records = decoded(topics, counts)
    assert {t: len(r) for t, r in records.items()} == counts
    # Batch records are keyed by their first event's symbol; each event's symbol shares its partition.
    for topic in (TRADES, SIGNALS, OUTCOMES):
        events = read_events(topics, topic, counts[topic])
        assert all(partition_for(e.event["symbol"].encode(), topics.partitions) == e.partition for e in events)
        assert all(e.batched for e in events)
    assert len({r["event_id"] for t in SIM_TOPICS for _, r in records[t]}) == 5000


def test_same_seed_into_two_prefixes_gives_identical_records(topics: Settings) -> None:
    other = topics.model_copy(update={"topic_prefix": f"t{uuid.uuid4().hex[:10]}."})
    create_topics(other)
    counts = [
        run_simulation(target, events=3000, seed=7, speed="max", progress=False, metrics=False)
        for target in (topics, other)
    ]
    assert counts[0] == counts[1]
    first, second = decoded(topics, counts[0]), decoded(other, counts[1])
    for topic in SIM_TOPICS:  # the events; how they were cut into batch records depends on timing
        assert sorted((r for _, r in first[topic]), key=lambda r: r["event_id"]) == sorted(
            (r for _, r in second[topic]), key=lambda r: r["event_id"]
        )
    assert sum(len(first[t]) for t in SIM_TOPICS) == 3000


def test_backfill_writes_complete_pairs(topics: Settings) -> None:
    counts = run_simulation(topics, seed=2, backfill=300, progress=False, metrics=False)
    assert counts[SIGNALS] == counts[OUTCOMES] == 300
    records = decoded(topics, counts)
    signal_ids = {r["signal_id"] for _, r in records[SIGNALS]}
    assert signal_ids == {r["signal_id"] for _, r in records[OUTCOMES]} and len(signal_ids) == 300
    assert len(records[TRADES]) == counts[TRADES] > 300


def test_paced_run_follows_event_time_and_stops_after_duration(topics: Settings) -> None:
    started = time.monotonic()
    counts = run_simulation(topics, seed=3, speed="x20", duration=1.5, progress=False, metrics=False)
    elapsed = time.monotonic() - started
    assert 1.4 <= elapsed < 6.0
    stamps = sorted(r["ts"] for records in decoded(topics, counts).values() for _, r in records)
    assert len(stamps) == sum(counts.values()) > 0
    # 1.5 wall seconds at x20 cover about 30 s of event time, not the whole stream at once.
    assert 15.0 <= (stamps[-1] - stamps[0]) / 1e6 <= 32.0


def test_missing_topics_say_how_to_create_them(settings: Settings) -> None:
    with pytest.raises(MissingTopicsError, match="tradeloop topics create"):
        run_simulation(settings, events=10, progress=False, metrics=False)


def test_cli_simulate_prints_counts(topics: Settings) -> None:
    app = typer.Typer()
    app.callback()(cli._global)
    simulate.register(app)
    args = ["--bootstrap", topics.bootstrap, "--prefix", topics.topic_prefix, "simulate", "--events", "1000"]
    runner = CliRunner(env={"TRADELOOP_METRICS_ENABLED": "0"})
    result = runner.invoke(app, [*args, "--seed", "4", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "produced 1,000 events" in result.output
    # The CLI produced exactly what the library simulates for this seed.
    simulated = Counter(
        e.topic for e in Simulator(SimConfig.from_settings(topics.simulator, seed=4)).events(1000)
    )
    local = {t: simulated[t] for t in SIM_TOPICS}
    assert local[OUTCOMES] > 0
    assert {t: len(r) for t, r in decoded(topics, local).items()} == local
    backfill = runner.invoke(app, [*args[:5], "--backfill", "50", "--no-progress"])
    assert backfill.exit_code == 0, backfill.output
    assert "50 signal/outcome pairs" in backfill.output and "pairs/s" in backfill.output
    bad = runner.invoke(app, [*args[:5], "--speed", "fast", "--events", "1"])
    assert bad.exit_code != 0 and "speed must be" in str(bad.exception)
