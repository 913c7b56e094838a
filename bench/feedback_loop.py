"""Feedback-loop benchmark: 10,000 new experiences on the topic -> a validated model published.

    python bench/feedback_loop.py --json bench/results/feedback_loop.json

Starts the embedded broker (or uses ``--bootstrap``), creates the topics under a fresh prefix and
runs the trainer loop (:class:`trainers.loop.TrainerLoop`) in this process with default settings
except ``min_new_experiences`` = the batch size, so the trigger fires on this batch. Once the
trainer is up (Ray started, consumer assigned), the clock starts, the experiences of a simulator
backfill are produced to the experiences topic, and the clock stops when the signed
``ModelUpdate`` can be read back from the model-updates topic and verifies.

It measures to **published** (the model on the compacted topic, signature checked); the inference
issue extends it to "serving in an inference worker".
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python bench/feedback_loop.py`: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from confluent_kafka import Consumer, TopicPartition

from bench._experiences import backfill_experiences
from bench._report import report
from streams.admin import create_topics
from streams.broker import EmbeddedBroker, free_port
from streams.codec import Codec
from streams.manifest import verify_update
from streams.producer import EventProducer
from streams.settings import Settings
from streams.topics import EXPERIENCES, MODEL_UPDATES
from trainers.loop import TrainerLoop
from trainers.replay import ReplayStore

TARGET_SECONDS = 120.0


def _updates_consumer(settings: Settings) -> Consumer:
    full = settings.topic(MODEL_UPDATES)
    consumer = Consumer(
        {"bootstrap.servers": settings.bootstrap, "group.id": f"bench-{uuid.uuid4().hex[:6]}"}
    )
    partitions = consumer.list_topics(full, timeout=10).topics[full].partitions
    consumer.assign([TopicPartition(full, p, 0) for p in partitions])
    return consumer


def _wait_for_update(consumer: Consumer, settings: Settings, deadline: float) -> dict[str, Any] | None:
    while time.monotonic() < deadline:
        for message in consumer.consume(10, 0.2):
            if message.error() is None:
                record = Codec().decode(MODEL_UPDATES, message.value())
                verify_update(
                    record["manifest_json"], record["onnx"], record["signature"], settings.signing_key()
                )
                return record
    return None


def _rows_ingested(settings: Settings) -> int:
    with ReplayStore.open(settings.data_dir) as store:
        return store.count()


def run(settings: Settings, n: int, seed: int, timeout: float) -> dict[str, Any]:
    create_topics(settings)
    records, _ = backfill_experiences(seed=seed, n_signals=n)
    loop = TrainerLoop(settings)
    stop = threading.Event()
    errors: list[BaseException] = []

    def target() -> None:
        try:
            loop.run(stop, max_runs=1)
        except BaseException as exc:  # reported below; the bench must not hang on a dead trainer
            errors.append(exc)
            stop.set()

    started = time.monotonic()
    thread = threading.Thread(target=target, name="trainer", daemon=True)
    thread.start()
    if not loop.ready.wait(120):
        raise RuntimeError(f"trainer did not start: {errors}")
    startup = time.monotonic() - started
    consumer = _updates_consumer(settings)

    t0 = time.monotonic()
    with EventProducer(settings, "bench-engine") as producer:
        for record in records:
            producer.send(EXPERIENCES, record["signal_id"], record)
    produced = time.monotonic() - t0
    ingested_at = None
    while ingested_at is None and time.monotonic() - t0 < timeout and not stop.is_set():
        if _rows_ingested(settings) >= n:
            ingested_at = time.monotonic() - t0
        else:
            time.sleep(0.2)
    update = _wait_for_update(consumer, settings, t0 + timeout)
    elapsed = time.monotonic() - t0
    consumer.close()
    stop.set()
    thread.join(60)
    if errors:
        raise RuntimeError(f"trainer failed: {errors[0]!r}") from errors[0]
    outcome = loop.outcomes[0] if loop.outcomes else None
    return {
        "seconds_to_serving": round(elapsed, 2) if update is not None else None,
        "measured_to": "published: signed ModelUpdate read back from the model-updates topic "
        "(no inference worker in the loop yet)",
        "experiences": n,
        "seconds_to_produce": round(produced, 2),
        "seconds_to_ingest": None if ingested_at is None else round(ingested_at, 2),
        "seconds_training_run": None if outcome is None else round(outcome.seconds, 2),
        "trainer_startup_seconds": round(startup, 2),
        "version": None if update is None else update["version"],
        "gate_passed": None if outcome is None else outcome.gate_passed,
        "gate": None if outcome is None else outcome.report["gate"],
        "mode": None if outcome is None else outcome.mode,
        "iterations": settings.trainer.iterations,
        "target_seconds": TARGET_SECONDS,
        "load_average_1m": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--experiences", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--bootstrap", default="", help="existing Kafka; default starts the embedded broker")
    args = parser.parse_args()
    import logging

    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    with tempfile.TemporaryDirectory(prefix="tradeloop-feedback-") as tmp:
        broker = None if args.bootstrap else EmbeddedBroker(port=free_port()).start()
        try:
            bootstrap = args.bootstrap or (broker.bootstrap if broker else "")
            settings = Settings(
                kafka_bootstrap=bootstrap, topic_prefix=f"fb{uuid.uuid4().hex[:6]}.", data_dir=Path(tmp),
                metrics_enabled=False, trainer={"min_new_experiences": args.experiences},
            )  # fmt: skip
            result = run(settings, args.experiences, args.seed, args.timeout)
        finally:
            if broker is not None:
                broker.stop()
    seconds = result["seconds_to_serving"]
    gate = result["gate"] or {}
    gate_text = (
        f"{'passed' if gate.get('passed') else 'rejected'}: {gate.get('metric')} lower bound "
        f"{gate.get('lower_bound', float('nan')):.3g} vs {gate.get('reference')}"
    )
    rows = [
        ("experiences produced", f"{result['experiences']:,}", ""),
        ("produce", f"{result['seconds_to_produce']} s", ""),
        ("ingested into replay store", f"{result['seconds_to_ingest']} s", ""),
        ("training run (PPO + gate + ONNX + publish)", f"{result['seconds_training_run']} s", ""),
        ("experiences -> model published", f"{seconds} s", f"<= {TARGET_SECONDS:.0f} s"),
        ("measured to", "published (no inference worker yet)", "serving"),
        ("gate", gate_text, "passed"),
        ("trainer start-up (not counted)", f"{result['trainer_startup_seconds']} s", ""),
    ]
    report("feedback loop: new experiences -> published model", rows, result, args.json)


if __name__ == "__main__":
    main()
