"""ONNX export of the deterministic sizer and the torch/onnxruntime parity check.

RLlib has no ONNX export for RLModules, so the inference-only forward pass
(:class:`trainers.policy.DeterministicSizer`) is exported with ``torch.onnx.export`` (the
TorchScript-based exporter, ``dynamo=False``, opset 17). The contract with the inference workers:

* input ``obs``: float32 ``[batch, n_features]``, already normalised with the manifest's
  ``obs_mean`` / ``obs_std`` as ``(x - mean) / std``;
* output ``action``: float32 ``[batch, 1]``, the deterministic size multiplier in env units
  (already within [0.25, 2.0]; workers still clip to their bounds).
"""

from __future__ import annotations

import io
from typing import Final

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from trainers.errors import ExportError
from trainers.policy import DeterministicSizer, SizerPolicyNet

__all__ = [
    "INPUT_NAME",
    "OPSET",
    "OUTPUT_NAME",
    "OnnxSizer",
    "check_module_parity",
    "check_parity",
    "export_module",
    "export_onnx",
    "onnx_session",
]

INPUT_NAME: Final = "obs"
OUTPUT_NAME: Final = "action"
OPSET: Final = 17


def export_onnx(policy: SizerPolicyNet, n_features: int) -> bytes:
    """ONNX bytes of the deterministic forward pass of ``policy``.

    Raises:
        ExportError: the exporter or the ONNX checker failed.
    """
    return export_module(DeterministicSizer(policy), n_features)


def export_module(module: nn.Module, n_features: int) -> bytes:
    """ONNX bytes of an inference-only module: ``obs`` [batch, n_features] -> ``action`` [batch, m].

    Raises:
        ExportError: the exporter or the ONNX checker failed.
    """
    model = module.eval()
    buffer = io.BytesIO()
    try:
        torch.onnx.export(
            model,
            (torch.zeros(1, n_features, dtype=torch.float32),),
            buffer,  # type: ignore[arg-type]  # file-like objects are accepted at runtime
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )
        onnx.checker.check_model(onnx.load_from_string(buffer.getvalue()), full_check=True)
    except (RuntimeError, ValueError, onnx.checker.ValidationError) as exc:
        raise ExportError(f"ONNX export failed: {exc}") from exc
    return buffer.getvalue()


def onnx_session(onnx_bytes: bytes) -> ort.InferenceSession:
    """A one-thread CPU onnxruntime session."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])


class OnnxSizer:
    """An onnxruntime session over sizer ONNX bytes: normalised obs -> multipliers."""

    def __init__(self, onnx_bytes: bytes) -> None:
        self._session = onnx_session(onnx_bytes)

    def predict(self, obs: np.ndarray) -> np.ndarray:
        """Multipliers ``[batch]`` for normalised float32 observations ``[batch, n]``."""
        out = self._session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(obs, dtype=np.float32)})
        return np.asarray(out[0], dtype=np.float64).reshape(-1)


def check_parity(onnx_bytes: bytes, policy: SizerPolicyNet, obs: np.ndarray, atol: float) -> float:
    """Max |onnxruntime - torch| over ``obs``; raises unless it is within ``atol``.

    Raises:
        ExportError: the outputs differ by more than ``atol`` (or have the wrong shape).
    """
    return check_module_parity(onnx_bytes, DeterministicSizer(policy), obs, atol)


def check_module_parity(onnx_bytes: bytes, module: nn.Module, obs: np.ndarray, atol: float) -> float:
    """Max |onnxruntime - torch| of ``module`` over ``obs``; raises unless it is within ``atol``.

    Raises:
        ExportError: the outputs differ by more than ``atol`` (or have the wrong shape).
    """
    with torch.no_grad():
        expected = module.eval()(torch.as_tensor(obs, dtype=torch.float32)).numpy()
    got = onnx_session(onnx_bytes).run([OUTPUT_NAME], {INPUT_NAME: obs.astype(np.float32)})[0]
    if got.shape != expected.shape or got.dtype != np.float32:
        raise ExportError(f"ONNX output {got.dtype}{got.shape}, torch {expected.dtype}{expected.shape}")
    worst = float(np.max(np.abs(got - expected))) if len(obs) else 0.0
    if not worst <= atol:
        raise ExportError(f"ONNX and torch differ by {worst:.3g} > {atol:g} on {len(obs)} hold-out states")
    return worst
