"""The exported sizer: ONNX contract, parity with torch, fixed-size start."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from streams.features import SIZER_SPEC
from tests.kit.trainers.policies import trained_like_policy
from trainers.errors import ExportError
from trainers.rl.onnx_export import INPUT_NAME, OUTPUT_NAME
from trainers.rl.policy import PolicyNet
from trainers.sizer.export import DeterministicSizer, OnnxSizer, check_parity, export_onnx

N = SIZER_SPEC.size


def test_untrained_policy_is_the_fixed_size_baseline() -> None:
    obs = np.random.default_rng(0).normal(size=(64, N)).astype(np.float32)
    with torch.no_grad():
        out = DeterministicSizer(PolicyNet(N, [32, 32]))(torch.as_tensor(obs)).numpy()
    np.testing.assert_allclose(out, 1.0, atol=1e-6)


def test_onnx_contract_names_shapes_and_opset() -> None:
    model = onnx.load_from_string(export_onnx(trained_like_policy(N), N))
    assert max(op.version for op in model.opset_import if op.domain in ("", "ai.onnx")) >= 17
    assert [i.name for i in model.graph.input] == [INPUT_NAME] == ["obs"]
    assert [o.name for o in model.graph.output] == [OUTPUT_NAME] == ["action"]
    dims = model.graph.output[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and dims[1].dim_value == 1
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT


def test_onnx_matches_torch_within_tolerance_and_stays_in_bounds() -> None:
    policy = trained_like_policy(N)
    onnx_bytes = export_onnx(policy, N)
    obs = (np.random.default_rng(1).normal(size=(2000, N)) * 4).astype(np.float32)
    assert check_parity(onnx_bytes, policy, obs, atol=1e-5) <= 1e-5
    out = OnnxSizer(onnx_bytes).predict(obs)
    assert out.min() >= 0.25 and out.max() <= 2.0 and out.std() > 0.05


def test_parity_check_fails_on_a_different_network() -> None:
    obs = np.random.default_rng(2).normal(size=(100, N)).astype(np.float32)
    with pytest.raises(ExportError, match="differ"):
        check_parity(export_onnx(trained_like_policy(N, 0), N), trained_like_policy(N, 1), obs, atol=1e-5)
