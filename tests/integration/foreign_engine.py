"""An engine written from the README's contract alone: it uses nothing of tradeloop.

It reads the model-updates and features topics with a plain confluent-kafka consumer, decodes
records with fastavro and the ``.avsc`` files, verifies a ModelUpdate with ``hmac`` and
``hashlib``, loads the ONNX with onnxruntime and sizes a signal. Every constant below is copied
from the README ("Loading a model from another language"), not imported: the test that uses this
module checks that tradeloop and this reading of its contract agree, and another test checks that
this module imports no tradeloop package.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import fastavro
import numpy as np
import onnxruntime as ort
from confluent_kafka import Consumer, TopicPartition
from fastavro.schema import fingerprint, to_parsing_canonical_form

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"

# The sizer's feature spec (README): version, then the names in observation order.
SPEC_VERSION = "sizer-v1"
FAMILIES = ("ema_cross", "mean_reversion", "breakout", "momentum")
ENGINE = ("eng_trend_strength", "eng_zscore", "eng_breakout_distance", "eng_momentum", "eng_volatility",
          "eng_spread_bps")  # fmt: skip
STREAM = ("ret_1m", "ret_5m", "ret_30m", "rv_1m", "rv_5m", "rv_30m", "rv_ratio_1m_30m", "ema_fast_dev",
          "ema_slow_dev", "ema_cross", "rsi_14", "atr_14", "volume_z", "vwap_dev_5m", "vwap_dev_30m",
          "intensity_1m", "intensity_5m", "buy_ratio_1m", "range_5m", "drawdown_30m", "price_z_30m",
          "ret_autocorr_5m")  # fmt: skip
NAMES = ("score", "side_sign", *(f"family_{f}" for f in FAMILIES), *ENGINE, *STREAM)
LOW, HIGH = 0.25, 2.0  # the deployment's bounds (tradeloop's defaults)


class Rejected(Exception):
    """A ModelUpdate this engine must not serve."""


class AvroTopic:
    """Decodes one schema's single-object encoded records: C3 01, 8-byte fingerprint, Avro body."""

    def __init__(self, schema_file: str) -> None:
        self.schema = fastavro.parse_schema(json.loads((SCHEMAS / schema_file).read_text()))
        pcf = to_parsing_canonical_form(self.schema)
        # fastavro's hex is the CRC-64-AVRO fingerprint's 8 bytes little-endian, as the header holds them.
        self.header = b"\xc3\x01" + bytes.fromhex(fingerprint(pcf, "CRC-64-AVRO"))

    def decode(self, value: bytes) -> dict[str, Any]:
        if value[:10] != self.header:
            raise ValueError(f"not a single-object record of this schema: {value[:10].hex()}")
        record: dict[str, Any] = fastavro.schemaless_reader(io.BytesIO(value[10:]), self.schema)  # type: ignore[call-arg,assignment]
        return record


