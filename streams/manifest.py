"""The model manifest and its signature: what crosses from the trainer to the inference workers.

A model travels as ``(manifest_json, onnx_bytes, signature)``. The manifest names the model, its
feature spec, normalisation statistics, metrics and the sha256 of the ONNX bytes; the signature is
an HMAC-SHA256 of the canonical manifest JSON with the deployment's key. Verifying both proves the
bytes are the ones the trainer approved.

Example:
    >>> m = Manifest(name="sizer", version="v1", parent=None, created_us=0,
    ...              feature_spec_version="sizer-v1", feature_spec_digest="d", feature_names=["a"],
    ...              obs_mean=[0.0], obs_std=[1.0], onnx_sha256=onnx_digest(b"x"))
    >>> text, sig = sign_manifest(m, b"key")
    >>> verify_update(text, b"x", sig, b"key").version
    'v1'
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from streams.errors import SignatureError

__all__ = ["Manifest", "canonical_json", "onnx_digest", "sign_manifest", "verify_update"]


class Manifest(BaseModel):
    """Everything a worker needs to trust and run a model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    version: str
    parent: str | None
    created_us: int
    feature_spec_version: str
    feature_spec_digest: str
    feature_names: list[str]
    obs_mean: list[float]
    obs_std: list[float]
    onnx_sha256: str
    input_name: str = "obs"
    output_name: str = "action"
    output_transform: str = "clip"  # "clip" (sizer multiplier) or "softmax" (allocator logits)
    action_low: float | None = None
    action_high: float | None = None
    strategies: list[str] = []
    metrics: dict[str, float] = {}
    data_window: dict[str, Any] = {}
    data_hash: str = ""
    training: dict[str, Any] = {}
    opset: int = 17


def canonical_json(manifest: Manifest) -> str:
    """Sorted-key, compact JSON: the exact text the signature covers."""
    return json.dumps(manifest.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))


def onnx_digest(onnx: bytes) -> str:
    return hashlib.sha256(onnx).hexdigest()


def _hmac(text: str, key: bytes) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def sign_manifest(manifest: Manifest, key: bytes) -> tuple[str, str]:
    """The canonical manifest JSON and its hex HMAC-SHA256 signature."""
    text = canonical_json(manifest)
    return text, _hmac(text, key)


def verify_update(manifest_json: str, onnx: bytes, signature: str, key: bytes) -> Manifest:
    """The manifest, once its signature and the ONNX checksum verify.

    Raises:
        SignatureError: with ``reason`` in {unsigned, bad_signature, bad_manifest, checksum_mismatch}.
    """
    if not signature:
        raise SignatureError("unsigned", "model update carries no signature")
    if not hmac.compare_digest(_hmac(manifest_json, key), signature):
        raise SignatureError("bad_signature", "HMAC does not match the manifest")
    try:
        manifest = Manifest.model_validate_json(manifest_json)
    except ValidationError as exc:
        raise SignatureError("bad_manifest", f"manifest does not parse: {exc.error_count()} errors") from exc
    if not hmac.compare_digest(onnx_digest(onnx), manifest.onnx_sha256):
        raise SignatureError("checksum_mismatch", "ONNX bytes do not match the manifest's sha256")
    return manifest
