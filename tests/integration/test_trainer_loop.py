"""The trainer loop end to end: experiences on the topic -> trigger -> run -> model update,
heartbeats and metrics. A tiny PPO configuration: this tests the loop, not learning quality."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, TopicPartition
from prometheus_client import REGISTRY

from streams.avro.codec import Codec
from streams.kafka.producer import EventProducer
from streams.settings import Settings
from streams.topics import EXPERIENCES, HEARTBEATS
from tests.kit.bus import read_updates
from tests.kit.trainers.records import bandit_records, make_record
from trainers.run.loop import TrainerLoop
from trainers.store.replay import ReplayStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TINY = {
    "iterations": 2, "train_batch_size": 512, "minibatch_size": 256, "num_epochs": 2, "num_envs": 8,
    "episode_len": 32, "min_new_experiences": 900, "min_train_rows": 200, "gate_margin": -100.0,
    "check_interval_seconds": 0.3, "bootstrap_samples": 200,
}  # fmt: skip


@pytest.fixture()
def ray_session() -> Iterator[None]:
    yield
    from trainers.rl.ppo import shutdown_ray

    shutdown_ray()


def _heartbeats(settings: Settings) -> list[dict]:
    full = settings.topic(HEARTBEATS)
    consumer = Consumer({"bootstrap.servers": settings.bootstrap, "group.id": "hb-reader"})
    parts = consumer.list_topics(full, timeout=10).topics[full].partitions
    consumer.assign([TopicPartition(full, p, 0) for p in parts])
    found: list[dict] = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        found += [
            Codec().decode(HEARTBEATS, m.value()) for m in consumer.consume(100, 0.3) if m.error() is None
        ]
    consumer.close()
    return sorted(found, key=lambda r: r["ts"])


def test_loop_trains_on_trigger_and_publishes(topics: Settings, ray_session: None) -> None:
    settings = topics.model_copy(update={"trainer": topics.trainer.model_copy(update=TINY)})
    before = (
        REGISTRY.get_sample_value("tradeloop_trainer_models_published_total", {"reason": "promote"}) or 0.0
    )
    loop = TrainerLoop(settings)
    stop = threading.Event()
    thread = threading.Thread(target=loop.run, args=(stop,), kwargs={"max_runs": 1}, daemon=True)
    thread.start()
    assert loop.ready.wait(120)

    records, _ = bandit_records(1000)
    censored = [make_record(5000 + i, status="CENSORED") for i in range(30)]
    with EventProducer(settings, "test-engine") as producer:
        for record in records + censored:
            producer.send(EXPERIENCES, record["signal_id"], record)
    thread.join(180)
    assert not thread.is_alive(), "the loop did not finish its run"

    (outcome,) = loop.outcomes
    assert outcome.published and outcome.mode == "full"
    assert outcome.reason.startswith("new_experiences")
    assert outcome.report["censored_excluded"] == 30
    assert outcome.report["holdout_rows"] == 250  # 25% of the 1000 trainable rows
    (_key, update), *_ = read_updates(settings, 1)
    assert update["version"] == outcome.version
    with ReplayStore.open(settings.data_dir) as store:
        assert store.count() == 1030 and store.count(trainable_only=True) == 1000

    after = REGISTRY.get_sample_value("tradeloop_trainer_models_published_total", {"reason": "promote"})
    assert after == before + 1
    beats = [b for b in _heartbeats(settings) if b["component_id"] == loop.ident]
    assert beats and beats[-1]["status"] == "STOPPING"
    assert beats[-1]["info"]["serving_model"] == outcome.version
    assert beats[-1]["gauges"]["runs"] == 1.0


@pytest.mark.faults
def test_failed_runs_are_retried_with_backoff_and_resumed(topics: Settings, ray_session: None) -> None:
    # A parity tolerance no float32 export can meet makes every run fail after training.
    broken = {**TINY, "parity_atol": 1e-15, "retry_base_seconds": 0.5, "retry_max_seconds": 4.0}
    settings = topics.model_copy(update={"trainer": topics.trainer.model_copy(update=broken)})
    loop = TrainerLoop(settings)
    stop = threading.Event()
    thread = threading.Thread(target=loop.run, args=(stop,), daemon=True)
    thread.start()
    assert loop.ready.wait(120)
    records, _ = bandit_records(1000)
    with EventProducer(settings, "test-engine") as producer:
        for record in records:
            producer.send(EXPERIENCES, record["signal_id"], record)
    deadline = time.monotonic() + 150
    while loop.backoff.failures < 3 and time.monotonic() < deadline:
        time.sleep(0.5)
    stop.set()
    thread.join(60)
    assert loop.backoff.failures >= 3 and not loop.outcomes
    assert REGISTRY.get_sample_value("tradeloop_trainer_training_failures_total") >= 3
    from trainers.store.trainlog import TrainLog

    runs = TrainLog.open(settings.data_dir).runs()
    assert all(r["status"] == "failed" and "differ" in r["error"] for r in runs)
    # The same run was retried from its checkpoint, not retrained from scratch each time.
    assert len({r["run_id"] for r in runs}) == 1
    iterations = TrainLog.open(settings.data_dir).iterations(runs[0]["run_id"])
    assert [i["iteration"] for i in iterations] == [1, 2]
