"""How model updates are keyed on the compacted model-updates topic, and the record that clears a role.

The topic is compacted: the broker keeps only the newest record per key. Each role of a model
therefore has a key of its own, so that a worker that starts late still finds all of them:

* ``sizer`` (the model name alone): the serving model (role ``SERVE``);
* ``sizer:shadow``: the shadow (role ``SHADOW``).

A canary is not a published role: a ``SERVE`` update that reaches a worker already serving that
model becomes a canary there, and each worker settles it on its own evidence
(:mod:`streams.serving.canary`, :mod:`agents.inference.allocator_canary`).

**Clearing a role.** A shadow ends with a *clear record* on its key: a ModelUpdate with reason
``clear``, no ONNX bytes, the cleared version in ``version`` (informative) and, as
``manifest_json``, the canonical JSON ``{"clear":"shadow","model":"sizer"}`` signed with the
deployment key like a manifest. The newest record on the key is then the clear, so a late worker
loads no shadow either. (A Kafka tombstone would be the usual way, but the embedded Tansu broker
accepts null-value records and never returns them to consumers.) The serving model cannot be
cleared: publish a rollback, or use the kill switch.

The trainer builds the same keys and clear records (``trainers.registry``); both sides keep the
format in one small function each, since ``agents`` and ``trainers`` never import each other.

Example:
    >>> update_key("sizer", "SERVE"), update_key("sizer", "SHADOW")
    ('sizer', 'sizer:shadow')
    >>> clear_text("sizer", "SHADOW")
    '{"clear":"shadow","model":"sizer"}'
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any, Final

from streams.serving.constants import SERVE, SHADOW
from streams.serving.errors import ModelRejectedError

__all__ = ["CLEAR_REASON", "clear_text", "is_clear", "update_key", "verify_clear"]

CLEAR_REASON: Final = "clear"


def update_key(model: str, role: str) -> str:
    """The record key of ``model``'s ``role`` on the model-updates topic."""
    return model if role == SERVE else f"{model}:{role.lower()}"


def clear_text(model: str, role: str) -> str:
    """The canonical JSON a clear record of ``model``'s ``role`` carries and signs."""
    return json.dumps({"clear": role.lower(), "model": model}, sort_keys=True, separators=(",", ":"))


def is_clear(record: Mapping[str, Any]) -> bool:
    """Whether a decoded ModelUpdate clears its role instead of carrying a model."""
    return record.get("reason") == CLEAR_REASON and not record.get("onnx")


def verify_clear(record: Mapping[str, Any], key: bytes) -> None:
    """Check a clear record: signed with ``key``, naming its own model and a role that can be cleared.

    Raises:
        ModelRejectedError: ``unsigned``, ``bad_signature`` or ``bad_manifest``.
    """
    model, role = str(record.get("model_name", "")), str(record.get("role", ""))
    version = str(record.get("version", ""))
    signature = str(record.get("signature", ""))
    text = str(record.get("manifest_json", ""))
    if not signature:
        raise ModelRejectedError("unsigned", "clear record carries no signature", model, version)
    expected = hmac.new(key, text.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise ModelRejectedError("bad_signature", "HMAC does not match the clear record", model, version)
    if role != SHADOW:
        raise ModelRejectedError(
            "bad_manifest", f"role {role} cannot be cleared (only {SHADOW})", model, version
        )
    if text != clear_text(model, role):
        raise ModelRejectedError(
            "bad_manifest", "the signed text names another model or role", model, version
        )
