"""One inference worker on the embedded broker: decisions, fallbacks, rejections, kill switch, shadow."""

from __future__ import annotations

import time

import pytest

from agents.inference.rollout import serving_versions
from streams.avro.batches import to_columns
from streams.kafka.consumer import EventConsumer
from streams.kafka.producer import EventProducer
from streams.serving.control import FORCE_FALLBACK, FREEZE_UPDATES, RELEASE_FALLBACK, UNFREEZE_UPDATES
from streams.serving.metrics import DEAD_LETTERS, REJECTIONS, SHADOW_DECISIONS
from streams.settings import Settings
from streams.topics import DEAD_LETTER, MODEL_UPDATES, OUTCOMES
from tests.kit.inference.harness import Engine, publish, running_worker, send_control, wait_until
from tests.kit.inference.model_factory import make_manifest, mlp_onnx, sizer_update, update_record

pytestmark = pytest.mark.integration


def test_decisions_carry_the_model_version_and_fall_back_with_reasons(topics: Settings) -> None:
    key = topics.signing_key()
    with running_worker(topics, canary_share=0.0) as worker, Engine(topics) as engine:
        none = engine.ask(score=0.9)
        assert none["fallback"] and none["fallback_reason"] == "no_model" and none["multiplier"] == 1.5
        assert none["model_name"] == "rule" and none["model_version"] is None
        publish(topics, sizer_update("v1", key, constant=1.7))
        assert wait_until(lambda: worker.store.info().get("sizer") == "v1")
        served = engine.ask()
        assert served["model_version"] == "v1" and not served["fallback"]
        assert served["multiplier"] == pytest.approx(1.7) and served["worker_id"] == worker.worker_id
        assert 0 < served["latency_us"] < 1_000_000
        missing = engine.ask(score=0.1, features={"eng_momentum": 0.3})
        assert missing["fallback_reason"] == "missing_features" and missing["multiplier"] == 0.5
        unknown = engine.ask(strategy="pairs_trading_1")
        assert unknown["fallback_reason"] == "missing_features"
        # The acknowledgement is on the heartbeats topic for the trainer and `tradeloop status`.
        assert serving_versions(topics, timeout=10.0)[worker.worker_id]["sizer"] == "v1"


