"""Run the stream worker as a subprocess (``python -m agents.worker``) and read its outputs.

Used by the integration tests; nothing here talks to Kafka except through the real clients.
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

__all__ = ["ExperienceCopies", "WorkerProcess", "read_topic", "settings_env", "wait_for"]


def settings_env(settings: Settings) -> dict[str, str]:
    """The TRADELOOP_* variables that rebuild ``settings`` in a child process."""
    env = {
        "TRADELOOP_KAFKA_BOOTSTRAP": settings.bootstrap,
        "TRADELOOP_TOPIC_PREFIX": settings.topic_prefix,
        "TRADELOOP_PARTITIONS": str(settings.partitions),
        "TRADELOOP_DATA_DIR": str(settings.data_dir),
        "TRADELOOP_METRICS_ENABLED": str(settings.metrics_enabled).lower(),
        "TRADELOOP_SESSION_TIMEOUT_MS": str(settings.session_timeout_ms),
        "TRADELOOP_HEARTBEAT_INTERVAL_MS": str(settings.heartbeat_interval_ms),
        "TRADELOOP_LOG_LEVEL": settings.log_level,
    }
    if settings.metrics_port is not None:
        env["TRADELOOP_METRICS_PORT"] = str(settings.metrics_port)
    for name, value in settings.agents.model_dump().items():
        env[f"TRADELOOP_AGENTS__{name.upper()}"] = (
            str(value).lower() if isinstance(value, bool) else str(value)
        )
    return env


class WorkerProcess:
    """One ``python -m agents.worker`` child with its log file."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.settings = settings
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRADELOOP_")}
        env.update(settings_env(self.settings))
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "agents.worker"], env=env, stdout=log, stderr=subprocess.STDOUT
            )
        return self

    def kill(self) -> None:
        """SIGKILL: no flush, no commit, no goodbye."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self, timeout: float = 20.0) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
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
