"""The engine SDK (streams.sdk.EngineClient) against a running inference worker."""

from __future__ import annotations

import itertools
import threading

import pytest

from streams.clock import new_event_id, now_us
from streams.kafka.producer import EventProducer
from streams.sdk import EngineClient, StrategyWeights
from streams.settings import Settings
from streams.topics import ALLOCATION_PERIODS
from tests.kit.inference.harness import ENGINE_VALUES, publish, running_worker, wait_until
from tests.kit.inference.model_factory import make_manifest, mlp_onnx, sizer_update, update_record

pytestmark = pytest.mark.integration

STRATEGIES = ["ema_cross_fast", "momentum_1", "breakout_2"]


def period(portfolio: str = "main") -> dict:
    n = len(STRATEGIES)
    return {
        "event_id": new_event_id(), "ts": now_us(), "portfolio": portfolio, "period_start": now_us() - 1,
        "period_seconds": 300.0, "strategies": STRATEGIES, "strategy_returns": [0.0] * n, "market": [0.1] * 8,
        "portfolio_state": [0.0] * 6, "strategy_sharpe": [0.5] * n, "strategy_drawdown": [0.1] * n,
        "regime": [0.0] * 4, "trades": 5,
    }  # fmt: skip


def test_request_size_gets_the_worker_decision(topics: Settings) -> None:
    publish(topics, sizer_update("v1", topics.signing_key(), constant=1.4))
    with running_worker(topics) as worker, EngineClient(topics) as engine:
        decision = engine.request_size(
            "sig-1", strategy="momentum_1", symbol="BTC-USD", side="BUY", score=0.7, features=ENGINE_VALUES,
            timeout=5.0,
        )  # fmt: skip
        assert decision.signal_id == "sig-1" and decision.model_version == "v1"
        assert decision.multiplier == pytest.approx(1.4) and not decision.fallback
        assert decision.worker_id == worker.worker_id
        futures = [
            engine.request_size_async(
                f"sig-{i}", strategy="breakout_2", symbol="ETH-USD", side="SELL", score=0.2, features={}
            )
            for i in range(2, 12)
        ]
        answers = [f.result(timeout=10.0) for f in futures]
        assert all(a.fallback_reason == "missing_features" and a.multiplier == 0.5 for a in answers)


def test_subscribers_receive_equal_weights_then_the_allocators_capped_steps(topics: Settings) -> None:
    received: list[StrategyWeights] = []
    lock = threading.Lock()

    def collect(weights: StrategyWeights) -> None:
        with lock:
            received.append(weights)

    with EventProducer(topics, "periods") as producer:
        producer.send(ALLOCATION_PERIODS, "main", period())
    settings = {"weights_interval_seconds": 0.3, "max_weight_step": 0.1}
    with running_worker(topics, **settings) as worker, EngineClient(topics) as engine:
        engine.subscribe_weights(collect)
        assert wait_until(lambda: len(received) >= 2, 10.0)
        first = received[0]
        assert first.portfolio == "main" and first.fallback and first.model_version is None
        assert first.weights == pytest.approx(dict.fromkeys(STRATEGIES, 1 / 3))
        n_in = 8 + 6 + 2 * len(STRATEGIES) + 4
        onnx = mlp_onnx(n_in=n_in, n_out=3, constant=(5.0, 0.0, 0.0))
        manifest = make_manifest("a1", onnx, name="allocator", n_inputs=n_in, strategies=STRATEGIES)
        publish(topics, update_record(manifest, onnx, topics.signing_key()))
        assert wait_until(lambda: worker.store.info().get("allocator") == "a1")
        assert wait_until(lambda: sum(w.model_version == "a1" for w in received) >= 4, 10.0)
        with lock:
            history = list(received)
        for before, after in itertools.pairwise(history):
            assert max(abs(after.weights[s] - before.weights[s]) for s in STRATEGIES) <= 0.1 + 1e-9
            assert sum(after.weights.values()) == pytest.approx(1.0)
        modelled = [w for w in history if w.model_version == "a1"]
        assert not any(w.fallback for w in modelled)
        assert modelled[-1].weights["ema_cross_fast"] > modelled[0].weights["ema_cross_fast"]