def test_bad_updates_are_rejected_and_the_last_good_model_keeps_serving(topics: Settings) -> None:
    key = topics.signing_key()
    publish(topics, sizer_update("v1", key, constant=1.7))
    good = sizer_update("v2", key, constant=0.6)
    onnx = bytearray(good["onnx"])
    onnx[len(onnx) // 2] ^= 0x55
    small = mlp_onnx(seed=1)
    big = mlp_onnx(seed=1, hidden=200)
    with (
        running_worker(topics, canary_share=0.0, max_update_bytes=len(small) * 2) as worker,
        Engine(topics) as e,
    ):
        assert worker.store.info()["sizer"] == "v1"
        wrong_spec = update_record(make_manifest("v2", small, feature_spec_digest="f" * 64), small, key)
        bad = {
            "checksum_mismatch": [{**good, "onnx": bytes(onnx)}, {**good, "onnx": good["onnx"][:-64]}],
            "unsigned": [{**good, "signature": ""}],
            "bad_signature": [sizer_update("v2", b"not-the-deployment-key", constant=0.6)],
            "spec_mismatch": [wrong_spec],
            "oversized": [update_record(make_manifest("v2", big), big, key)],
        }
        for records in bad.values():
            for record in records:
                publish(topics, record)
        with EventProducer(topics, "test") as producer:  # a truncated record: not even Avro
            producer.send_raw(MODEL_UPDATES, "sizer", producer.codec.encode(MODEL_UPDATES, good)[:200])

        def rejected(reason: str) -> float:
            return REJECTIONS.labels(worker=worker.worker_id, model="sizer", reason=reason)._value.get()

        assert wait_until(lambda: all(rejected(r) == len(v) for r, v in bad.items()), 10.0), {
            r: rejected(r) for r in bad
        }
        assert wait_until(
            lambda: (
                REJECTIONS.labels(worker=worker.worker_id, model="sizer", reason="bad_record")._value.get()
                == 1
            )
        )
        assert DEAD_LETTERS.labels(worker=worker.worker_id, reason="truncated")._value.get() == 1
        decision = e.ask()
        assert decision["model_version"] == "v1" and decision["multiplier"] == pytest.approx(1.7)
        assert worker.store.info()["sizer.rejected"] == "v2:oversized"
    with EventConsumer(topics, "dlq-reader") as consumer:
        consumer.assign_all([DEAD_LETTER])
        dead = [consumer.decode(m) for m in consumer.poll_batch(10, 2.0)]
    assert [d["reason"] for d in dead] == ["truncated"] and dead[0]["topic"] == topics.topic(MODEL_UPDATES)


def test_kill_switch_takes_effect_within_one_second(topics: Settings) -> None:
    publish(topics, sizer_update("v1", topics.signing_key(), constant=1.7))
    with running_worker(topics) as worker, Engine(topics) as engine:
        assert engine.ask()["model_version"] == "v1"
        send_control(topics, FORCE_FALLBACK)  # returns once the broker acknowledged the command
        issued = time.perf_counter()
        ids = []
        while time.perf_counter() - issued < 1.5:
            ids.append(engine.request())
            time.sleep(0.01)
        assert engine.wait_all(ids)
        late = [s for s in ids if engine.sent_at[s] - issued >= 1.0]
        assert late and all(engine.decisions[s][0]["fallback_reason"] == "kill_switch" for s in late)
        first = min(
            engine.received_at[s] for s in ids if engine.decisions[s][0]["fallback_reason"] == "kill_switch"
        )
        assert first - issued < 1.0
        assert worker.core.status() == "DEGRADED"
        send_control(topics, RELEASE_FALLBACK)
        assert wait_until(lambda: not worker.control.kill_switch, 1.0)
        assert engine.ask()["model_version"] == "v1"


def test_frozen_updates_are_held_until_unfrozen(topics: Settings) -> None:
    key = topics.signing_key()
    publish(topics, sizer_update("v1", key, constant=1.7))
    with running_worker(topics, canary_share=0.0) as worker, Engine(topics) as engine:
        send_control(topics, FREEZE_UPDATES)
        assert wait_until(lambda: worker.control.frozen, 1.0)
        publish(topics, sizer_update("v2", key, constant=0.6))
        assert wait_until(lambda: worker.store.held == 1, 5.0)
        assert engine.ask()["model_version"] == "v1"
        send_control(topics, UNFREEZE_UPDATES)
        assert wait_until(lambda: worker.store.info().get("sizer") == "v2", 5.0)
        assert engine.ask()["multiplier"] == pytest.approx(0.6)


def test_a_worker_started_after_a_freeze_serves_the_model_from_before_it(topics: Settings) -> None:
    key = topics.signing_key()
    publish(topics, sizer_update("v1", key, constant=1.7))
    send_control(topics, FREEZE_UPDATES)
    publish(topics, sizer_update("v2", key, constant=0.6))
    with running_worker(topics, canary_share=0.0) as worker:
        assert worker.store.info()["sizer"] == "v1" and worker.store.held == 1


def test_shadow_scores_live_requests_but_never_answers(topics: Settings) -> None:
    key = topics.signing_key()
    publish(topics, sizer_update("v1", key, constant=1.0))
    with running_worker(topics) as worker, Engine(topics) as engine:
        # Keyed apart from the serving model so compaction keeps both.
        publish(topics, sizer_update("s1", key, constant=1.5, role="SHADOW"), key="sizer:shadow")
        assert wait_until(lambda: worker.store.info().get("sizer.shadow") == "s1")
        ids = [engine.request() for _ in range(20)]
        assert engine.wait_all(ids)
        assert all(engine.decisions[s][0]["model_version"] == "v1" for s in ids)
        assert all(engine.decisions[s][0]["multiplier"] == pytest.approx(1.0) for s in ids)
        shadowed = SHADOW_DECISIONS.labels(worker=worker.worker_id, model="sizer")
        assert wait_until(lambda: shadowed._value.get() == 20)
        from streams.serving.metrics import SHADOW_DISAGREEMENT

        total = SHADOW_DISAGREEMENT.labels(worker=worker.worker_id, model="sizer")._sum.get()
        assert total == pytest.approx(20 * 0.5, rel=1e-4)


def test_a_ragged_outcome_batch_is_one_dead_letter_and_the_good_batch_after_it_is_not(topics: Settings) -> None:
    outcome = {
        "event_id": "o-1", "ts": 1, "signal_id": "s-1", "symbol": "SYM", "strategy": "momentum_fast",
        "entry_price": 100.0, "exit_price": 101.0, "size_multiplier": 1.0, "return_unit": 0.01, "pnl": 10.0,
        "fees": 0.0, "exit_reason": "TIME", "side": "BUY",
    }  # fmt: skip
    with running_worker(topics, canary_share=0.0) as worker, EventProducer(topics, "test") as producer:
        ragged = to_columns(OUTCOMES, [outcome, {**outcome, "event_id": "o-2", "signal_id": "s-2"}])
        ragged["pnl"] = ragged["pnl"][:1]  # one column shorter than the others
        producer.send_raw(OUTCOMES, "SYM", producer.codec.encode_batch(OUTCOMES, ragged))
        producer.send_raw(
            OUTCOMES, "SYM", producer.codec.encode_batch(OUTCOMES, to_columns(OUTCOMES, [outcome]))
        )
        producer.flush(10)
        assert wait_until(
            lambda: DEAD_LETTERS.labels(worker=worker.worker_id, reason="ragged_batch")._value.get() == 1,
            10.0,
        )
    with EventConsumer(topics, "dlq-reader") as consumer:
        consumer.assign_all([DEAD_LETTER])
        dead = [consumer.decode(m) for m in consumer.poll_batch(10, 2.0)]
    assert [d["reason"] for d in dead] == ["ragged_batch"] and dead[0]["topic"] == topics.topic(OUTCOMES)
