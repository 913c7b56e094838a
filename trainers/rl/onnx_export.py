"""ONNX export of an inference-only torch module and the torch/onnxruntime parity check.

RLlib has no ONNX export for RLModules, so each model kind's inference-only forward pass
(:class:`trainers.sizer.export.DeterministicSizer`,
:class:`trainers.allocator.export.DeterministicAllocator`) is exported with
``torch.onnx.export`` (the TorchScript-based exporter, ``dynamo=False``, opset 17). The graph has
one input ``obs``, float32 ``[batch, n_features]`` already normalised with the manifest's
``obs_mean`` / ``obs_std``, and one output ``action``, float32 ``[batch, m]``; what ``action``
means is the kind's contract with the inference workers.
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

__all__ = ["INPUT_NAME", "OPSET", "OUTPUT_NAME", "check_module_parity", "export_module", "onnx_session"]

INPUT_NAME: Final = "obs"
OUTPUT_NAME: Final = "action"
OPSET: Final = 17


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
