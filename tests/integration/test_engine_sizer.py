"""The engine's in-process sizer on the embedded broker: serve, hot-swap, obey control, report.

The models are published on the model-updates topic exactly as the trainer publishes them (signed
manifests), the feature snapshot on the features topic as the stream worker does; the sizer sees
nothing else.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import onnxruntime as ort
import pytest

from agents.inference.rollout import RolloutWatcher
from streams.clock import new_event_id, now_us
from streams.features import SIZER_SPEC, build_state
from streams.kafka.consumer import EventConsumer
from streams.kafka.producer import EventProducer
from streams.sdk import EngineClient, SizingDecision
from streams.serving.control import FORCE_FALLBACK, FREEZE_UPDATES, RELEASE_FALLBACK, UNFREEZE_UPDATES
from streams.settings import Settings
from streams.topics import FEATURES, SIZING_DECISIONS
from tests.kit.inference.harness import ENGINE_VALUES, publish, send_control, tuned, wait_until
from tests.kit.inference.model_factory import make_manifest, mlp_onnx, sizer_update, update_record

pytestmark = pytest.mark.integration

STREAM = [0.02 * (i - 10) for i in range(len(SIZER_SPEC.stream))]


def ask(sizer_client: EngineClient, signal_id: str | None = None, score: float = 0.6) -> SizingDecision:
    return sizer_client.local_sizer().size(
        signal_id or new_event_id(), strategy="momentum_fast", symbol="SYM", side="BUY", score=score,
        features=ENGINE_VALUES,
    )  # fmt: skip


def expected_output(onnx: bytes, stream: list[float] | None) -> float:
    """What the trainer's graph answers for the state the trainer would have built (mean 0, std 1)."""
    state, _ = build_state(SIZER_SPEC, score=0.6, side="BUY", family="momentum",
                           engine_features=ENGINE_VALUES, stream_values=stream)  # fmt: skip
    session = ort.InferenceSession(onnx, providers=["CPUExecutionProvider"])
    return float(session.run(None, {"obs": np.asarray([state], dtype=np.float32)})[0][0, 0])


