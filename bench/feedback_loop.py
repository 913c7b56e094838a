"""Feedback-loop benchmark: 10,000 new experiences on the topic -> a validated model serving.

    python bench/feedback_loop.py --json bench/results/feedback_loop.json

Starts the embedded broker (or uses ``--bootstrap``), creates the topics under a fresh prefix,
runs the trainer loop (:class:`trainers.run.loop.TrainerLoop`) in this process with default settings
except ``min_new_experiences`` = the batch size (so the trigger fires on this batch), and one
inference worker as a separate process (``python -m agents.inference.worker``, as in production
and as ``bench/model_propagation.py`` starts them, canary off; a worker's first model serves
without a canary anyway). Once both are up (Ray started, consumer
assigned; the worker's first heartbeat read), the clock starts and the experiences of a simulator
backfill are produced to the experiences topic. Two times are taken:

* ``to_published_s``: the trainer produced the signed ``ModelUpdate`` (its broker timestamp; the
  record is read back from the model-updates topic and must verify);
* ``to_serving_s``: this process read the worker's heartbeat saying it serves that version
  (``info["sizer"]``, the acknowledgement docs/inference.md names; a worker heartbeats at once
  after a swap).

``seconds_to_serving`` (what ``bench/run_all.py`` checks) is ``to_serving_s``. Target
(DESIGN.md section 8): 10,000 new experiences -> validated model serving <= 120 s.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python bench/feedback_loop.py`: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Consumer, TopicPartition

from agents.inference.rollout import RolloutWatcher
from bench._report import report
from bench.model_propagation import start_workers
from streams.avro.codec import Codec
from streams.kafka.admin import create_topics
from streams.kafka.broker import EmbeddedBroker, free_port
from streams.kafka.producer import EventProducer
from streams.manifest import verify_update
from streams.settings import Settings
from streams.topics import EXPERIENCES, MODEL_UPDATES
from tests.kit.simulated_experiences import backfill_experiences
from trainers.run.loop import TrainerLoop
from trainers.store.replay import ReplayStore

log = logging.getLogger("bench.feedback_loop")

TARGET_SECONDS = 120.0  # DESIGN.md section 8: 10,000 new experiences -> validated model serving
MODEL = "sizer"


def _updates_consumer(settings: Settings) -> Consumer:
    full = settings.topic(MODEL_UPDATES)
    # Tansu answers a fetch only when fetch.wait.max.ms expires: keep it short (as RolloutWatcher
    # does), or the time to "published" would carry up to the default 500 ms of fetch wait.
    consumer = Consumer(
        {
            "bootstrap.servers": settings.bootstrap,
            "group.id": f"bench-{uuid.uuid4().hex[:6]}",
            "fetch.wait.max.ms": 10,
        }
    )
    partitions = consumer.list_topics(full, timeout=10).topics[full].partitions
    consumer.assign([TopicPartition(full, p, 0) for p in partitions])
    return consumer


def _read_update(consumer: Consumer, settings: Settings) -> tuple[dict[str, Any], float] | None:
    """The first verified sizer ``ModelUpdate`` that has arrived and its produce time (unix s), if any.

    The produce time is the record's broker timestamp (CreateTime, stamped by the trainer's producer)
    or, without one, its ``ts`` field (publication time): reading it here comes later by up to a
    fetch wait, which would hide part of the published -> serving step.
    """
    for message in consumer.consume(10, 0.05):
        if message.error() is None:
            record = Codec().decode(MODEL_UPDATES, message.value() or b"")
            verify_update(
                record["manifest_json"], record["onnx"], record["signature"], settings.signing_key()
            )
            if record["model_name"] == MODEL:
                kind, ms = message.timestamp()
                produced = ms / 1000 if kind != TIMESTAMP_NOT_AVAILABLE and ms > 0 else record["ts"] / 1e6
                return record, produced
    return None


def _serving(watcher: RolloutWatcher) -> str | None:
    """The sizer version the (one) live worker acknowledges, if any."""
    watcher.poll(0.02)
    versions = [info[MODEL] for info in watcher.serving().values() if info.get(MODEL)]
    return versions[0] if versions else None


@dataclass
class _Clock:
    """Seconds from ``t0`` (monotonic; ``t0_wall`` is the same instant in unix time) to each event.

    ``published``: when the trainer produced the update; ``serving``: when this process read the
    worker's acknowledgement (so it includes the acknowledgement's trip, as model_propagation's does).
    """

    t0: float
    t0_wall: float
    published: float | None = None
    serving: float | None = None
    version: str | None = None
    update: dict[str, Any] | None = None


def _wait_for_serving(
    clock: _Clock,
    consumer: Consumer,
    watcher: RolloutWatcher,
    worker: subprocess.Popen[bytes],
    settings: Settings,
    deadline: float,
) -> None:
    """Poll the model-updates topic and the heartbeats together, so neither reading delays the other."""
    served_at: dict[str, float] = {}
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise RuntimeError(f"the inference worker exited with {worker.returncode}")
        if clock.update is None:
            read = _read_update(consumer, settings)
            if read is not None:
                clock.update, produced = read
                clock.published = produced - clock.t0_wall
                clock.version = clock.update["version"]
                log.info("published %s at %.1f s", clock.version, clock.published)
        version = _serving(watcher)
        if version is not None and version not in served_at:
            served_at[version] = time.monotonic() - clock.t0
        if clock.version is not None and clock.version in served_at:
            clock.serving = served_at[clock.version]
            log.info("worker serves %s at %.1f s", clock.version, clock.serving)
            return


def _rows_ingested(settings: Settings) -> int:
    with ReplayStore.open(settings.data_dir) as store:
        return store.count()


def _wait_until_up(
    loop: TrainerLoop, failed: threading.Event, watcher: RolloutWatcher, log_path: Path, timeout: float
) -> tuple[float, float]:
    """Seconds until the trainer is ready and until the worker's first heartbeat was read.

    Returns early (with what it has) when ``failed`` is set: the caller reports the trainer's error.
    """
    started = time.monotonic()
    trainer: float | None = None
    worker: float | None = None
    while (trainer is None or worker is None) and not failed.is_set():
        if time.monotonic() - started > timeout:
            tail = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
            raise RuntimeError(f"not up in {timeout:.0f} s: trainer {trainer}, worker {worker}; {tail}")
        watcher.poll(0.2)
        if worker is None and watcher.serving():
            worker = time.monotonic() - started
        if trainer is None and loop.ready.is_set():
            trainer = time.monotonic() - started
    return trainer or 0.0, worker or 0.0


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

    thread = threading.Thread(target=target, name="trainer", daemon=True)
    thread.start()
    # The worker starts while Ray does; neither start-up is counted.
    (worker,) = start_workers(settings, 1, settings.data_dir)
    watcher = RolloutWatcher(settings)
    consumer = None
    try:
        log_path = settings.data_dir / "worker-0.log"
        trainer_startup, worker_startup = _wait_until_up(loop, stop, watcher, log_path, 120.0)
        if errors:
            raise RuntimeError(f"trainer did not start: {errors[0]!r}") from errors[0]
        consumer = _updates_consumer(settings)

        clock = _Clock(time.monotonic(), time.time())
        with EventProducer(settings, "bench-engine") as producer:
            for record in records:
                producer.send(EXPERIENCES, record["signal_id"], record)
        produced = time.monotonic() - clock.t0
        ingested_at = None
        while ingested_at is None and time.monotonic() - clock.t0 < timeout and not stop.is_set():
            if _rows_ingested(settings) >= n:
                ingested_at = time.monotonic() - clock.t0
            else:
                time.sleep(0.2)
        _wait_for_serving(clock, consumer, watcher, worker, settings, clock.t0 + timeout)
    finally:
        if consumer is not None:
            consumer.close()
        watcher.close()
        worker.terminate()
        worker.wait(30)
        stop.set()
        thread.join(60)
    if errors:
        raise RuntimeError(f"trainer failed: {errors[0]!r}") from errors[0]
    outcome = loop.outcomes[0] if loop.outcomes else None
    serving = None if clock.serving is None else round(clock.serving, 2)
    published = None if clock.published is None else round(clock.published, 2)
    delta = None if clock.serving is None or clock.published is None else clock.serving - clock.published
    return {
        "seconds_to_serving": serving,
        "to_serving_s": serving,
        "to_published_s": published,
        "published_to_serving_s": None if delta is None else round(delta, 3),
        "measured_to": "serving: the inference worker's heartbeat acknowledging the new sizer version, "
        "read by the bench",
        "experiences": n,
        "seconds_to_produce": round(produced, 2),
        "seconds_to_ingest": None if ingested_at is None else round(ingested_at, 2),
        "seconds_training_run": None if outcome is None else round(outcome.seconds, 2),
        "trainer_startup_seconds": round(trainer_startup, 2),
        "worker_startup_seconds": round(worker_startup, 2),
        "version": clock.version,
        "gate_passed": None if outcome is None else outcome.gate_passed,
        "gate": None if outcome is None else outcome.report["gate"],
        "mode": None if outcome is None else outcome.mode,
        "iterations": settings.trainer.iterations,
        "target_seconds": TARGET_SECONDS,
        "load_average_1m": os.getloadavg()[0],
    }


def _seconds(value: float | None) -> str:
    return "not reached" if value is None else f"{value} s"


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
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    with tempfile.TemporaryDirectory(prefix="tradeloop-feedback-") as tmp:
        broker = None if args.bootstrap else EmbeddedBroker(port=free_port()).start()
        try:
            bootstrap = args.bootstrap or (broker.bootstrap if broker else "")
            settings = Settings(
                kafka_bootstrap=bootstrap, topic_prefix=f"fb{uuid.uuid4().hex[:6]}.", data_dir=Path(tmp),
                metrics_enabled=False, trainer={"min_new_experiences": args.experiences},  # type: ignore[arg-type]
            )  # fmt: skip
            result = run(settings, args.experiences, args.seed, args.timeout)
        finally:
            if broker is not None:
                broker.stop()
    gate = result["gate"] or {}
    gate_text = (
        f"{'passed' if gate.get('passed') else 'rejected'}: {gate.get('metric')} lower bound "
        f"{gate.get('lower_bound', float('nan')):.3g} vs {gate.get('reference')}"
    )
    target = f"<= {TARGET_SECONDS:.0f} s"
    rows = [
        ("experiences produced", f"{result['experiences']:,}", ""),
        ("produce", f"{result['seconds_to_produce']} s", ""),
        ("ingested into replay store", _seconds(result["seconds_to_ingest"]), ""),
        ("training run (PPO + gate + ONNX + publish)", _seconds(result["seconds_training_run"]), ""),
        ("experiences -> model published (to_published_s)", _seconds(result["to_published_s"]), ""),
        ("experiences -> model serving (to_serving_s)", _seconds(result["to_serving_s"]), target),
        ("published -> serving", _seconds(result["published_to_serving_s"]), ""),
        ("gate", gate_text, "passed"),
        ("trainer start-up (not counted)", f"{result['trainer_startup_seconds']} s", ""),
        ("inference worker start-up (not counted)", f"{result['worker_startup_seconds']} s", ""),
    ]
    report("feedback loop: new experiences -> model serving", rows, result, args.json)


if __name__ == "__main__":
    main()
