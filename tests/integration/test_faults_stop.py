"""Every component exits within its stop grace of SIGTERM, also when the broker has become unreachable.

What used to block (measured before the bound): the stream worker's Faust consumer waited on
requests to the dead broker for 60 s, the inference worker flushed decisions for 10 s twice, the
simulator flushed for 30 s. Each test runs one component against a private broker, waits until it
works, stops the broker, sends SIGTERM and times the exit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.kafka.admin import create_topics
from streams.kafka.broker import EmbeddedBroker, free_port
from streams.settings import Settings
from tests.kit.proc_tree import alive, descendants
from tradeloop.ops.status_collect import BusReader

pytestmark = [pytest.mark.integration, pytest.mark.faults]

ROOT = Path(__file__).resolve().parents[2]
SLACK_S = 3.0  # process exit and interpreter teardown after the deadline, on a loaded machine


@pytest.fixture()
def broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    if os.environ.get("TRADELOOP_KAFKA_BOOTSTRAP"):
        pytest.skip("stops the embedded broker; an external cluster is not ours to stop")
    running = EmbeddedBroker(port=free_port(), log_path=tmp_path / "tansu.log").start()
    yield running
    running.stop(timeout=2.0)


def started(settings: Settings, component: str, ident_pid: int) -> bool:
    """The component's process beats (and, for consumers, holds partitions); the simulator produces."""
    with BusReader(settings) as bus:
        if component == "simulator":
            return bus.sample().totals.get("trades", 0) > 0
        beats = [b for b in bus.read_state(deadline_seconds=2.0).beats.values() if b.pid == ident_pid]
    return any(b.component == component and b.gauges.get("partitions", 1.0) >= 1 for b in beats)


@pytest.mark.parametrize(
    ("component", "args"),
    [
        ("worker", ["worker"]),
        ("inference", ["infer"]),
        ("simulator", ["simulate", "--speed", "x20"]),
        ("health", ["health"]),
        ("trainer", ["trainer"]),
    ],
)
def test_sigterm_with_the_broker_unreachable(
    broker: EmbeddedBroker, tmp_path: Path, component: str, args: list[str]
) -> None:
    settings = Settings(
        kafka_bootstrap=broker.bootstrap, data_dir=tmp_path / "data", metrics_enabled=False,
        health={"check_interval_seconds": 1.0},
    )  # fmt: skip
    create_topics(settings)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADELOOP_")}
    env.update(TRADELOOP_KAFKA_BOOTSTRAP=broker.bootstrap, TRADELOOP_DATA_DIR=str(settings.data_dir),
               TRADELOOP_METRICS_ENABLED="false")  # fmt: skip
    log_path = tmp_path / f"{component}.log"
    with log_path.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "tradeloop", *args], env=env, stdout=out,
                                   stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)  # fmt: skip
    tree: set[int] = set()
    try:
        deadline = time.monotonic() + 120
        while not started(settings, component, process.pid):
            assert process.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, f"{component} did not start: {log_path.read_text()[-3000:]}"
            time.sleep(1.0)
        time.sleep(2.0)
        broker.stop(timeout=2.0)
        time.sleep(3.0)  # the clients notice: requests pending, records queued
        tree = descendants(process.pid)
        sent = time.monotonic()
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(settings.stop_grace_seconds + SLACK_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{component} still runs {settings.stop_grace_seconds + SLACK_S:.0f}s after SIGTERM")
        took = time.monotonic() - sent
        assert code in (0, 1), f"{component} exit {code}: {log_path.read_text()[-3000:]}"  # not killed
        grace_end = time.monotonic() + 10.0  # its own children (Ray's processes) follow it
        while any(alive(p) for p in tree):
            assert time.monotonic() < grace_end, f"{component}'s children outlived it"
            time.sleep(0.25)
        print(f"{component}: exit {code} {took:.1f}s after SIGTERM with the broker unreachable")
    finally:
        for pid in [process.pid, *tree]:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        process.wait()
