"""Verifying a ModelUpdate before it may serve: the checks every serving process runs, in order.

The inference workers (``agents.inference``) and the engine's in-process sizer
(:class:`streams.engine_sizer.EngineSizer`) both call :func:`load_model`; a model serves nowhere
unless every check passes. The first failing check names the rejection reason
(:data:`streams.serving.constants.REJECTION_REASONS`):

1. ``unknown_model``: the name is not one of :data:`KNOWN_MODELS`;
2. ``oversized``: the ONNX is larger than ``max_bytes`` (checked before any hashing);
3. ``unsigned``, ``bad_signature``, ``bad_manifest``, ``checksum_mismatch``: the HMAC-SHA256 of the
   manifest and the ONNX sha256 it carries (:func:`streams.manifest.verify_update`);
4. ``bad_manifest``: name and version differ from the signed manifest, a transform that is not
   the model's, normalisation statistics of the wrong length or not finite (std > 0);
5. ``spec_mismatch``: a sizer trained on another feature spec than :data:`streams.features.SIZER_SPEC`;
6. ``bad_onnx``: the graph does not load, lacks the declared input or output, or a probe run at the
   training mean is not finite (:func:`streams.serving.runtime.build_model`).

Example:
    >>> load_model({"model_name": "pricer", "version": "v1", "onnx": b""}, b"key", 100)
    Traceback (most recent call last):
    ...
    streams.serving.errors.ModelRejectedError: model update pricer:v1 rejected: unknown_model: ...
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

from streams.errors import SignatureError
from streams.features import SIZER_SPEC
from streams.manifest import Manifest, verify_update
from streams.serving.constants import ALLOCATOR, SIZER
from streams.serving.errors import ModelRejectedError
from streams.serving.runtime import LoadedModel, build_model

__all__ = ["KNOWN_MODELS", "check_manifest", "load_model", "reject"]

# The transform each model name must declare: a sizer answers one clipped multiplier, an allocator
# a softmax over its strategies.
KNOWN_MODELS: Final = {SIZER: "clip", ALLOCATOR: "softmax"}


def reject(reason: str, detail: str, record: Mapping[str, Any]) -> ModelRejectedError:
    """The rejection of ``record`` for ``reason``."""
    return ModelRejectedError(
        reason, detail, str(record.get("model_name", "")), str(record.get("version", ""))
    )


def check_manifest(manifest: Manifest, record: Mapping[str, Any]) -> int:
    """The number of outputs the manifest promises; raises when it cannot be served.

    Raises:
        ModelRejectedError: ``bad_manifest`` or ``spec_mismatch``.
    """
    if manifest.name != record["model_name"] or manifest.version != record["version"]:
        raise reject("bad_manifest", "record name/version differ from the signed manifest", record)
    transform = KNOWN_MODELS[manifest.name]
    if manifest.output_transform != transform:
        raise reject("bad_manifest", f"{manifest.name} needs output_transform {transform!r}", record)
    same_spec = manifest.feature_spec_digest == SIZER_SPEC.digest and tuple(manifest.feature_names) == (
        SIZER_SPEC.names
    )
    if manifest.name == SIZER and not same_spec:
        raise reject(
            "spec_mismatch",
            f"trained on spec {manifest.feature_spec_version!r} ({manifest.feature_spec_digest[:12]}), "
            f"serving {SIZER_SPEC.version!r} ({SIZER_SPEC.digest[:12]})",
            record,
        )
    n = len(manifest.feature_names)
    if n == 0 or len(manifest.obs_mean) != n or len(manifest.obs_std) != n:
        raise reject("bad_manifest", "feature_names, obs_mean and obs_std differ in length", record)
    if not all(math.isfinite(m) for m in manifest.obs_mean) or not all(
        math.isfinite(s) and s > 0 for s in manifest.obs_std
    ):
        raise reject("bad_manifest", "obs_mean must be finite and obs_std finite and > 0", record)
    if manifest.name == ALLOCATOR:
        if not manifest.strategies:
            raise reject("bad_manifest", "an allocator needs its strategies", record)
        return len(manifest.strategies)
    return 1


def load_model(record: Mapping[str, Any], key: bytes, max_bytes: int) -> LoadedModel:
    """Verify a decoded ModelUpdate record and build its session.

    Raises:
        ModelRejectedError: with ``reason`` in :data:`streams.serving.constants.REJECTION_REASONS`.
    """
    if record["model_name"] not in KNOWN_MODELS:
        raise reject("unknown_model", f"known models are {sorted(KNOWN_MODELS)}", record)
    onnx: bytes = record["onnx"]
    if len(onnx) > max_bytes:
        raise reject("oversized", f"{len(onnx)} bytes > {max_bytes}", record)
    try:
        manifest = verify_update(record["manifest_json"], onnx, record["signature"], key)
    except SignatureError as exc:
        raise reject(exc.reason, str(exc), record) from exc
    n_outputs = check_manifest(manifest, record)
    return build_model(manifest, onnx, n_outputs, record)
