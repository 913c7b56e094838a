"""Run the stream worker as a subprocess (``python -m agents.worker``) and read its outputs.

The one way the integration tests and the benchmarks start a stream worker: its settings reach the
child through the supervisor's own ``settings_env``, so every section does. Nothing here talks to
Kafka except through the real clients.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streams.kafka.consumer import EventConsumer
from streams.settings import Settings
from tradeloop.ops.supervisor import settings_env

__all__ = ["ExperienceCopies", "WorkerProcess", "read_topic", "wait_for"]


class WorkerProcess:
    """One ``python -m agents.worker`` child with its log file.

    Args:
        settings: the worker's settings (all of them reach the child).
        log_path: where its output goes.
        profile: record it with py-spy (raw samples) into this file; SIGINT makes py-spy write it.
    """

    def __init__(self, settings: Settings, log_path: Path, profile: Path | None = None) -> None:
        self.settings = settings
        self.log_path = log_path
        self.profile = profile
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRADELOOP_")}
        env.update(settings_env(self.settings))
        command = [sys.executable, "-m", "agents.worker"]
        if self.profile is not None:
            spy = str(Path(sys.executable).with_name("py-spy"))
            command = [spy, "record", "-f", "raw", "-r", "100", "-o", str(self.profile), "--", *command]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        return self

    def kill(self) -> None:
        """SIGKILL: no flush, no commit, no goodbye."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self, timeout: float = 20.0) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        # py-spy writes its profile on SIGINT (and stops the worker); the worker stops on either.
        self.process.send_signal(signal.SIGINT if self.profile is not None else signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(5)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def read_topic(consumer: EventConsumer, into: list[tuple[bytes | None, bytes, dict[str, Any]]],
               max_messages: int = 5000) -> None:  # fmt: skip
    """Append (key, value bytes, decoded record) of newly available messages."""
    for message in consumer.poll_batch(max_messages, timeout=0.2):
        into.append((message.key(), message.value() or b"", consumer.decode(message)))


def wait_for(condition: Callable[[], bool], timeout: float, what: str, poll: Callable[[], None],
             worker: WorkerProcess | None = None) -> None:  # fmt: skip
    """Poll until ``condition()`` holds; fails with the worker log tail when it does not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        poll()
        if condition():
            return
        if worker is not None and not worker.alive():
            raise AssertionError(f"worker died while waiting for {what}:\n{worker.log()[-4000:]}")
    tail = worker.log()[-4000:] if worker is not None else ""
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{tail}")


class ExperienceCopies:
    """Every copy of every experience on the topic, by (signal_id, revision)."""

    def __init__(self, settings: Settings) -> None:
        self.copies: dict[tuple[str, int], list[bytes]] = defaultdict(list)
        self.consumer = EventConsumer(settings, f"experience-reader-{uuid.uuid4().hex[:6]}")
        self.consumer.assign_all(["experiences"])

    def __len__(self) -> int:
        return len(self.copies)

    def poll(self) -> None:
        for message in self.consumer.poll_batch(5000, timeout=0.2):
            record = self.consumer.decode(message)
            self.copies[(record["signal_id"], record["revision"])].append(message.value() or b"")

    def close(self) -> None:
        self.consumer.close()

    def assert_exactly(self, want: dict[tuple[str, int], bytes]) -> int:
        """Every wanted experience and no other, every copy byte-identical; returns the repeats."""
        assert set(self.copies) == set(want), "every experience, and no other"
        for key, values in self.copies.items():
            assert all(v == want[key] for v in values), f"{key}: a copy differs from the expected record"
        return sum(len(v) - 1 for v in self.copies.values())
