"""Acknowledged rollout: which model versions every live inference worker serves, from heartbeats.

Each worker heartbeats every ``heartbeat_interval_seconds`` and at once after every swap, with
``info[model] = version`` (``sizer``, ``allocator``) plus ``<model>.canary``, ``<model>.shadow``,
``<model>.rolled_back`` and ``<model>.rejected`` while those apply. The trainer, ``tradeloop
status`` and the benchmarks read them here.

Example:
    >>> versions = serving_versions(settings, timeout=5.0)            # doctest: +SKIP
    >>> all(v.get("sizer") == "v7" for v in versions.values())        # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from confluent_kafka import TopicPartition

from streams.clock import new_event_id, now_us
from streams.errors import TradeloopError
from streams.kafka.consumer import EventConsumer
from streams.kafka.metadata import require_partitions
from streams.serving.constants import COMPONENT
from streams.serving.verify import KNOWN_MODELS
from streams.settings import Settings
from streams.topics import HEARTBEATS

__all__ = ["RolloutWatcher", "model_info", "serving_versions"]


def model_info(info: Mapping[str, str]) -> dict[str, str]:
    """The model entries of a heartbeat's info map (``sizer``, ``sizer.canary``, ...)."""
    return {k: v for k, v in info.items() if k.split(".", 1)[0] in KNOWN_MODELS}


class RolloutWatcher:
    """Tails the heartbeats topic and keeps the latest heartbeat of every inference worker."""

    def __init__(self, settings: Settings, from_beginning: bool = True) -> None:
        self.settings = settings
        self._consumer = EventConsumer(
            settings, f"rollout-{new_event_id()[:8]}", "rollout", config={"fetch.wait.max.ms": 10}
        )
        self._consumer.assign_all([HEARTBEATS], from_beginning=from_beginning)
        self.latest: dict[str, dict[str, Any]] = {}
        self.seen_at: dict[str, float] = {}

    def poll(self, timeout: float = 0.05) -> int:
        """Read what has arrived; returns the number of inference heartbeats read."""
        count = 0
        for message in self._consumer.poll_batch(1000, timeout):
            try:
                record = self._consumer.decode(message)
            except TradeloopError:
                continue
            if record["component"] != COMPONENT:
                continue
            current = self.latest.get(record["component_id"])
            if current is None or current["ts"] <= record["ts"]:
                self.latest[record["component_id"]] = record
                self.seen_at[record["component_id"]] = time.monotonic()
            count += 1
        return count

    def catch_up(self, timeout: float) -> None:
        """Read until every partition's end as of now, or until ``timeout``."""
        raw = self._consumer.raw
        full = self.settings.topic(HEARTBEATS)
        partitions = require_partitions(raw, full, timeout)
        ends = {p: raw.get_watermark_offsets(TopicPartition(full, p), timeout=timeout)[1] for p in partitions}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll(0.05)
            positions = raw.position([TopicPartition(full, p) for p in ends])
            if all(tp.offset >= ends[tp.partition] or ends[tp.partition] == 0 for tp in positions):
                return

    def serving(self, live_only: bool = True) -> dict[str, dict[str, str]]:
        """Worker id -> model versions, for workers whose last heartbeat is recent and not STOPPING."""
        out = {}
        now = now_us()
        for worker, record in self.latest.items():
            stale = now - record["ts"] > 3 * record["interval_seconds"] * 1e6
            if live_only and (record["status"] == "STOPPING" or stale):
                continue
            out[worker] = model_info(record["info"])
        return out

    def wait_for(self, model: str, version: str, workers: int | None = None, timeout: float = 10.0) -> bool:
        """Wait until ``workers`` live workers (default: all live ones, at least one) serve ``version``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll(0.02)
            serving = self.serving()
            done = [w for w, info in serving.items() if info.get(model) == version]
            wanted = len(serving) if workers is None else workers
            if wanted > 0 and len(done) >= wanted:
                return True
        return False

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> RolloutWatcher:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def serving_versions(settings: Settings, timeout: float = 5.0) -> dict[str, dict[str, str]]:
    """Worker id -> {model: version} for every live inference worker, read from the heartbeats."""
    with RolloutWatcher(settings) as watcher:
        watcher.catch_up(timeout)
        return watcher.serving()
