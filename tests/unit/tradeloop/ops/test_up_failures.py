"""Which failure ``tradeloop up`` reports when its embedded broker dies: the death, not its effects."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from streams.settings import Settings
from tradeloop.ops.up import UpOptions, UpRun


class DyingBroker:
    """A real process in the broker's place, exiting ``seconds`` after it started."""

    def __init__(self, seconds: float) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", f"import time; time.sleep({seconds})"])

    def running(self) -> bool:
        return self.process.poll() is None


def up_run(tmp_path: Path, broker: DyingBroker) -> UpRun:
    run = UpRun(Settings(data_dir=tmp_path, metrics_enabled=False), UpOptions(), threading.Event())
    run.broker = broker  # type: ignore[assignment]
    return run


def test_a_client_error_that_arrives_before_the_broker_is_seen_dead_is_reported_as_the_death(
    tmp_path: Path,
) -> None:
    # A killed broker's sockets close before its parent can reap it: the client's error comes first.
    broker = DyingBroker(0.5)
    run = up_run(tmp_path, broker)
    try:
        assert run._broker_died() is None  # at once: still running
        died = run._broker_died(grace=5.0)
        assert died is not None and died.startswith("the embedded broker died")
    finally:
        broker.process.kill()
        broker.process.wait()


def test_a_broker_that_keeps_running_is_not_blamed(tmp_path: Path) -> None:
    broker = DyingBroker(60.0)
    run = up_run(tmp_path, broker)
    try:
        assert run._broker_died(grace=0.3) is None
    finally:
        broker.process.kill()
        broker.process.wait()
