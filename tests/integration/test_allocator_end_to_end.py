"""The allocator end to end, on one short real training run shared by the module's tests:

simulated allocation periods on the topic -> ``train --once --model allocator`` (ingest, PPO, gate,
ONNX, signed registry entry) -> ModelUpdate on model-updates -> an in-process inference worker
serves it -> StrategyWeights with its version reach an SDK subscriber -> ``models show allocator``.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from streams.config.trainer import AllocatorTrainerSettings, TrainerSettings
from streams.kafka.admin import create_topics
from streams.kafka.producer import EventProducer
from streams.manifest import verify_update
from streams.sdk import EngineClient, StrategyWeights
from streams.serving.verify import load_model
from streams.settings import Settings
from streams.topics import ALLOCATION_PERIODS
from tests.kit.bus import read_updates
from tests.kit.inference.harness import running_worker, wait_until
from tests.kit.simulated_periods import PeriodBackfill, simulate_periods
from tradeloop.cli import _global
from tradeloop.commands import models
from trainers.allocator.env import observation
from trainers.allocator.export import OnnxAllocator
from trainers.allocator.pipeline import MODEL
from trainers.allocator.track import train_allocator_once
from trainers.registry import ModelRegistry
from trainers.run.parts import RunOutcome

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@dataclass(frozen=True)
class Trained:
    settings: Settings
    periods: PeriodBackfill
    outcome: RunOutcome


@pytest.fixture(scope="module")
def trained(bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trained]:
    """One allocator trained on ~15,000 simulated signals in 30 s periods (no stream features, for
    speed), published on a fresh topic prefix. Ray starts once for the module."""
    settings = Settings(
        kafka_bootstrap=bootstrap, topic_prefix=f"t{uuid.uuid4().hex[:10]}.", partitions=3,
        data_dir=tmp_path_factory.mktemp("allocator") / "data", metrics_enabled=False,
        session_timeout_ms=6000, heartbeat_interval_ms=1000,
        trainer=TrainerSettings(allocator=AllocatorTrainerSettings(iterations=8)),
    )  # fmt: skip
    create_topics(settings)
    periods = simulate_periods(seed=11, n_signals=15_000, period_seconds=30.0, market=False)
    with EventProducer(settings, "test-agents") as producer:
        for record in periods.records:
            producer.send(ALLOCATION_PERIODS, record["portfolio"], record)
    outcome = train_allocator_once(settings)
    yield Trained(settings, periods, outcome)
    from trainers.rl.ppo import shutdown_ray

    shutdown_ray()


def test_short_training_beats_equal_weights_on_holdout(trained: Trained) -> None:
    report = trained.outcome.report
    policies = report["policies"]
    assert trained.outcome.gate_passed and trained.outcome.published
    assert report["gate"]["reference"] == "equal" and report["gate"]["lower_bound"] > 0
    assert policies["candidate"]["sharpe"] > policies["equal"]["sharpe"]
    assert policies["candidate"]["sharpe"] > policies["inverse_vol"]["sharpe"]
    history = report["weight_history"]
    assert len(history["period_start"]) == report["holdout_rows"] >= 100
    weights = np.array(history["weights"]["candidate"])
    assert np.all(weights >= 0) and np.allclose(weights.sum(axis=1), 1.0, atol=1e-5)
    assert report["parity_max_abs_diff"] <= 1e-5
    registry = ModelRegistry(trained.settings.data_dir, name=MODEL)
    assert registry.serving_version == trained.outcome.version


def test_published_update_reads_back_and_a_worker_accepts_it(trained: Trained) -> None:
    key = trained.settings.signing_key()
    updates = [(k, u) for k, u in read_updates(trained.settings, 1) if u["model_name"] == MODEL]
    (raw_key, update), *_ = updates
    assert raw_key == b"allocator" and update["version"] == trained.outcome.version
    manifest = verify_update(update["manifest_json"], update["onnx"], update["signature"], key)
    assert (
        manifest.output_transform == "softmax" and manifest.strategies == trained.outcome.report["strategies"]
    )
    assert load_model(update, key, max_bytes=16_000_000).n_outputs == len(manifest.strategies)


def test_weights_reach_an_sdk_subscriber(trained: Trained) -> None:
    settings, version = trained.settings, trained.outcome.version
    received: list[StrategyWeights] = []
    lock = threading.Lock()

    def collect(weights: StrategyWeights) -> None:
        with lock:
            received.append(weights)

    # A second portfolio trades other strategies: the allocator cannot serve it (flagged fallback).
    other = {**trained.periods.records[-1], "portfolio": "other", "strategies": ["x", "y"],
             "strategy_returns": [0.0, 0.0], "strategy_sharpe": [0.1, 0.2], "strategy_drawdown": [0.0, 0.0]}  # fmt: skip
    with EventProducer(settings, "test-agents") as producer:
        producer.send(ALLOCATION_PERIODS, "other", other)
    with (
        running_worker(settings, weights_interval_seconds=0.3, max_weight_step=1.0) as worker,
        EngineClient(settings) as engine,
    ):
        engine.subscribe_weights(collect)
        assert wait_until(lambda: worker.store.info().get(MODEL) == version, 15.0)
        served = lambda: [w for w in received if w.portfolio == "main" and w.model_version == version]  # noqa: E731
        assert wait_until(lambda: len(served()) >= 2 and any(w.portfolio == "other" for w in received), 15.0)
        with lock:
            latest = served()[-1]
            fallback = [w for w in received if w.portfolio == "other"][-1]
    assert not latest.fallback and sum(latest.weights.values()) == pytest.approx(1.0, abs=1e-6)
    assert fallback.fallback and fallback.model_version is None
    assert fallback.weights == pytest.approx({"x": 0.5, "y": 0.5})
    # The served weights are the model's softmax for the newest period (max step 1: no capping).
    registry = ModelRegistry(settings.data_dir, name=MODEL)
    model = registry.load(version, settings.signing_key())
    strategies = model.manifest.strategies
    raw = np.array([observation(trained.periods.records[-1], strategies)])
    mean, std = np.array(model.manifest.obs_mean), np.array(model.manifest.obs_std)
    expected = OnnxAllocator(model.onnx).weights(((raw - mean) / std).astype(np.float32))[0]
    assert [latest.weights[s] for s in strategies] == pytest.approx(expected.tolist(), abs=1e-5)

    # `tradeloop models show allocator` reads the same weights back from the topic.
    app = typer.Typer(pretty_exceptions_enable=False)
    app.callback()(_global)
    models.register(app)
    args = ["--data-dir", str(settings.data_dir), "--bootstrap", settings.bootstrap,
            "--prefix", settings.topic_prefix, "models", "show", "allocator", "--json"]  # fmt: skip
    result = CliRunner().invoke(app, args, env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    state = json.loads(result.output)
    assert state["serving"] == version and state["topic_error"] is None
    assert state["current"]["main"]["model_version"] == version
    assert state["history"][-1]["version"] == version and state["history"][-1]["published"]


def test_models_show_allocator_without_a_broker_uses_the_holdout(trained: Trained, tmp_path: Path) -> None:
    app = typer.Typer(pretty_exceptions_enable=False)
    app.callback()(_global)
    models.register(app)
    args = ["--data-dir", str(trained.settings.data_dir), "models", "show", "allocator", "--no-topic"]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "hold-out mean" in result.output and trained.outcome.version in result.output
