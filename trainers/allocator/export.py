"""The allocator's inference-only forward pass, its ONNX export and an onnxruntime wrapper.

Contract with the inference workers (``manifest.output_transform = "softmax"``):

* input ``obs``: float32 ``[batch, n_obs]``, already normalised with the manifest's ``obs_mean`` /
  ``obs_std`` (the workers fold that into the graph);
* output ``action``: float32 ``[batch, n_strategies]`` *logits*, in ``manifest.strategies`` order,
  within ``[-logit_bound, logit_bound]`` (``action_low`` / ``action_high`` in the manifest); the
  weights are their softmax, computed by the worker.

The logits are ``logit_bound x clip(mean, -1, 1)``: exactly what RLlib's env runner sends the env
for the deterministic action (it maps [-1, 1] onto the Box ``[-1, 1]`` and clips).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from streams.clock import now_us
from streams.manifest import Manifest, onnx_digest
from trainers.allocator.env import SPEC_VERSION, feature_names, softmax_weights, spec_digest
from trainers.rl.onnx_export import INPUT_NAME, OUTPUT_NAME, check_module_parity, export_module, onnx_session
from trainers.rl.policy import PolicyNet
from trainers.run.norm import NormStats

__all__ = [
    "DeterministicAllocator",
    "OnnxAllocator",
    "allocator_manifest",
    "allocator_parity",
    "export_allocator",
]


class DeterministicAllocator(nn.Module):
    """Normalised obs [batch, n] -> logits [batch, n_strategies] in [-bound, bound]."""

    def __init__(self, policy: PolicyNet, bound: float) -> None:
        super().__init__()
        self.policy = policy
        self.bound = bound

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.bound * torch.clamp(self.policy(obs), -1.0, 1.0)


def export_allocator(policy: PolicyNet, n_obs: int, bound: float) -> bytes:
    """ONNX bytes of the deterministic allocator.

    Raises:
        ExportError: the exporter or the ONNX checker failed.
    """
    return export_module(DeterministicAllocator(policy, bound), n_obs)


def allocator_parity(
    onnx: bytes, policy: PolicyNet, bound: float, obs: np.ndarray, atol: float
) -> float:
    """Max |onnxruntime - torch| of the logits over ``obs``.

    Raises:
        ExportError: they differ by more than ``atol``.
    """
    return check_module_parity(onnx, DeterministicAllocator(policy, bound), obs, atol)


class OnnxAllocator:
    """An onnxruntime session over allocator ONNX bytes."""

    def __init__(self, onnx_bytes: bytes) -> None:
        self._session = onnx_session(onnx_bytes)

    def logits(self, obs: np.ndarray) -> np.ndarray:
        """float32 logits ``[batch, k]`` for normalised observations ``[batch, n]``."""
        out = self._session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(obs, dtype=np.float32)})
        return np.asarray(out[0], dtype=np.float32)

    def weights(self, obs: np.ndarray) -> np.ndarray:
        """Weights ``[batch, k]`` (softmax of the logits, as the workers compute them)."""
        return softmax_weights(self.logits(obs))


def allocator_manifest(
    version: str,
    strategies: Sequence[str],
    norm: NormStats,
    onnx: bytes,
    bound: float,
    *,
    parent: str | None = None,
    metrics: Mapping[str, float] | None = None,
    data_window: Mapping[str, Any] | None = None,
    data_hash: str = "",
    training: Mapping[str, Any] | None = None,
) -> Manifest:
    """The manifest of an allocator (name ``allocator``, ``softmax`` over ``strategies``)."""
    return Manifest(
        name="allocator", version=version, parent=parent, created_us=now_us(),
        feature_spec_version=SPEC_VERSION, feature_spec_digest=spec_digest(strategies),
        feature_names=feature_names(strategies), obs_mean=norm.mean.tolist(), obs_std=norm.std.tolist(),
        onnx_sha256=onnx_digest(onnx), output_transform="softmax", action_low=-bound, action_high=bound,
        strategies=list(strategies), metrics=dict(metrics or {}), data_window=dict(data_window or {}),
        data_hash=data_hash, training=dict(training or {}),
    )  # fmt: skip
