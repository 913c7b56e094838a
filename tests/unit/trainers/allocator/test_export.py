"""The allocator's ONNX export: parity with torch, valid weights for any input, and the contract the
inference workers check (they load the signed update and turn the latest period into weights)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from agents.inference.weights import WeightsPlanner
from streams.manifest import sign_manifest
from streams.serving.verify import load_model
from tests.kit.trainers.periods import STRATEGIES, make_period
from trainers.allocator.env import observation
from trainers.allocator.export import (
    DeterministicAllocator,
    OnnxAllocator,
    allocator_manifest,
    allocator_parity,
    export_allocator,
)
from trainers.errors import ExportError
from trainers.rl.policy import PolicyNet
from trainers.run.norm import NormStats

N_OBS = 8 + 6 + 2 * len(STRATEGIES) + 4
BOUND = 4.0
KEY = b"allocator-test-key"


def _policy(seed: int = 0) -> PolicyNet:
    torch.manual_seed(seed)
    policy = PolicyNet(N_OBS, [16], n_actions=len(STRATEGIES), init_mean=0.0)
    with torch.no_grad():
        for p in policy.parameters():
            p.normal_(0.0, 0.8)  # far from the zero init, so clipping and softmax are exercised
    return policy.eval()


@pytest.fixture(scope="module")
def exported() -> tuple[PolicyNet, OnnxAllocator, bytes]:
    policy = _policy()
    onnx = export_allocator(policy, N_OBS, BOUND)
    return policy, OnnxAllocator(onnx), onnx


def test_untrained_allocator_gives_equal_weights() -> None:
    policy = PolicyNet(N_OBS, [16], n_actions=3, init_mean=0.0)
    weights = OnnxAllocator(export_allocator(policy, N_OBS, BOUND)).weights(np.ones((2, N_OBS), np.float32))
    np.testing.assert_allclose(weights, 1 / 3, atol=1e-7)


def test_onnx_matches_torch_and_parity_rejects_another_policy(
    exported: tuple[PolicyNet, OnnxAllocator, bytes],
) -> None:
    policy, _, onnx = exported
    obs = np.random.default_rng(1).normal(size=(256, N_OBS)).astype(np.float32)
    assert allocator_parity(onnx, policy, BOUND, obs, atol=1e-5) <= 1e-5
    with torch.no_grad():
        logits = DeterministicAllocator(policy, BOUND)(torch.as_tensor(obs)).numpy()
    assert np.abs(logits).max() <= BOUND and np.abs(logits).max() > 1.0
    with pytest.raises(ExportError):
        allocator_parity(onnx, _policy(seed=5), BOUND, obs, atol=1e-5)


@settings(max_examples=150, deadline=None)
@given(obs=arrays(np.float32, st.tuples(st.integers(1, 8), st.just(N_OBS)),
                  elements=st.floats(allow_nan=False, allow_infinity=False, width=32)))  # fmt: skip
def test_exported_weights_are_valid_for_any_finite_observation(
    exported: tuple[PolicyNet, OnnxAllocator, bytes], obs: np.ndarray
) -> None:
    _, model, _ = exported
    logits = model.logits(obs)
    assert logits.shape == (len(obs), len(STRATEGIES)) and np.all(np.abs(logits) <= BOUND)
    weights = model.weights(obs)
    assert np.all(np.isfinite(weights)) and np.all(weights >= 0)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-6)


def test_inference_worker_loads_the_signed_allocator_and_serves_its_weights(
    exported: tuple[PolicyNet, OnnxAllocator, bytes],
) -> None:
    _, model, onnx = exported
    rng = np.random.default_rng(2)
    obs = rng.normal(size=(50, N_OBS))
    norm = NormStats.fit(obs)
    manifest = allocator_manifest("v0001-test", STRATEGIES, norm, onnx, BOUND)
    text, signature = sign_manifest(manifest, KEY)
    record = {"model_name": "allocator", "version": "v0001-test", "manifest_json": text, "onnx": onnx,
              "signature": signature, "role": "SERVE", "reason": "promote"}  # fmt: skip
    loaded = load_model(record, KEY, max_bytes=10_000_000)
    period = make_period(7, strategies=["gamma", "alpha", "beta"], rng=rng)  # the worker maps by name
    target, version, reason = WeightsPlanner("w", max_step=1.0)._target(period, loaded, kill_switch=False)
    assert reason is None and version == "v0001-test" and list(target) == STRATEGIES
    raw = np.array([observation(period, STRATEGIES)])
    expected = model.weights(norm.apply(raw))[0]
    np.testing.assert_allclose(list(target.values()), expected, atol=1e-5)
    assert abs(sum(target.values()) - 1.0) <= 1e-6
