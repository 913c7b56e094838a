"""The contract for engines in other languages: a published update verified and served with plain code.

``foreign_engine`` reads what the trainer publishes with a plain confluent-kafka consumer and
fastavro, verifies it with ``hmac``/``hashlib`` and runs it with onnxruntime, from the README's
description alone. Here it must agree with tradeloop: accept the good update, reject the tampered
and the wrongly signed one, and size a signal exactly as the serving core does.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from streams.clock import new_event_id, now_us
from streams.features import SIZER_SPEC
from streams.kafka.producer import EventProducer
from streams.serving.core import ServingCore
from streams.settings import Settings
from streams.topics import FEATURES, MODEL_UPDATES
from tests.integration import foreign_engine as foreign
from tests.kit.inference.harness import ENGINE_VALUES, publish
from tests.kit.inference.model_factory import make_manifest, update_record

pytestmark = pytest.mark.integration


def tanh_sizer_onnx(rng: np.random.Generator) -> bytes:
    """``action = 1 + 0.5 tanh(obs @ w + b)``: answers inside (0.5, 1.5), so nothing is clipped."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    n = SIZER_SPEC.size
    w = rng.normal(scale=0.4, size=(n, 1)).astype(np.float32)
    nodes = [
        helper.make_node("MatMul", ["obs", "w"], ["xw"]),
        helper.make_node("Add", ["xw", "b"], ["z"]),
        helper.make_node("Tanh", ["z"], ["t"]),
        helper.make_node("Mul", ["t", "half"], ["h"]),
        helper.make_node("Add", ["h", "one"], ["action"]),
    ]
    consts = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array([0.1], np.float32), "b"),
              numpy_helper.from_array(np.array([0.5], np.float32), "half"),
              numpy_helper.from_array(np.array([1.0], np.float32), "one")]  # fmt: skip
    graph = helper.make_graph(
        nodes, "sizer", [helper.make_tensor_value_info("obs", TensorProto.FLOAT, ["batch", n])],
        [helper.make_tensor_value_info("action", TensorProto.FLOAT, ["batch", 1])], consts,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def test_the_foreign_engine_imports_nothing_of_tradeloop() -> None:
    tree = ast.parse(Path(foreign.__file__).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}  # fmt: skip
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}  # fmt: skip
    assert imported <= {"__future__", "hashlib", "hmac", "io", "json", "math", "collections", "pathlib",
                        "typing", "fastavro", "numpy", "onnxruntime", "confluent_kafka"}, imported  # fmt: skip


def test_the_readme_contract_verifies_and_serves_what_tradeloop_publishes(topics: Settings) -> None:
    key = topics.signing_key()
    rng = np.random.default_rng(3)
    onnx = tanh_sizer_onnx(rng)
    # Non-trivial normalisation, so that a reader who forgets it (or inverts it) disagrees.
    mean = rng.normal(scale=0.3, size=SIZER_SPEC.size).tolist()
    std = rng.uniform(0.5, 2.0, size=SIZER_SPEC.size).tolist()
    good = update_record(make_manifest("f1", onnx, obs_mean=mean, obs_std=std, action_low=0.1, action_high=1.8),
                         onnx, key)  # fmt: skip
    tampered = dict(good, version="f2", onnx=onnx[:-1] + bytes([onnx[-1] ^ 1]))
    forged = update_record(make_manifest("f3", onnx), onnx, b"someone-elses-key")
    for record in (good, tampered, forged):
        publish(topics, record)
    stream = rng.normal(scale=0.2, size=len(SIZER_SPEC.stream)).tolist()
    with EventProducer(topics, "test-agents", config={"linger.ms": 0}) as producer:
        producer.send(FEATURES, "ETH-USD", {"event_id": new_event_id(), "ts": now_us(), "symbol": "ETH-USD",
                                            "spec_version": SIZER_SPEC.version, "values": stream, "trade_count": 4})  # fmt: skip

    # The foreign engine: plain consumer, fastavro, the .avsc files, hmac, hashlib, onnxruntime.
    updates_topic = foreign.AvroTopic("ModelUpdate.avsc")
    updates = [updates_topic.decode(v) for v in foreign.read_topic(topics.bootstrap, topics.topic(MODEL_UPDATES))]
    by_version = {u["version"]: u for u in updates}
    assert set(by_version) == {"f1", "f2", "f3"}
    with pytest.raises(foreign.Rejected, match="checksum_mismatch"):
        foreign.verify(by_version["f2"], key)
    with pytest.raises(foreign.Rejected, match="bad_signature"):
        foreign.verify(by_version["f3"], key)
    sizer = foreign.ForeignSizer(by_version["f1"], key)
    assert foreign.spec_digest() == SIZER_SPEC.digest and SIZER_SPEC.names == foreign.NAMES
    snapshots = foreign.AvroTopic("FeatureSnapshot.avsc")
    (snapshot,) = [snapshots.decode(v) for v in foreign.read_topic(topics.bootstrap, topics.topic(FEATURES))]
    assert snapshot["spec_version"] == foreign.SPEC_VERSION

    # tradeloop's serving core, given the same update and snapshot, answers the same.
    core = ServingCore(topics, "reference")
    assert core.store.apply(good).kind == "serving"
    core.observe(FEATURES, snapshot)
    cases = [("breakout_fast", "BUY", 0.7), ("mean_reversion_2", "SELL", 0.3), ("momentum", "BUY", 0.95)]
    answers = []
    for strategy, side, score in cases:
        observation = foreign.ForeignSizer.observation(strategy, side, score, ENGINE_VALUES, snapshot["values"])
        mine = sizer.size(observation)
        _, (record,) = core.answer([{"ts": 1, "signal_id": strategy, "client_id": "c", "strategy": strategy,
                                     "symbol": "ETH-USD", "side": side, "score": score, "features": ENGINE_VALUES}])  # fmt: skip
        assert record["model_version"] == "f1"
        assert mine == pytest.approx(record["multiplier"], abs=1e-6), (strategy, mine, record)
        answers.append(mine)
    assert len(set(answers)) == len(answers) and all(0.5 < a < 1.5 for a in answers)

    # A signal with a missing engine feature gets the rule in both.
    with pytest.raises(ValueError, match="fallback"):
        foreign.ForeignSizer.observation("momentum", "BUY", 0.9, {}, snapshot["values"])
    _, (record,) = core.answer([{"ts": 1, "signal_id": "m", "client_id": "c", "strategy": "momentum",
                                 "symbol": "ETH-USD", "side": "BUY", "score": 0.9, "features": {}}])  # fmt: skip
    assert record["fallback_reason"] == "missing_features" and record["multiplier"] == foreign.rule(0.9)
