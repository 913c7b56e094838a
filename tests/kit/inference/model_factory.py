"""Tiny signed ONNX models for the inference tests and benchmarks.

The models are shaped like the trainer's: a torch MLP (2 x 64, tanh) on ``len(SIZER_SPEC.names)``
inputs, exported with ``torch.onnx.export`` at opset 17 with a dynamic batch axis, wrapped in a
manifest signed with the deployment key, as the trainer publishes them.
"""

from __future__ import annotations

import io
import warnings
from functools import cache
from typing import TYPE_CHECKING, Any

from streams.clock import new_event_id, now_us
from streams.features import SIZER_SPEC
from streams.manifest import Manifest, onnx_digest, sign_manifest

if TYPE_CHECKING:
    import torch

__all__ = ["make_manifest", "mlp_onnx", "sizer_update", "sqrt_onnx", "update_record"]


@cache
def mlp_onnx(
    n_in: int = SIZER_SPEC.size,
    n_out: int = 1,
    seed: int = 0,
    constant: float | tuple[float, ...] | None = None,
    hidden: int = 64,
) -> bytes:
    """ONNX bytes of a seeded MLP; with ``constant`` the last layer always outputs that value (per output)."""
    import torch

    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Linear(n_in, hidden), torch.nn.Tanh(),
        torch.nn.Linear(hidden, hidden), torch.nn.Tanh(),
        torch.nn.Linear(hidden, n_out),
    )  # fmt: skip
    if constant is not None:
        with torch.no_grad():
            net[4].weight.zero_()
            net[4].bias.copy_(torch.as_tensor(constant, dtype=torch.float32).expand(n_out))
    net.eval()
    return _export(net, n_in)


@cache
def sqrt_onnx(n_in: int = SIZER_SPEC.size) -> bytes:
    """ONNX of ``sqrt(obs[:, 0]) + 1``: finite at the training mean, NaN for a below-mean first feature."""
    import torch

    class Sqrt(torch.nn.Module):
        def forward(self, obs: torch.Tensor) -> torch.Tensor:
            return torch.sqrt(obs[:, :1]) + 1.0

    return _export(Sqrt(), n_in)


def _export(net: torch.nn.Module, n_in: int) -> bytes:
    import torch

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net, (torch.zeros(1, n_in),), buffer, input_names=["obs"], output_names=["action"],
            opset_version=17, dynamic_axes={"obs": {0: "batch"}, "action": {0: "batch"}}, dynamo=False,
        )  # fmt: skip
    return buffer.getvalue()


def make_manifest(version: str, onnx: bytes, name: str = "sizer", **overrides: Any) -> Manifest:
    """A manifest for ``onnx``: the sizer spec (or ``overrides``), zero mean and unit std."""
    n = SIZER_SPEC.size if name == "sizer" else overrides.pop("n_inputs", 8)
    fields: dict[str, Any] = {
        "name": name, "version": version, "parent": None, "created_us": now_us(),
        "feature_spec_version": SIZER_SPEC.version if name == "sizer" else "allocator-test",
        "feature_spec_digest": SIZER_SPEC.digest if name == "sizer" else "test",
        "feature_names": list(SIZER_SPEC.names) if name == "sizer" else [f"x{i}" for i in range(n)],
        "obs_mean": [0.0] * n, "obs_std": [1.0] * n, "onnx_sha256": onnx_digest(onnx),
        "output_transform": "clip" if name == "sizer" else "softmax",
    }  # fmt: skip
    fields.update(overrides)
    return Manifest(**fields)


def update_record(
    manifest: Manifest,
    onnx: bytes,
    key: bytes,
    role: str = "SERVE",
    reason: str = "promote",
    signature: str | None = None,
    manifest_json: str | None = None,
) -> dict[str, Any]:
    """A ModelUpdate record (signed with ``key`` unless ``signature``/``manifest_json`` override it)."""
    text, sig = sign_manifest(manifest, key)
    return {
        "event_id": new_event_id(), "ts": now_us(), "model_name": manifest.name, "version": manifest.version,
        "role": role, "manifest_json": text if manifest_json is None else manifest_json, "onnx": onnx,
        "signature": sig if signature is None else signature, "reason": reason,
    }  # fmt: skip


def sizer_update(version: str, key: bytes, constant: float | None = None, seed: int = 0, role: str = "SERVE",
                 **manifest: Any) -> dict[str, Any]:  # fmt: skip
    """A signed sizer update; with ``constant`` every answer is that multiplier (before clipping)."""
    onnx = mlp_onnx(seed=seed, constant=constant)
    return update_record(make_manifest(version, onnx, **manifest), onnx, key, role=role)