def test_the_engine_sizes_in_process_hot_swaps_and_reports_like_a_worker(topics: Settings) -> None:
    # Bounds wide enough that the seeded MLP's raw answers (about +-0.1) are not clipped.
    settings = tuned(topics, canary_share=0.0, min_multiplier=-5.0)
    key = settings.signing_key()
    v1 = mlp_onnx(seed=21)
    publish(settings, update_record(make_manifest("v1", v1), v1, key))
    with EventProducer(settings, "test-agents", config={"linger.ms": 0}) as producer:
        producer.send(FEATURES, "SYM", {"event_id": new_event_id(), "ts": now_us(), "symbol": "SYM",
                                        "spec_version": SIZER_SPEC.version, "values": STREAM, "trade_count": 9})  # fmt: skip
    with EngineClient(settings, client_id="engine-under-test") as engine:
        sizer = engine.local_sizer(wait=30.0)
        assert engine.local_sizer() is sizer
        assert sizer.wait_serving("v1", 10.0), sizer.core.info()
        assert wait_until(lambda: sizer.core.features.get("SYM") is not None, 10.0)
        first = ask(engine, "sig-first")
        assert first.model_version == "v1" and not first.fallback and first.worker_id == sizer.sizer_id
        assert first.multiplier == pytest.approx(expected_output(v1, STREAM), abs=1e-5)
        assert abs(expected_output(v1, None) - expected_output(v1, STREAM)) > 1e-3  # the snapshot mattered
        assert 0 < first.latency_us < 100_000

        # A second version hot-swaps while the engine keeps sizing: no pause, no fallback, no going back.
        answered: list[SizingDecision] = []
        stop = threading.Event()

        def trade() -> None:
            while not stop.is_set():
                answered.append(ask(engine))
                time.sleep(0.001)

        trader = threading.Thread(target=trade)
        trader.start()
        try:
            time.sleep(0.3)
            published = time.monotonic()
            publish(settings, sizer_update("v2", key, constant=1.75))
            assert sizer.wait_serving("v2", 10.0)
            swap_seconds = time.monotonic() - published
            time.sleep(0.3)
        finally:
            stop.set()
            trader.join()
        versions = [d.model_version for d in answered]
        assert not any(d.fallback for d in answered) and set(versions) == {"v1", "v2"}
        assert versions.index("v2") > 0 and "v1" not in versions[versions.index("v2") :]
        assert swap_seconds < 5.0
        assert ask(engine).multiplier == pytest.approx(1.75)

        # The heartbeats carry the version (what `tradeloop status` and RolloutWatcher read) ...
        with RolloutWatcher(settings) as watcher:
            assert watcher.wait_for("sizer", "v2", workers=1, timeout=10.0)
            beat = watcher.latest[sizer.sizer_id]
            assert beat["component"] == "inference" and beat["info"]["engine"] == "engine-under-test"
            assert beat["status"] == "UP"
        # ... and the decisions are on the bus like the workers' (flushed on close below).
        sizer.close()
        reader = EventConsumer(settings, f"test-{new_event_id()[:6]}", "test", config={"fetch.wait.max.ms": 10})
        reader.assign_all([SIZING_DECISIONS], from_beginning=True)
        seen: dict[str, dict] = {}
        wanted = {"sig-first", *(d.signal_id for d in answered)}
        deadline = time.monotonic() + 10.0
        while not wanted <= seen.keys() and time.monotonic() < deadline:
            for message in reader.poll_batch(1000, 0.1):
                record = reader.decode(message)
                seen[record["signal_id"]] = record
        reader.close()
        record = seen["sig-first"]
        assert record["worker_id"] == sizer.sizer_id and record["client_id"] == "engine-under-test"
        assert record["model_version"] == "v1" and record["multiplier"] == pytest.approx(first.multiplier)
        assert wanted <= seen.keys(), f"{len(wanted - seen.keys())} decisions missing"


def test_the_engine_sizer_obeys_the_kill_switch_and_freeze_and_rejects_bad_updates(topics: Settings) -> None:
    settings = tuned(topics, canary_share=0.0)
    key = settings.signing_key()
    publish(settings, sizer_update("v1", key, constant=1.3))
    with EngineClient(settings) as engine:
        sizer = engine.local_sizer(wait=30.0)
        assert sizer.wait_serving("v1", 10.0)

        send_control(settings, FORCE_FALLBACK)
        started = time.monotonic()
        assert wait_until(lambda: ask(engine, score=0.9).fallback_reason == "kill_switch", 5.0)
        assert time.monotonic() - started < 1.5
        killed = ask(engine, score=0.9)
        assert killed.multiplier == 1.5 and killed.model_version is None and sizer.core.status() == "DEGRADED"
        send_control(settings, RELEASE_FALLBACK)
        assert wait_until(lambda: ask(engine).model_version == "v1", 5.0)

        # Tampered ONNX: verified like a worker verifies it, rejected, the last good model keeps serving.
        tampered = sizer_update("v2", key, constant=0.5)
        onnx = bytearray(tampered["onnx"])
        onnx[len(onnx) // 2] ^= 0x33
        publish(settings, {**tampered, "onnx": bytes(onnx)})
        assert wait_until(lambda: sizer.core.info().get("sizer.rejected") == "v2:checksum_mismatch", 10.0)
        assert ask(engine).model_version == "v1"

        # Frozen: a good update is held until the operator unfreezes.
        send_control(settings, FREEZE_UPDATES)
        assert wait_until(lambda: sizer.core.control.frozen, 5.0)
        publish(settings, sizer_update("v3", key, constant=0.8))
        assert wait_until(lambda: sizer.core.store.held == 1, 5.0) and sizer.serving_version == "v1"
        send_control(settings, UNFREEZE_UPDATES)
        assert sizer.wait_serving("v3", 10.0) and ask(engine).multiplier == pytest.approx(0.8)
        assert not sizer.failed
