"""Canary rollout against the embedded broker: judged on live outcomes, rolled back without an operator."""

from __future__ import annotations

import random

import pytest

from agents.inference.rollout import RolloutWatcher
from streams.features import SIZER_SPEC
from streams.serving.metrics import CANARY_ROLLBACKS
from streams.settings import Settings
from tests.kit.inference.harness import Engine, publish, running_worker, wait_until
from tests.kit.inference.model_factory import make_manifest, sizer_update, sqrt_onnx, update_record

pytestmark = pytest.mark.integration

CANARY = {"canary_share": 0.5, "canary_decisions": 30}


def trade(engine: Engine, count: int, mean_return: float, seed: int = 1) -> list[dict]:
    """Ask for ``count`` sizes and report every outcome; the market returns ``mean_return`` +/- noise."""
    rng = random.Random(seed)
    decisions = []
    for _ in range(count):
        decision = engine.ask()
        decisions.append(decision)
        engine.outcome(decision["signal_id"], mean_return + rng.gauss(0, 0.002), decision["multiplier"])
    return decisions


def test_an_underperforming_canary_is_rolled_back_without_an_operator(topics: Settings) -> None:
    key = topics.signing_key()
    publish(topics, sizer_update("v1", key, constant=1.0))
    with (
        running_worker(topics, **CANARY) as worker,
        Engine(topics, batched_outcomes=False) as engine,  # outcomes one per record, keyed by signal id
        RolloutWatcher(topics) as watcher,
    ):
        # v2 doubles every size, and the market is losing: each trade it sizes loses more than v1 would.
        publish(topics, sizer_update("v2", key, constant=2.0))
        assert wait_until(lambda: worker.store.info().get("sizer.canary") == "v2")
        decisions = trade(engine, 150, mean_return=-0.01)
        by_canary = [d for d in decisions if d["model_version"] == "v2"]
        assert 30 <= len(by_canary) < 120  # about half, and enough to judge
        assert wait_until(lambda: worker.store.info().get("sizer.rolled_back") == "v2", 10.0)
        assert worker.store.info()["sizer"] == "v1" and "sizer.canary" not in worker.store.info()
        assert (
            CANARY_ROLLBACKS.labels(worker=worker.worker_id, model="sizer", reason="uplift")._value.get() == 1
        )
        after = [engine.ask() for _ in range(20)]
        assert {d["model_version"] for d in after} == {"v1"}
        # ...and it says so on its heartbeats.
        assert wait_until(lambda: watcher.poll() >= 0 and watcher.serving().get(worker.worker_id, {}).get(
            "sizer.rolled_back") == "v2", 10.0)  # fmt: skip


def test_a_canary_that_keeps_failing_is_rolled_back_on_its_fallback_rate(topics: Settings) -> None:
    key = topics.signing_key()
    publish(topics, sizer_update("v1", key, constant=1.0))
    onnx = sqrt_onnx()
    mean = [0.0] * SIZER_SPEC.size
    mean[0] = 0.5  # any score below 0.5 makes this model answer NaN
    with running_worker(topics, **CANARY) as worker, Engine(topics) as engine:
        publish(topics, update_record(make_manifest("v2", onnx, obs_mean=mean), onnx, key))
        assert wait_until(lambda: worker.store.info().get("sizer.canary") == "v2")
        decisions = [engine.ask(score=0.3) for _ in range(40)]
        failed = [d for d in decisions if d["fallback_reason"] == "model_error"]
        assert failed and all(d["multiplier"] == 0.5 for d in failed)  # the rule answered, not an error
        assert wait_until(lambda: worker.store.info().get("sizer.rolled_back") == "v2", 5.0)
        assert CANARY_ROLLBACKS.labels(
            worker=worker.worker_id, model="sizer", reason="fallback_rate"
        )._value.get()
        assert all(not engine.ask(score=0.3)["fallback"] for _ in range(10))


def test_a_good_canary_is_promoted_to_every_request(topics: Settings) -> None:
    key = topics.signing_key()
    publish(topics, sizer_update("v1", key, constant=1.0))
    with running_worker(topics, **CANARY) as worker, Engine(topics) as engine:
        publish(topics, sizer_update("v2", key, constant=1.8))
        assert wait_until(lambda: worker.store.info().get("sizer.canary") == "v2")
        trade(engine, 150, mean_return=0.01)
        assert wait_until(lambda: worker.store.info().get("sizer") == "v2", 10.0)
        assert {engine.ask()["model_version"] for _ in range(20)} == {"v2"}
        assert worker.store.slot("sizer").previous.version == "v1"
