"""Prometheus metrics of the inference workers (``tradeloop_inference_*``).

Every series carries a ``worker`` label, so several workers in one process (tests, benchmarks)
stay apart and a dashboard can show the model version serving per worker.

Example:
    >>> m = WorkerMetrics("inference-doc")
    >>> m.decided(3, 0.00004)
    >>> m.fallback("no_model", 2)
    >>> DECISIONS.labels(worker="inference-doc")._value.get()
    3.0
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "BATCH_SIZE",
    "CANARY_ROLLBACKS",
    "CONTROL_STATE",
    "DEAD_LETTERS",
    "DECISIONS",
    "FALLBACKS",
    "LATENCY",
    "MODEL_AGE",
    "MODEL_VERSION",
    "REJECTIONS",
    "SHADOW_DECISIONS",
    "SHADOW_DISAGREEMENT",
    "STREAM_MISSING",
    "SWAPS",
    "WEIGHTS_PUBLISHED",
    "WorkerMetrics",
]

# Microseconds to a tenth of a second: in-process scoring sits at the low end, bus waits higher up.
_LATENCY_BUCKETS = (25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 0.1)

LATENCY = Histogram(
    "tradeloop_inference_latency_seconds",
    "Time inside the worker from receipt of a sizing request to its decision",
    ["worker"],
    buckets=_LATENCY_BUCKETS,
)
BATCH_SIZE = Histogram(
    "tradeloop_inference_batch_size",
    "Sizing requests scored as one batch",
    ["worker"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
DECISIONS = Counter("tradeloop_inference_decisions_total", "Sizing decisions answered", ["worker"])
FALLBACKS = Counter(
    "tradeloop_inference_fallbacks_total",
    "Decisions and weights answered by the fallback",
    ["worker", "reason"],
)
MODEL_VERSION = Gauge(
    "tradeloop_inference_model_version_serving",
    "1 for the model version each worker serves in each role (serving, canary, shadow)",
    ["worker", "model", "role", "version"],
)
MODEL_AGE = Gauge(
    "tradeloop_inference_model_age_seconds",
    "Seconds since the serving model's manifest was created",
    ["worker", "model"],
)
REJECTIONS = Counter(
    "tradeloop_inference_rejections_total", "Model updates rejected, by reason", ["worker", "model", "reason"]
)
SWAPS = Counter("tradeloop_inference_swaps_total", "Models swapped into a slot", ["worker", "model", "role"])
SHADOW_DECISIONS = Counter(
    "tradeloop_inference_shadow_decisions_total", "Live requests the shadow model scored", ["worker", "model"]
)
SHADOW_DISAGREEMENT = Histogram(
    "tradeloop_inference_shadow_disagreement",
    "Absolute difference between the shadow's multiplier and the one sent",
    ["worker", "model"],
    buckets=(0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0),
)
CANARY_ROLLBACKS = Counter(
    "tradeloop_inference_canary_rollbacks_total",
    "Canaries rolled back automatically",
    ["worker", "model", "reason"],
)
CONTROL_STATE = Gauge(
    "tradeloop_inference_control_state",
    "1 while a control state (frozen, kill_switch) holds",
    ["worker", "state"],
)
WEIGHTS_PUBLISHED = Counter(
    "tradeloop_inference_weights_published_total", "StrategyWeights records published", ["worker", "fallback"]
)
STRATEGY_WEIGHT = Gauge(
    "tradeloop_inference_strategy_weight",
    "Weight last published per strategy (allocator or equal-weights fallback)",
    ["worker", "portfolio", "strategy"],
)
STREAM_MISSING = Counter(
    "tradeloop_inference_stream_features_missing_total",
    "Requests scored without a feature snapshot of their symbol (stream features zeroed)",
    ["worker"],
)
DEAD_LETTERS = Counter(
    "tradeloop_inference_dead_letters_total", "Records sent to the dead-letter topic", ["worker", "reason"]
)


class WorkerMetrics:
    """The metric children of one worker, bound once (``labels()`` is too slow for the hot path)."""

    def __init__(self, worker: str) -> None:
        self.worker = worker
        self._latency = LATENCY.labels(worker=worker)
        self._batch = BATCH_SIZE.labels(worker=worker)
        self._decisions = DECISIONS.labels(worker=worker)
        self._versions: dict[tuple[str, str], str] = {}

    def decided(self, count: int, latency_seconds: float) -> None:
        """``count`` decisions answered as one batch after ``latency_seconds``."""
        self._decisions.inc(count)
        self._batch.observe(count)
        # One observation per decision: every request of a batch waited the same time.
        for _ in range(count):
            self._latency.observe(latency_seconds)

    def fallback(self, reason: str, count: int = 1) -> None:
        FALLBACKS.labels(worker=self.worker, reason=reason).inc(count)

    def rejected(self, model: str, reason: str) -> None:
        REJECTIONS.labels(worker=self.worker, model=model or "?", reason=reason).inc()

    def serving(self, model: str, role: str, version: str | None) -> None:
        """Point the version gauge of ``model`` in ``role`` at ``version`` (None clears it)."""
        old = self._versions.pop((model, role), None)
        if old is not None:
            MODEL_VERSION.remove(self.worker, model, role, old)
        if version is not None:
            MODEL_VERSION.labels(worker=self.worker, model=model, role=role, version=version).set(1)
            self._versions[(model, role)] = version
            SWAPS.labels(worker=self.worker, model=model, role=role).inc()

    def model_age(self, model: str, created_us: Callable[[], int | None]) -> None:
        """Report the age of whatever ``created_us()`` returns at scrape time."""

        def age() -> float:
            created = created_us()
            return float("nan") if created is None else time.time() - created / 1e6

        MODEL_AGE.labels(worker=self.worker, model=model).set_function(age)

    def shadow(self, model: str, differences: list[float]) -> None:
        SHADOW_DECISIONS.labels(worker=self.worker, model=model).inc(len(differences))
        child = SHADOW_DISAGREEMENT.labels(worker=self.worker, model=model)
        for diff in differences:
            child.observe(diff)

    def rolled_back(self, model: str, reason: str) -> None:
        CANARY_ROLLBACKS.labels(worker=self.worker, model=model, reason=reason).inc()

    def control(self, frozen: bool, kill_switch: bool) -> None:
        CONTROL_STATE.labels(worker=self.worker, state="frozen").set(1 if frozen else 0)
        CONTROL_STATE.labels(worker=self.worker, state="kill_switch").set(1 if kill_switch else 0)

    def weights_published(self, fallback: bool, record: dict[str, Any] | None = None) -> None:
        WEIGHTS_PUBLISHED.labels(worker=self.worker, fallback=str(fallback).lower()).inc()
        if record is not None:
            for strategy, weight in zip(record["strategies"], record["weights"], strict=True):
                STRATEGY_WEIGHT.labels(
                    worker=self.worker, portfolio=record["portfolio"], strategy=strategy
                ).set(weight)

    def stream_missing(self, count: int) -> None:
        STREAM_MISSING.labels(worker=self.worker).inc(count)

    def dead_letter(self, reason: str) -> None:
        DEAD_LETTERS.labels(worker=self.worker, reason=reason).inc()
