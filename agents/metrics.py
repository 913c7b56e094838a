"""Prometheus metrics of the stream worker (``tradeloop_<component>_<what>_<unit>``).

Declared once per process on the default registry; :func:`streams.metrics.serve_metrics` serves them.
:class:`WorkerStats` keeps the plain totals the heartbeat reports.
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from dataclasses import dataclass, field

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "ASSIGNED_PARTITIONS",
    "BATCH_EVENTS",
    "BATCH_SECONDS",
    "DEAD_LETTERS",
    "EVENTS_IN",
    "EVENTS_OUT",
    "EXPERIENCES",
    "FORWARDED",
    "JOIN_PENDING",
    "JOIN_RESULTS",
    "LAG",
    "MISROUTED",
    "PERIODS",
    "PRICE_MOVES",
    "RECORDS_IN",
    "RECOVERY_SECONDS",
    "REDELIVERED",
    "SNAPSHOTS",
    "TABLE_KEYS",
    "WorkerStats",
]

EVENTS_IN = Counter("tradeloop_worker_events_in_total", "Events consumed, by logical topic", ["topic"])
RECORDS_IN = Counter(
    "tradeloop_worker_records_in_total",
    "Kafka records consumed, by logical topic (a batch record carries many events)",
    ["topic"],
)
EVENTS_OUT = Counter("tradeloop_worker_events_out_total", "Records produced, by logical topic", ["topic"])
DEAD_LETTERS = Counter(
    "tradeloop_worker_dead_letters_total", "Inputs sent to the dead-letter topic", ["stage", "reason"]
)
REDELIVERED = Counter(
    "tradeloop_worker_redelivered_total", "Events skipped because the state already held them", ["topic"]
)
ASSIGNED_PARTITIONS = Gauge(
    "tradeloop_worker_assigned_partitions", "Input partitions this worker holds after the last rebalance"
)
RECOVERY_SECONDS = Gauge(
    "tradeloop_worker_recovery_seconds",
    "From the last partition assignment to the state being loaded (table restore included)",
)
TABLE_KEYS = Gauge("tradeloop_worker_table_keys", "Keys restored into each table at the last load", ["table"])
MISROUTED = Counter(
    "tradeloop_worker_misrouted_total",
    "Trades on another partition than Kafka's default partitioner gives their symbol (the join "
    "then misses their features: produce them with the murmur2 partitioner)",
)
SNAPSHOTS = Counter("tradeloop_features_snapshots_total", "FeatureSnapshots emitted")
PRICE_MOVES = Counter("tradeloop_price_moves_total", "Rapid price move alerts", ["kind"])
EXPERIENCES = Counter("tradeloop_join_experiences_total", "Experiences emitted, by status", ["status"])
JOIN_RESULTS = Counter(
    "tradeloop_join_results_total",
    "Join outcomes: joined, expired, late, duplicate, orphan, redelivered, side_mismatch (an outcome "
    "whose return had the sign of the other side, corrected)",
    ["result"],
)
FORWARDED = Counter(
    "tradeloop_join_forwarded_total",
    "Single signals and outcomes forwarded to their symbol's partition (keyed by signal id, the 0.1 keying)",
)
JOIN_PENDING = Gauge("tradeloop_join_pending", "Signals and outcomes waiting in the join")
PERIODS = Counter("tradeloop_periods_total", "Allocation periods emitted")
LAG = Gauge("tradeloop_worker_lag_messages", "Consumer lag of the worker, by logical topic", ["topic"])
BATCH_SECONDS = Histogram(
    "tradeloop_worker_batch_seconds",
    "Time to process one batch, including output delivery",
    ["agent"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
BATCH_EVENTS = Histogram(
    "tradeloop_worker_batch_events",
    "Events per Faust batch (the events inside batch records counted one by one)",
    ["agent"],
    buckets=(1, 10, 50, 100, 500, 1000, 2000, 5000, 20_000, 100_000),
)


@dataclass
class WorkerStats:
    """Plain totals for the heartbeat's gauges (rates are computed between two beats)."""

    events_in: int = 0
    dead_letters: int = 0
    experiences: int = 0
    pending: int = 0
    partitions: int = 0
    recovery_seconds: float = 0.0
    lag: Tally[str] = field(default_factory=Tally)
    _last: tuple[float, int] = field(default_factory=lambda: (time.monotonic(), 0))

    def gauges(self) -> dict[str, float]:
        now = time.monotonic()
        then, count = self._last
        self._last = (now, self.events_in)
        rate = (self.events_in - count) / (now - then) if now > then else 0.0
        return {
            "events_in_per_s": rate,
            "events_in_total": float(self.events_in),
            "dead_letters_total": float(self.dead_letters),
            "experiences_total": float(self.experiences),
            "pending_joins": float(self.pending),
            "lag": float(sum(self.lag.values())),
            "partitions": float(self.partitions),
            "recovery_seconds": self.recovery_seconds,
        }
