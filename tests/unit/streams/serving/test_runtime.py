"""The folded normalisation and the one-row fast path give exactly what normalise-then-run gives."""

from __future__ import annotations

import threading

import numpy as np
import onnxruntime as ort

from streams.features import SIZER_SPEC
from streams.serving.verify import load_model
from tests.kit.inference.model_factory import make_manifest, mlp_onnx, update_record

KEY = b"unit-test-key"


def test_folded_graph_matches_normalise_then_run_on_random_rows() -> None:
    rng = np.random.default_rng(0)
    n = SIZER_SPEC.size
    onnx = mlp_onnx(seed=3)
    mean = rng.normal(size=n).tolist()
    std = rng.uniform(0.1, 3.0, size=n).tolist()
    model = load_model(
        update_record(make_manifest("v1", onnx, obs_mean=mean, obs_std=std), onnx, KEY), KEY, 10**8
    )
    plain = ort.InferenceSession(onnx, providers=["CPUExecutionProvider"])
    obs = rng.normal(scale=2.0, size=(64, n)).astype(np.float32)
    expected = plain.run(
        ["action"], {"obs": ((obs - np.float32(mean)) / np.float32(std)).astype(np.float32)}
    )[0]
    np.testing.assert_allclose(model.run(obs), expected, rtol=1e-5, atol=1e-6)
    rows = np.vstack([model.run(obs[i : i + 1]) for i in range(len(obs))])  # the IOBinding path
    np.testing.assert_allclose(rows, expected, rtol=1e-5, atol=1e-6)


def test_one_row_path_is_safe_from_two_threads() -> None:
    onnx = mlp_onnx(seed=4)
    model = load_model(update_record(make_manifest("v1", onnx), onnx, KEY), KEY, 10**8)
    rng = np.random.default_rng(1)
    obs = rng.normal(size=(200, SIZER_SPEC.size)).astype(np.float32)
    expected = model.run(obs)
    results: dict[int, np.ndarray] = {}

    def score(offset: int) -> None:
        results[offset] = np.vstack([model.run(obs[i : i + 1]) for i in range(len(obs))])

    threads = [threading.Thread(target=score, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for rows in results.values():
        np.testing.assert_allclose(rows, expected, rtol=1e-5, atol=1e-6)
