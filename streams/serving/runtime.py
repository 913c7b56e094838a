"""Running a verified model: the manifest's normalisation folded into the graph, one-row fast path.

The trainer exports a graph that expects normalised observations, ``(x - obs_mean) / obs_std``
with the manifest's statistics. Doing that in numpy costs two array operations per call, as much
as the whole 2 x 64 MLP; so the worker prepends exactly that arithmetic to the graph as two ONNX
nodes (``Sub`` by ``obs_mean``, ``Mul`` by ``1 / obs_std``) and feeds raw observations. The
trainer's bytes are verified first and left untouched; the folded graph is built in memory, and a
unit test checks it against normalise-then-run.

Single-row calls (the usual case at low load) run through a pre-bound ``IOBinding``: the row is
copied into a bound buffer and ``run_with_iobinding`` writes into a bound output, which skips the
per-call argument handling of ``InferenceSession.run``.

Example:
    >>> model = build_model(manifest, onnx, 1, record)        # doctest: +SKIP
    >>> model.run(raw_obs)                                     # doctest: +SKIP
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, cast

import numpy as np
import onnx
import onnxruntime as ort
from numpy.typing import NDArray
from onnx import TensorProto, helper, numpy_helper

from streams.clock import now_us
from streams.manifest import Manifest
from streams.serving.errors import ModelRejectedError

__all__ = ["RAW_INPUT", "LoadedModel", "build_model", "fold_normalisation", "session_options"]

RAW_INPUT: Final = "tradeloop_raw_obs"


def session_options() -> ort.SessionOptions:
    """One thread per session: a 2x64 MLP is fastest single-threaded, and workers scale by process."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options


def fold_normalisation(model: onnx.ModelProto, manifest: Manifest) -> onnx.ModelProto:
    """A copy of ``model`` that takes raw observations and normalises them first, in the graph.

    Raises:
        ValueError: the graph has no float input named as the manifest says.
    """
    folded = onnx.ModelProto()
    folded.CopyFrom(model)
    graph = folded.graph
    inputs = [i for i in graph.input if i.name == manifest.input_name]
    if len(inputs) != 1 or inputs[0].type.tensor_type.elem_type != TensorProto.FLOAT:
        raise ValueError(f"no float input named {manifest.input_name!r}")
    mean = np.asarray(manifest.obs_mean, dtype=np.float32)
    inv_std = (1.0 / np.asarray(manifest.obs_std, dtype=np.float64)).astype(np.float32)
    graph.initializer.extend(
        [
            numpy_helper.from_array(mean, "tradeloop_obs_mean"),
            numpy_helper.from_array(inv_std, "tradeloop_inv_std"),
        ]
    )
    nodes = [
        helper.make_node("Sub", [RAW_INPUT, "tradeloop_obs_mean"], ["tradeloop_centred"]),
        helper.make_node("Mul", ["tradeloop_centred", "tradeloop_inv_std"], [manifest.input_name]),
    ]
    original = list(graph.node)
    del graph.node[:]
    graph.node.extend([*nodes, *original])
    kept = [i for i in graph.input if i.name != manifest.input_name]
    del graph.input[:]
    graph.input.extend(
        [helper.make_tensor_value_info(RAW_INPUT, TensorProto.FLOAT, ["batch", len(mean)]), *kept]
    )
    return folded


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A verified model, ready to run. Swapping means replacing the reference, never mutating it.

    The one-row buffers are the only mutable parts; a lock (never waited on: a busy buffer sends
    the call down the ordinary path) keeps two threads from sharing them.
    """

    manifest: Manifest
    session: ort.InferenceSession
    mean: NDArray[np.float32]
    n_outputs: int
    loaded_us: int
    record: Mapping[str, Any] = field(repr=False)
    _row_in: NDArray[np.float32] = field(repr=False)
    _row_out: NDArray[np.float32] = field(repr=False)
    _binding: Any = field(repr=False)
    _row_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def n_inputs(self) -> int:
        return len(self.mean)

    def run_row(self, row: list[float]) -> list[float]:
        """The outputs for one raw observation given as a list (the single-request path)."""
        if self._row_lock.acquire(blocking=False):
            try:
                self._row_in[0] = row
                self.session.run_with_iobinding(self._binding)
                return cast("list[float]", self._row_out[0].tolist())
            finally:
                self._row_lock.release()
        return cast("list[float]", self.run(np.asarray([row], dtype=np.float32))[0].tolist())

    def run(self, obs: NDArray[np.float32]) -> NDArray[np.float32]:
        """Raw outputs ``[batch, n_outputs]`` for raw (not normalised) observations ``[batch, n_inputs]``."""
        if len(obs) == 1 and self._row_lock.acquire(blocking=False):
            try:
                self._row_in[:] = obs
                self.session.run_with_iobinding(self._binding)
                return self._row_out.copy()
            finally:
                self._row_lock.release()
        out = self.session.run([self.manifest.output_name], {RAW_INPUT: obs})[0]
        return np.asarray(out, dtype=np.float32).reshape(len(obs), self.n_outputs)


def build_model(
    manifest: Manifest, onnx_bytes: bytes, n_outputs: int, record: Mapping[str, Any]
) -> LoadedModel:
    """Parse, fold, load and probe a verified model.

    Raises:
        ModelRejectedError: reason ``bad_onnx`` when the bytes cannot serve as the manifest says.
    """

    def reject(detail: str) -> ModelRejectedError:
        return ModelRejectedError("bad_onnx", detail, manifest.name, manifest.version)

    n = len(manifest.feature_names)
    try:
        graph = fold_normalisation(onnx.load_from_string(onnx_bytes), manifest)
        session = ort.InferenceSession(
            graph.SerializeToString(), session_options(), providers=["CPUExecutionProvider"]
        )
    # onnx and onnxruntime raise many exception types for unparsable or unloadable graphs.
    except Exception as exc:
        raise reject(f"cannot load it: {type(exc).__name__}: {str(exc)[:200]}") from exc
    if manifest.output_name not in {o.name for o in session.get_outputs()}:
        raise reject(f"no output named {manifest.output_name!r}")
    row_in = np.zeros((1, n), dtype=np.float32)
    row_out = np.zeros((1, n_outputs), dtype=np.float32)
    binding = session.io_binding()
    binding.bind_cpu_input(RAW_INPUT, row_in)
    binding.bind_output(manifest.output_name, "cpu", 0, np.float32, [1, n_outputs], row_out.ctypes.data)
    mean = np.asarray(manifest.obs_mean, dtype=np.float32)
    model = LoadedModel(manifest, session, mean, n_outputs, now_us(), record, row_in, row_out, binding)
    # A probe at the training mean, one row and a batch: finite values of the promised shape.
    try:
        probes = [model.run(mean.reshape(1, n)), model.run(np.tile(mean, (3, 1)))]
    except Exception as exc:  # any runtime failure (wrong width, bad op) means it cannot serve
        raise reject(f"probe run failed: {type(exc).__name__}: {str(exc)[:200]}") from exc
    if not all(np.isfinite(p).all() for p in probes):
        raise reject("probe run returned non-finite values")
    return model
