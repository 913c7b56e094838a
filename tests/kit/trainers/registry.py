"""Signed sizer versions in a local model registry, for the trainer's and inference tests."""

from __future__ import annotations

import numpy as np

from streams.features import SIZER_SPEC
from streams.manifest import Manifest, onnx_digest, sign_manifest
from trainers.registry import ModelRegistry
from trainers.rl.policy import PolicyNet
from trainers.sizer.export import export_onnx

__all__ = ["KEY", "add_version"]

KEY = b"test-key"


def add_version(registry: ModelRegistry, status: str = "candidate", key: bytes = KEY) -> str:
    version = registry.new_version()
    onnx = export_onnx(PolicyNet(SIZER_SPEC.size, [8]), SIZER_SPEC.size)
    manifest = Manifest(
        name="sizer", version=version, parent=registry.serving_version, created_us=1,
        feature_spec_version=SIZER_SPEC.version, feature_spec_digest=SIZER_SPEC.digest,
        feature_names=list(SIZER_SPEC.names), obs_mean=[0.0] * SIZER_SPEC.size,
        obs_std=[1.0] * SIZER_SPEC.size, onnx_sha256=onnx_digest(onnx), action_low=0.25, action_high=2.0,
        metrics={"holdout_sharpe": 0.1},
    )  # fmt: skip
    text, signature = sign_manifest(manifest, key)
    state = {"_pi.mean.bias": np.zeros(1, dtype=np.float32)}
    registry.save(text, signature, onnx, {"gate": {"passed": True}}, state, np.zeros((5, 3)), status)
    return version
