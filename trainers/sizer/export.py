"""The sizer's inference-only forward pass, its ONNX export and an onnxruntime wrapper.

:class:`DeterministicSizer` maps the policy's mean to env units exactly as RLlib's env runner maps
an action (``low + (a + 1) * (high - low) / 2`` clipped to [low, high]), so the exported model
outputs the multiplier the env receives for the deterministic action. The export and the parity
check are :mod:`trainers.rl.onnx_export`'s. The contract with the inference workers:

* input ``obs``: float32 ``[batch, n_features]``, already normalised with the manifest's
  ``obs_mean`` / ``obs_std`` as ``(x - mean) / std``;
* output ``action``: float32 ``[batch, 1]``, the deterministic size multiplier in env units
  (already within [0.25, 2.0]; workers still clip to their bounds).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from trainers.rl.onnx_export import INPUT_NAME, OUTPUT_NAME, check_module_parity, export_module, onnx_session
from trainers.rl.policy import PolicyNet
from trainers.sizer.env import ACTION_HIGH, ACTION_LOW

__all__ = ["DeterministicSizer", "OnnxSizer", "check_parity", "export_onnx"]


class DeterministicSizer(nn.Module):
    """The exported forward pass: normalised obs [batch, n] -> multiplier [batch, 1] in env units."""

    def __init__(self, policy: PolicyNet, low: float = ACTION_LOW, high: float = ACTION_HIGH) -> None:
        super().__init__()
        self.policy = policy
        self.low = low
        self.high = high

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        mean = self.policy(obs)
        action = self.low + (mean + 1.0) * ((self.high - self.low) / 2.0)
        return torch.clamp(action, self.low, self.high)


def export_onnx(policy: PolicyNet, n_features: int) -> bytes:
    """ONNX bytes of the deterministic forward pass of ``policy``.

    Raises:
        ExportError: the exporter or the ONNX checker failed.
    """
    return export_module(DeterministicSizer(policy), n_features)


class OnnxSizer:
    """An onnxruntime session over sizer ONNX bytes: normalised obs -> multipliers."""

    def __init__(self, onnx_bytes: bytes) -> None:
        self._session = onnx_session(onnx_bytes)

    def predict(self, obs: np.ndarray) -> np.ndarray:
        """Multipliers ``[batch]`` for normalised float32 observations ``[batch, n]``."""
        out = self._session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(obs, dtype=np.float32)})
        return np.asarray(out[0], dtype=np.float64).reshape(-1)


def check_parity(onnx_bytes: bytes, policy: PolicyNet, obs: np.ndarray, atol: float) -> float:
    """Max |onnxruntime - torch| over ``obs``; raises unless it is within ``atol``.

    Raises:
        ExportError: the outputs differ by more than ``atol`` (or have the wrong shape).
    """
    return check_module_parity(onnx_bytes, DeterministicSizer(policy), obs, atol)
