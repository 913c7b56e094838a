"""A short real training run on simulator backfill: experiences on the topic -> PPO -> gate -> ONNX
-> signed model on model-updates. Interrupted once and resumed; then a warm-started run."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from streams.kafka.producer import EventProducer
from streams.manifest import verify_update
from streams.settings import Settings
from streams.topics import EXPERIENCES
from tests.kit.bus import read_updates
from tests.kit.simulated_experiences import backfill_experiences
from trainers.errors import TrainingInterrupted
from trainers.registry import ModelRegistry
from trainers.sizer.export import OnnxSizer
from trainers.sizer.pipeline import SizerPipeline
from trainers.sizer.track import train_sizer_once
from trainers.store.replay import ReplayStore
from trainers.store.trainlog import TrainLog

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class StopAfter:
    """Quacks like threading.Event: reports 'set' from the n-th check on."""

    def __init__(self, n: int) -> None:
        self.checks = 0
        self.n = n

    def is_set(self) -> bool:
        self.checks += 1
        return self.checks > self.n


@pytest.fixture()
def ray_session() -> Iterator[None]:
    yield
    from trainers.rl.ppo import shutdown_ray

    shutdown_ray()


def test_training_beats_fixed_size_and_publishes(topics: Settings, ray_session: None) -> None:
    settings = topics.model_copy(update={"trainer": topics.trainer.model_copy(update={"warm_iterations": 2})})
    records, oracle = backfill_experiences(seed=5, n_signals=6000)
    with EventProducer(settings, "test-engine") as producer:
        for record in records:
            producer.send(EXPERIENCES, record["signal_id"], record)

    # Ingest, then interrupt the first run after 3 iterations; it stays resumable.
    with ReplayStore.open(settings.data_dir) as store:
        from trainers.store.ingest import Ingestor

        ingestor = Ingestor(settings, store)
        ingestor.start()
        ingestor.drain(deadline=120)
        ingestor.close()
        assert store.count() == len(records)
        pipeline = SizerPipeline(
            settings,
            store,
            ModelRegistry(settings.data_dir),
            TrainLog.open(settings.data_dir),
            progress=False,
        )
        with pytest.raises(TrainingInterrupted):
            pipeline.run("test", stop=StopAfter(3))  # type: ignore[arg-type]

    outcome = train_sizer_once(settings)  # resumes the interrupted run, then gates and publishes
    report: dict[str, Any] = outcome.report
    assert report["training"]["resumed"] is True and outcome.mode == "full"
    iterations = TrainLog.open(settings.data_dir).iterations(outcome.run_id)
    assert [i["iteration"] for i in iterations] == list(range(1, settings.trainer.iterations + 1))

    policies = report["policies"]
    assert policies["candidate"]["sharpe"] > policies["fixed"]["sharpe"] + 0.03
    assert policies["candidate"]["mean_return"] > policies["fixed"]["mean_return"]
    assert report["gate"]["reference"] == "fixed" and report["gate"]["lower_bound"] > 0
    assert outcome.gate_passed and outcome.published
    assert report["parity_max_abs_diff"] <= 1e-5

    (key, update), *_ = read_updates(settings, 1)
    assert key == b"sizer" and update["version"] == outcome.version
    manifest = verify_update(
        update["manifest_json"], update["onnx"], update["signature"], settings.signing_key()
    )
    assert manifest.training["mode"] == "full" and manifest.data_window["rows"] == len(records)
    hold = records[-report["holdout_rows"] :]
    states = np.array([r["state"] for r in hold])
    obs = ((states - np.array(manifest.obs_mean)) / np.array(manifest.obs_std)).astype(np.float32)
    sizes = OnnxSizer(update["onnx"]).predict(obs)
    assert sizes.min() >= 0.25 and sizes.max() <= 2.0
    # The learned sizes follow the simulator's hidden expected return.
    truth = np.array([oracle[r["signal_id"]] for r in hold])
    assert np.corrcoef(sizes, truth)[0, 1] > 0.3

    # The next run warm-starts from the serving model and says so.
    warm = train_sizer_once(settings, ingest=False)
    assert warm.mode == "warm" and warm.report["training"]["mode_reason"].startswith("warm start from")
    assert warm.report["gate"]["reference"] == "serving" and "serving" in warm.report["policies"]
