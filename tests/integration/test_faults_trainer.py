"""The trainer process killed with SIGKILL in the middle of training, restarted, then stopped with SIGTERM.

tests/integration/test_trainer_replay.py already kills an ingesting process and
tests/integration/test_trainer_loop.py retries failed runs in-process; this test kills the real
``tradeloop trainer`` (Ray, the learner, the ingest thread and all) while a run is between PPO
iterations and experiences keep arriving, then checks that the next process resumes the same run
from its checkpoint instead of training again, that the replay store holds every experience once,
and that SIGTERM ends it with exit code 0 (Ray's own SIGTERM handler used to abort it: exit -6).
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from streams.settings import Settings
from streams.topics import EXPERIENCES
from tests.kit.components import component_env, spawn, wait_until
from tests.kit.trainers.records import bandit_records, make_record, produce_experiences
from tradeloop.ops.status_collect import BusReader
from trainers.registry import ModelRegistry
from trainers.run.state import RunDir
from trainers.store.replay import ReplayStore
from trainers.store.trainlog import TrainLog

pytestmark = [pytest.mark.integration, pytest.mark.faults]

ITERATIONS = 10
# A tiny PPO run (this tests crash recovery, not learning) whose iterations take 0.3 s to 2 s: enough
# of them that the kill lands mid-run on a fast idle machine too.
TINY = {
    "ITERATIONS": str(ITERATIONS), "TRAIN_BATCH_SIZE": "512", "MINIBATCH_SIZE": "256", "NUM_EPOCHS": "2",
    "NUM_ENVS": "8", "EPISODE_LEN": "32", "MIN_NEW_EXPERIENCES": "900", "MIN_TRAIN_ROWS": "200",
    "GATE_MARGIN": "-100", "CHECK_INTERVAL_SECONDS": "0.3", "BOOTSTRAP_SAMPLES": "200",
}  # fmt: skip
FIRST, LATE, REDELIVERED, CENSORED = 1000, 300, 50, 30  # experiences before, during the run, again


def current_run(settings: Settings) -> dict[str, Any] | None:
    """``run.json`` of the newest run directory (read while the trainer may be writing it)."""
    root = RunDir.root(settings.data_dir)
    paths = sorted(root.glob("*/run.json")) if root.is_dir() else []
    for path in reversed(paths):
        try:
            info: dict[str, Any] = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):  # replaced atomically, but the directory may be new
            continue
        return info
    return None


def session_pids(sid: int) -> list[int]:
    """Processes still in session ``sid`` (the killed trainer's Ray children would be)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:  # after "pid (comm)": state, ppid, pgrp, session
            found.append(int(stat.parent.name))
    return found


def test_sigkill_mid_training_resumes_the_run_and_stores_every_experience_once(
    topics: Settings, tmp_path: Path
) -> None:
    settings = topics
    env = component_env(settings, **{f"TRADELOOP_TRAINER__{k}": v for k, v in TINY.items()})
    ends: dict[int, int] = {}
    records, _ = bandit_records(FIRST)
    censored = [make_record(50_000 + i, status="CENSORED") for i in range(CENSORED)]
    produce_experiences(settings, records + censored, ends=ends)

    log_a = tmp_path / "trainer-a.log"
    first = spawn(["trainer"], env, log_a)
    try:
        assert wait_until(lambda: (current_run(settings) or {}).get("iterations_done", 0) >= 1, 150, 0.1), (
            log_a.read_text()[-3000:]
        )
        # Experiences keep arriving while the run trains: new signals, and re-deliveries of old ones.
        late = [
            make_record(FIRST + i, ret=r["return_unit"], state=r["state"])
            for i, r in enumerate(bandit_records(LATE, seed=1)[0])
        ]
        # Produced beside the wait, so that a producer's start-up cannot let the run finish first.
        producing = threading.Thread(
            target=produce_experiences, args=(settings, late + records[:REDELIVERED], 0, ends)
        )
        producing.start()
        assert wait_until(lambda: (current_run(settings) or {}).get("iterations_done", 0) >= 2, 60, 0.02)
        os.killpg(first.pid, signal.SIGKILL)  # the whole session: the driver and its Ray processes
        first.wait(10)
        killed_at = time.time_ns() // 1000
        producing.join(30)
        assert not producing.is_alive()
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(10)
    assert first.returncode == -signal.SIGKILL
    assert wait_until(lambda: not session_pids(first.pid), 10), f"left behind: {session_pids(first.pid)}"

    interrupted = current_run(settings)
    assert interrupted is not None and interrupted["status"] == "running"
    done = interrupted["iterations_done"]
    assert 2 <= done < ITERATIONS, interrupted
    run = RunDir(RunDir.root(settings.data_dir) / interrupted["run_id"])
    assert run.checkpoint.is_dir()

    log_b = tmp_path / "trainer-b.log"
    restarted_at = time.time_ns() // 1000
    second = spawn(["trainer"], env, log_b)
    try:
        assert wait_until(lambda: run.info()["status"] == "finished", 180, 0.2), log_b.read_text()[-3000:]
        # Everything produced is in the store before the trainer is stopped.
        with ReplayStore.open(settings.data_dir) as store:
            assert wait_until(lambda: store.offsets(settings.topic(EXPERIENCES)) == ends, 30), (
                store.offsets(settings.topic(EXPERIENCES)),
                ends,
            )
        second.send_signal(signal.SIGTERM)
        code = second.wait(60)
    finally:
        if second.poll() is None:
            os.killpg(second.pid, signal.SIGKILL)
            second.wait(10)
    output = log_b.read_text()
    assert code == 0, output[-3000:]
    for abort in ("SIGTERM received", "Traceback", "Aborted", "core dumped"):
        assert abort not in output, output[-3000:]

    # The same run finished after resuming: iterations up to the kill were not trained again.
    info = run.info()
    assert info["resumed"] is True and info["published"] is True and info["iterations_done"] == ITERATIONS
    iterations = TrainLog.open(settings.data_dir).iterations(info["run_id"])
    assert [i["iteration"] for i in sorted(iterations, key=lambda i: i["iteration"])] == list(
        range(1, ITERATIONS + 1)
    )
    for it in iterations:
        if it["iteration"] <= done:
            assert it["ts_us"] < killed_at, it
        else:
            assert it["ts_us"] > restarted_at, it
    assert ModelRegistry(settings.data_dir).serving_version == info["version"]

    # Every experience once: rows, inserts and duplicates add up exactly, offsets at the end.
    with ReplayStore.open(settings.data_dir) as store:
        counters = store.counters()
        assert store.count() == FIRST + LATE + CENSORED
        assert store.count(trainable_only=True) == FIRST + LATE
        assert counters["inserted"] == FIRST + LATE + CENSORED
        assert counters["duplicates"] == REDELIVERED  # only the deliberate re-deliveries
        assert store.offsets(settings.topic(EXPERIENCES)) == ends
        assert len(set(store.trainable().signal_id)) == FIRST + LATE

    # It said goodbye: the last heartbeat of the second process is STOPPING.
    with BusReader(settings) as bus:
        beats = [
            b for b in bus.read_state().beats.values() if b.component == "trainer" and b.pid == second.pid
        ]
    assert [b.status for b in beats] == ["STOPPING"]
