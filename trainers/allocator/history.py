"""Where a user sees how the allocation evolved: the trainer's weight history and the served weights.

Two sources, both read by ``tradeloop models show allocator``:

* **Evaluated weights** (kept by the trainer): every allocator evaluation appends one JSON line to
  ``<data_dir>/models/allocator/weight_history.jsonl`` with the version, whether it passed and was
  published, the strategies, the candidate's mean and last hold-out weights and every policy's
  hold-out Sharpe. The full per-period weight path of each version is in its ``report.json``
  (``weight_history``). The file is append-only and never pruned (a line is ~1 KB).
* **Served weights**: the strategy-weights topic itself (StrategyWeights per portfolio, with the
  model version and the fallback flag, published by the inference workers).
  :func:`read_published_weights` reads its newest records; how far back it reaches is the topic's
  retention.

Example:
    >>> latest_per_portfolio([{"portfolio": "a", "ts": 1}, {"portfolio": "a", "ts": 2}])["a"]["ts"]
    2
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from confluent_kafka import TopicPartition

from streams.clock import now_us
from streams.errors import SchemaDecodeError
from streams.kafka.consumer import EventConsumer
from streams.kafka.metadata import partition_ids
from streams.settings import Settings
from streams.topics import STRATEGY_WEIGHTS

__all__ = [
    "HISTORY_FILE",
    "append_history",
    "latest_per_portfolio",
    "read_history",
    "read_published_weights",
]

HISTORY_FILE: Final = "weight_history.jsonl"


def append_history(root: Path, version: str, report: Mapping[str, Any], published: bool) -> dict[str, Any]:
    """Append one evaluation (from its ``report``) to the history under the registry ``root``."""
    candidate = report["weight_history"]["weights"]["candidate"]
    entry = {
        "ts_us": now_us(),
        "version": version,
        "passed": bool(report["gate"]["passed"]),
        "published": published,
        "strategies": report["strategies"],
        "mean_weights": report["mean_weights"]["candidate"],
        "last_weights": dict(zip(report["strategies"], candidate[-1], strict=True)) if candidate else {},
        "holdout_sharpe": {name: values["sharpe"] for name, values in report["policies"].items()},
        "holdout_window": report.get("holdout_window", {}),
    }
    root.mkdir(parents=True, exist_ok=True)
    with (root / HISTORY_FILE).open("a") as fh:
        fh.write(json.dumps(entry, sort_keys=True) + "\n")
    return entry


def read_history(root: Path) -> list[dict[str, Any]]:
    """Every history entry, oldest first (a torn last line, from a crash mid-write, is skipped)."""
    path = root / HISTORY_FILE
    if not path.exists():
        return []
    entries = []
    for line in path.read_text().splitlines():
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return entries


def latest_per_portfolio(records: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """The newest record (by ``ts``) of each portfolio."""
    latest: dict[str, Mapping[str, Any]] = {}
    for record in records:
        held = latest.get(record["portfolio"])
        if held is None or record["ts"] >= held["ts"]:
            latest[record["portfolio"]] = record
    return latest


def read_published_weights(settings: Settings, tail: int = 500, timeout: float = 5.0) -> list[dict[str, Any]]:
    """The newest ~``tail`` StrategyWeights records of each partition, oldest first.

    Raises:
        BrokerError / KafkaException: the broker or the topic is unreachable.
    """
    full = settings.topic(STRATEGY_WEIGHTS)
    records: list[dict[str, Any]] = []
    with EventConsumer(settings, "tradeloop-models-show", "tradeloop-models-show") as consumer:
        raw = consumer.raw
        assignment = []
        for p in partition_ids(raw, full, timeout):
            low, high = raw.get_watermark_offsets(TopicPartition(full, p), timeout=timeout)
            # Tansu may report a high watermark below the true end: starting early only reads more.
            assignment.append(TopicPartition(full, p, max(low, high - tail)))
        raw.assign(assignment)
        while batch := consumer.poll_batch(1000, 1.0):
            for message in batch:
                try:
                    records.append(consumer.decode(message))
                except SchemaDecodeError:
                    continue  # undecodable records are not weights; the workers dead-letter theirs
    return sorted(records, key=lambda r: (r["ts"], r["portfolio"]))