def read_topic(bootstrap: str, topic: str, timeout: float = 10.0) -> list[bytes]:
    """Every record value of every partition of ``topic``, from the beginning to the current end."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "foreign-engine",
                         "enable.auto.commit": False, "fetch.wait.max.ms": 10})  # fmt: skip
    try:
        partitions = consumer.list_topics(topic, timeout=timeout).topics[topic].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)[1] for p in partitions}
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        values: list[bytes] = []
        seen = dict.fromkeys(partitions, 0)
        while any(seen[p] < end for p, end in ends.items()):
            message = consumer.poll(timeout)
            if message is None:
                raise TimeoutError(f"{topic} not read to its end within {timeout}s")
            if message.error() is None:
                seen[message.partition()] = message.offset() + 1
                values.append(message.value())
        return values
    finally:
        consumer.close()


def spec_digest() -> str:
    """sha256 over the spec version and the names, one per line."""
    return hashlib.sha256("\n".join((SPEC_VERSION, *NAMES)).encode()).hexdigest()


def verify(update: Mapping[str, Any], key: bytes) -> dict[str, Any]:
    """The manifest of a ModelUpdate this engine may serve as its sizer; raises Rejected otherwise."""
    text: str = update["manifest_json"]
    expected = hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()
    if not update["signature"] or not hmac.compare_digest(expected, update["signature"]):
        raise Rejected("bad_signature")
    manifest: dict[str, Any] = json.loads(text)
    if not hmac.compare_digest(hashlib.sha256(update["onnx"]).hexdigest(), manifest["onnx_sha256"]):
        raise Rejected("checksum_mismatch")
    if (manifest["name"], manifest["version"]) != (update["model_name"], update["version"]):
        raise Rejected("bad_manifest")
    if manifest["name"] != "sizer" or manifest.get("output_transform", "clip") != "clip":
        raise Rejected("not a sizer")
    if manifest["feature_spec_digest"] != spec_digest() or tuple(manifest["feature_names"]) != NAMES:
        raise Rejected("spec_mismatch")
    if len(manifest["obs_mean"]) != len(NAMES) or len(manifest["obs_std"]) != len(NAMES):
        raise Rejected("bad_manifest")
    if not all(math.isfinite(s) and s > 0 for s in manifest["obs_std"]):
        raise Rejected("bad_manifest")
    return manifest


class ForeignSizer:
    """A verified sizer: observation -> normalise -> ONNX -> clip."""

    def __init__(self, update: Mapping[str, Any], key: bytes) -> None:
        self.manifest = verify(update, key)
        self.session = ort.InferenceSession(update["onnx"], providers=["CPUExecutionProvider"])
        self.input = self.manifest.get("input_name", "obs")
        self.output = self.manifest.get("output_name", "action")
        (graph_input,) = self.session.get_inputs()
        if graph_input.name != self.input or graph_input.type != "tensor(float)" or graph_input.shape[1] != len(NAMES):
            raise Rejected(f"bad_onnx: input {graph_input.name} {graph_input.type} {graph_input.shape}")
        if self.output not in {o.name for o in self.session.get_outputs()}:
            raise Rejected("bad_onnx: no output " + self.output)
        self.mean = np.asarray(self.manifest["obs_mean"], dtype=np.float64)
        self.std = np.asarray(self.manifest["obs_std"], dtype=np.float64)
        low, high = self.manifest.get("action_low"), self.manifest.get("action_high")
        self.low = max(LOW, low) if low is not None else LOW
        self.high = min(HIGH, high) if high is not None else HIGH

    @staticmethod
    def observation(strategy: str, side: str, score: float, features: Mapping[str, float],
                    snapshot: Sequence[float] | None) -> list[float]:  # fmt: skip
        """The raw observation in spec order (missing stream features are zeros)."""
        family = next((f for f in sorted(FAMILIES, key=len, reverse=True)
                       if strategy == f or strategy.startswith(f + "_")), None)  # fmt: skip
        if family is None or not math.isfinite(score) or not all(math.isfinite(features.get(n, math.nan)) for n in ENGINE):
            raise ValueError("a required feature is missing: use the fallback rule")
        stream = [v if math.isfinite(v) else 0.0 for v in snapshot] if snapshot is not None else [0.0] * len(STREAM)
        return [score, 1.0 if side == "BUY" else -1.0, *(1.0 if f == family else 0.0 for f in FAMILIES),
                *(features[n] for n in ENGINE), *stream]  # fmt: skip

    def size(self, observation: Sequence[float]) -> float:
        normalised = ((np.asarray(observation) - self.mean) / self.std).astype(np.float32).reshape(1, -1)
        value = float(self.session.run([self.output], {self.input: normalised})[0][0, 0])
        return min(max(value, self.low), self.high)


def rule(score: float) -> float:
    """The fallback rule: 1.5 above 0.8, 0.5 below 0.4, else 1.0."""
    return 1.5 if score > 0.8 else 0.5 if score < 0.4 else 1.0
