"""The exported policy: ONNX contract, parity with torch, fixed-size start, warm-start algebra."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from streams.features import SIZER_SPEC
from trainers.errors import ExportError
from trainers.export import INPUT_NAME, OUTPUT_NAME, OnnxSizer, check_parity, export_onnx
from trainers.policy import (
    OBS_CLIP,
    DeterministicSizer,
    SizerPolicyNet,
    dead_unit_share,
    policy_from_state,
    renormalise_first_layers,
)

N = SIZER_SPEC.size


def _trained_like(seed: int = 0) -> SizerPolicyNet:
    torch.manual_seed(seed)
    policy = SizerPolicyNet(N, [32, 32])
    torch.nn.init.normal_(policy.mean.weight, std=0.8)
    return policy.eval()


def test_untrained_policy_is_the_fixed_size_baseline() -> None:
    obs = np.random.default_rng(0).normal(size=(64, N)).astype(np.float32)
    with torch.no_grad():
        out = DeterministicSizer(SizerPolicyNet(N, [32, 32]))(torch.as_tensor(obs)).numpy()
    np.testing.assert_allclose(out, 1.0, atol=1e-6)


def test_onnx_contract_names_shapes_and_opset() -> None:
    model = onnx.load_from_string(export_onnx(_trained_like(), N))
    assert max(op.version for op in model.opset_import if op.domain in ("", "ai.onnx")) >= 17
    assert [i.name for i in model.graph.input] == [INPUT_NAME] == ["obs"]
    assert [o.name for o in model.graph.output] == [OUTPUT_NAME] == ["action"]
    dims = model.graph.output[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and dims[1].dim_value == 1
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT


def test_onnx_matches_torch_within_tolerance_and_stays_in_bounds() -> None:
    policy = _trained_like()
    onnx_bytes = export_onnx(policy, N)
    obs = (np.random.default_rng(1).normal(size=(2000, N)) * 4).astype(np.float32)
    assert check_parity(onnx_bytes, policy, obs, atol=1e-5) <= 1e-5
    out = OnnxSizer(onnx_bytes).predict(obs)
    assert out.min() >= 0.25 and out.max() <= 2.0 and out.std() > 0.05


def test_parity_check_fails_on_a_different_network() -> None:
    obs = np.random.default_rng(2).normal(size=(100, N)).astype(np.float32)
    with pytest.raises(ExportError, match="differ"):
        check_parity(export_onnx(_trained_like(0), N), _trained_like(1), obs, atol=1e-5)


def test_renormalised_weights_compute_the_same_function_on_new_statistics() -> None:
    rng = np.random.default_rng(3)
    policy = _trained_like()
    state = {f"_pi.{k}": v.numpy() for k, v in policy.state_dict().items()}
    x = rng.normal(size=(500, N)) * 2 + 1
    old_mean, old_std = rng.normal(size=N), rng.uniform(0.5, 2, size=N)
    new_mean, new_std = rng.normal(size=N), rng.uniform(0.5, 2, size=N)
    moved = policy_from_state(
        renormalise_first_layers(state, old_mean, old_std, new_mean, new_std), N, [32, 32]
    )
    old_obs = torch.as_tensor((x - old_mean) / old_std, dtype=torch.float32)
    new_obs = torch.as_tensor((x - new_mean) / new_std, dtype=torch.float32)
    keep = (old_obs.abs().max(1).values < OBS_CLIP) & (new_obs.abs().max(1).values < OBS_CLIP)
    with torch.no_grad():
        before = DeterministicSizer(policy)(old_obs[keep])
        after = DeterministicSizer(moved)(new_obs[keep])
    torch.testing.assert_close(after, before, atol=1e-4, rtol=0)


def test_dead_unit_share_sees_saturation() -> None:
    policy = SizerPolicyNet(N, [16])
    obs = np.random.default_rng(4).normal(size=(256, N)).astype(np.float32)
    assert dead_unit_share(policy, obs) < 0.5
    with torch.no_grad():
        policy.net[0].weight.mul_(1000.0)
    assert dead_unit_share(policy, obs) > 0.5
