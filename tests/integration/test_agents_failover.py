"""Two stream workers share the partitions; one is killed and the other takes its partitions over.

The join must stay exactly-once in effect across the takeover (every (signal_id, revision) with the
bytes the pure handlers give, repeats only byte-identical), and the survivor reports how long the
takeover took: from the kill to the rebalance, and from the assignment to its state being restored.
``bench/failover.py`` measures the same with a table of 200,000 keys.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from pathlib import Path

import pytest

from streams.settings import Settings
from tests.kit.agents.scenario import build, expected, scenario_settings
from tests.kit.agents.worker import ExperienceCopies, WorkerProcess, wait_for
from tests.kit.engine import live_engine

pytestmark = [pytest.mark.integration, pytest.mark.faults]

LOADED = re.compile(r"state loaded ([\d.]+)s after the assignment of partitions \[([\d, ]*)\]")


def loads(worker: WorkerProcess) -> list[tuple[float, list[int]]]:
    """(recovery seconds, partitions) of every state load in the worker's log so far."""
    return [
        (float(m.group(1)), [int(p) for p in m.group(2).split(",") if p.strip()])
        for m in LOADED.finditer(worker.log())
    ]


def test_two_workers_share_partitions_and_the_survivor_takes_over_exactly_once(
    topics: Settings, tmp_path: Path
) -> None:
    agents = scenario_settings(app_id=f"pair-{uuid.uuid4().hex[:8]}", idle_expiry_seconds=45)
    settings = topics.model_copy(update={"agents": agents})
    assert settings.partitions >= 2, "two workers need at least two partitions to share"
    sc = build(n_signals=240, seed=5, partitions=settings.partitions)
    want = expected(sc, agents, settings.partitions).encoded()
    events = sorted(sc.trades + sc.joins, key=lambda e: e[2]["ts"]) + sc.late
    started = threading.Event()
    copies = ExperienceCopies(settings)
    victim = WorkerProcess(settings, tmp_path / "victim.log").start()
    survivor = WorkerProcess(settings, tmp_path / "survivor.log").start()
    producer = live_engine(settings, events, started)
    try:

        def shared() -> bool:  # both workers hold partitions, and between them all of them
            a, b = loads(victim), loads(survivor)
            return bool(a and b and a[-1][1] and b[-1][1]) and sorted(a[-1][1] + b[-1][1]) == list(
                range(settings.partitions)
            )

        wait_for(shared, 120, "both workers to share the partitions", lambda: time.sleep(0.2), survivor)
        held_before = loads(survivor)[-1][1]
        started.set()
        wait_for(
            lambda: len(copies) >= len(want) // 3, 120, "a third of the experiences", copies.poll, survivor
        )
        victim.kill()
        killed_at, kill_time, count_before = len(copies), time.monotonic(), len(loads(survivor))

        def took_over() -> bool:
            found = loads(survivor)
            return len(found) > count_before and found[-1][1] == list(range(settings.partitions))

        wait_for(took_over, 90, "the survivor to take every partition over", copies.poll, survivor)
        takeover_s = time.monotonic() - kill_time
        recovery_s = loads(survivor)[-1][0]
        wait_for(
            lambda: len(copies) >= len(want),
            150,
            "every experience after the takeover",
            copies.poll,
            survivor,
        )
        producer.join(30)
        time.sleep(2.0)  # a duplicate still in flight would show up now
        copies.poll()
    finally:
        copies.close()
        victim.stop()
        survivor.stop()
    assert 0 < len(held_before) < settings.partitions, "the survivor held only its share before the kill"
    assert killed_at < len(want), "the victim was killed mid-stream"
    repeats = copies.assert_exactly(want)
    print(
        f"kill at {killed_at}/{len(want)} experiences; survivor held {held_before} before; takeover "
        f"{takeover_s:.1f}s after the kill (state restore {recovery_s:.2f}s of it); repeated copies {repeats}"
    )
