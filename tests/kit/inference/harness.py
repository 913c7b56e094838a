"""Engine-side helpers for the inference integration tests and benchmarks (they talk to Kafka).

Importing this module needs no broker; using its classes does.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from agents.inference.worker import InferenceWorker
from streams.batching import EventBatcher
from streams.clock import new_event_id, now_us
from streams.features import ENGINE_FEATURES
from streams.kafka.consumer import EventConsumer
from streams.kafka.producer import EventProducer
from streams.serving.control import control_record
from streams.settings import Settings
from streams.topics import CONTROL, MODEL_UPDATES, OUTCOMES, SIZING_DECISIONS, SIZING_REQUESTS
from tests.kit.components import wait_until

__all__ = [
    "ENGINE_VALUES",
    "Engine",
    "publish",
    "request_record",
    "running_worker",
    "send_control",
    "tuned",
    "wait_until",
]

ENGINE_VALUES = {name: 0.1 * (i + 1) for i, name in enumerate(ENGINE_FEATURES)}


def tuned(settings: Settings, **inference: Any) -> Settings:
    """``settings`` with some inference fields changed."""
    return settings.model_copy(update={"inference": settings.inference.model_copy(update=inference)})


def publish(settings: Settings, record: Mapping[str, Any], key: str | None = None) -> None:
    """Produce one ModelUpdate record (key: its model name) and wait for the broker's ack."""
    with EventProducer(settings, "test-trainer", config={"linger.ms": 0}) as producer:
        producer.send(MODEL_UPDATES, key or record["model_name"], record)


def send_control(settings: Settings, command: str, scope: str = "all") -> None:
    with EventProducer(settings, "test-operator", config={"linger.ms": 0}) as producer:
        producer.send(CONTROL, scope, control_record(command, scope, reason="test", issued_by="pytest"))


def request_record(
    signal_id: str,
    client_id: str,
    score: float = 0.6,
    strategy: str = "momentum_fast",
    symbol: str = "SYM",
    features: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    return {
        "event_id": new_event_id(), "ts": now_us(), "signal_id": signal_id, "client_id": client_id,
        "strategy": strategy, "symbol": symbol, "side": "BUY", "score": score,
        "features": dict(ENGINE_VALUES if features is None else features),
    }  # fmt: skip


class Engine:
    """Produces sizing requests and collects every decision for its client id (duplicates kept)."""

    def __init__(
        self, settings: Settings, client_id: str | None = None, batched_outcomes: bool = True
    ) -> None:
        self.settings = settings
        self.client_id = client_id or f"engine-{new_event_id()[:6]}"
        self.producer = EventProducer(settings, self.client_id, config={"linger.ms": 0})
        # Outcomes as the SDK sends them (batch records keyed by symbol), or as 0.1 engines did
        # (one record per outcome keyed by signal id).
        self.outcomes = (
            EventBatcher(self.producer, settings.batching, self.producer.partitions)
            if batched_outcomes
            else None
        )
        self.consumer = EventConsumer(
            settings, f"{self.client_id}-decisions", self.client_id, config={"fetch.wait.max.ms": 5}
        )
        self.consumer.assign_all([SIZING_DECISIONS], from_beginning=False)
        self.decisions: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.received_at: dict[str, float] = {}
        self.sent_at: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            for message in self.consumer.poll_batch(1000, 0.02):
                arrived = time.perf_counter()
                record = self.consumer.decode(message)
                if record["client_id"] != self.client_id:
                    continue
                with self._lock:
                    self.decisions[record["signal_id"]].append(record)
                    self.received_at.setdefault(record["signal_id"], arrived)

    def request(self, signal_id: str | None = None, **fields: Any) -> str:
        signal_id = signal_id or new_event_id()
        record = request_record(signal_id, self.client_id, **fields)
        self.sent_at[signal_id] = time.perf_counter()
        self.producer.send(SIZING_REQUESTS, signal_id, record)
        self.producer.poll(0)
        return signal_id

    def outcome(self, signal_id: str, return_unit: float, multiplier: float, symbol: str = "SYM") -> None:
        """Report how a sized signal ended (the worker's canary reads these)."""
        record = {
            "event_id": new_event_id(), "ts": now_us(), "signal_id": signal_id, "symbol": symbol,
            "strategy": "momentum_fast", "entry_price": 100.0, "exit_price": 100.0 * (1 + return_unit),
            "size_multiplier": multiplier, "return_unit": return_unit, "pnl": return_unit * 1000 * multiplier,
            "fees": 0.0, "exit_reason": "TIME", "side": "BUY",
        }  # fmt: skip
        if self.outcomes is not None:
            self.outcomes.add(OUTCOMES, symbol, record)
        else:
            self.producer.send(OUTCOMES, signal_id, record)
        self.producer.poll(0)

    def decision(self, signal_id: str, timeout: float = 10.0) -> dict[str, Any]:
        """The first decision for ``signal_id``; AssertionError when none arrives in time."""
        assert wait_until(lambda: signal_id in self.decisions, timeout), f"no decision for {signal_id}"
        with self._lock:
            return self.decisions[signal_id][0]

    def ask(self, timeout: float = 10.0, **fields: Any) -> dict[str, Any]:
        return self.decision(self.request(**fields), timeout)

    def wait_all(self, signal_ids: list[str], timeout: float = 20.0) -> bool:
        return wait_until(lambda: all(s in self.decisions for s in signal_ids), timeout)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
        if self.outcomes is not None:
            self.outcomes.close(10.0)
        self.producer.flush(10.0)
        self.consumer.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def running_worker(
    settings: Settings, worker_id: str | None = None, **inference: Any
) -> Iterator[InferenceWorker]:
    """A started worker (ready and assigned), stopped on exit."""
    worker = InferenceWorker(tuned(settings, **inference) if inference else settings, worker_id)
    worker.start()
    try:
        assert worker.wait_ready(30.0), f"worker not ready: {worker.failed}"
        yield worker
    finally:
        worker.stop()
    assert not worker.failed, worker.failed
