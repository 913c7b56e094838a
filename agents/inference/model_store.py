"""Verified models and the slots they serve from: verify, build off the serving path, swap atomically.

A model update becomes a :class:`LoadedModel` only after every check passes (size, HMAC signature,
ONNX sha256, feature spec, a loadable ONNX with the declared inputs and outputs, finite outputs on
a probe batch). Building the ``InferenceSession`` happens on the caller's thread (the update
reader), never on the serving thread; the swap itself is one reference assignment, so a request
batch always runs on one whole model and serving never pauses. A rejected update leaves the slot
as it was: the last good model keeps serving.

Each model name has a :class:`Slot`: the serving model, the previous one (kept for rollback), an
optional shadow and an optional canary: a candidate judged on live evidence before it serves, for
the sizer on a share of the requests (:mod:`agents.inference.canary`), for the allocator on the
realised returns of live periods (:mod:`agents.inference.allocator_canary`). A signed clear
record removes the shadow (:mod:`agents.inference.updates`).

Example:
    >>> from agents.inference.metrics import WorkerMetrics
    >>> store = ModelStore(Settings(), WorkerMetrics("doc"))
    >>> store.slot("sizer").serving is None
    True
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from agents.inference.allocator_canary import AllocatorCanary
from agents.inference.canary import Canary
from agents.inference.constants import ALLOCATOR, SERVE, SHADOW, SIZER
from agents.inference.errors import ModelRejectedError
from agents.inference.metrics import WorkerMetrics
from agents.inference.runtime import LoadedModel, build_model
from agents.inference.updates import is_clear, verify_clear
from streams.errors import SignatureError
from streams.features import SIZER_SPEC
from streams.manifest import Manifest, verify_update
from streams.settings import Settings

__all__ = ["KNOWN_MODELS", "Applied", "ModelStore", "Slot", "load_model"]

log = logging.getLogger(__name__)

# The transform each model name must declare: a sizer answers one clipped multiplier, an allocator
# a softmax over its strategies.
KNOWN_MODELS: Final = {SIZER: "clip", ALLOCATOR: "softmax"}


def _reject(reason: str, detail: str, record: Mapping[str, Any]) -> ModelRejectedError:
    return ModelRejectedError(
        reason, detail, str(record.get("model_name", "")), str(record.get("version", ""))
    )


def _check_manifest(manifest: Manifest, record: Mapping[str, Any]) -> int:
    """The number of outputs the manifest promises; raises when it cannot be served here."""
    if manifest.name != record["model_name"] or manifest.version != record["version"]:
        raise _reject("bad_manifest", "record name/version differ from the signed manifest", record)
    transform = KNOWN_MODELS[manifest.name]
    if manifest.output_transform != transform:
        raise _reject("bad_manifest", f"{manifest.name} needs output_transform {transform!r}", record)
    same_spec = manifest.feature_spec_digest == SIZER_SPEC.digest and tuple(manifest.feature_names) == (
        SIZER_SPEC.names
    )
    if manifest.name == SIZER and not same_spec:
        raise _reject(
            "spec_mismatch",
            f"trained on spec {manifest.feature_spec_version!r} ({manifest.feature_spec_digest[:12]}), "
            f"serving {SIZER_SPEC.version!r} ({SIZER_SPEC.digest[:12]})",
            record,
        )
    n = len(manifest.feature_names)
    if n == 0 or len(manifest.obs_mean) != n or len(manifest.obs_std) != n:
        raise _reject("bad_manifest", "feature_names, obs_mean and obs_std differ in length", record)
    if not all(math.isfinite(m) for m in manifest.obs_mean) or not all(
        math.isfinite(s) and s > 0 for s in manifest.obs_std
    ):
        raise _reject("bad_manifest", "obs_mean must be finite and obs_std finite and > 0", record)
    if manifest.name == ALLOCATOR:
        if not manifest.strategies:
            raise _reject("bad_manifest", "an allocator needs its strategies", record)
        return len(manifest.strategies)
    return 1


def load_model(record: Mapping[str, Any], key: bytes, max_bytes: int) -> LoadedModel:
    """Verify a decoded ModelUpdate record and build its session.

    Raises:
        ModelRejectedError: with ``reason`` in :data:`agents.inference.constants.REJECTION_REASONS`.
    """
    if record["model_name"] not in KNOWN_MODELS:
        raise _reject("unknown_model", f"this worker serves {sorted(KNOWN_MODELS)}", record)
    onnx: bytes = record["onnx"]
    if len(onnx) > max_bytes:
        raise _reject("oversized", f"{len(onnx)} bytes > {max_bytes}", record)
    try:
        manifest = verify_update(record["manifest_json"], onnx, record["signature"], key)
    except SignatureError as exc:
        raise _reject(exc.reason, str(exc), record) from exc
    n_outputs = _check_manifest(manifest, record)
    return build_model(manifest, onnx, n_outputs, record)


@dataclass(frozen=True, slots=True)
class Applied:
    """What one update did: ``kind`` is serving, canary, shadow, cleared, unchanged or rejected."""

    kind: str
    model: str
    version: str
    detail: str = ""

    @property
    def changed(self) -> bool:
        return self.kind in ("serving", "canary", "shadow", "cleared")


@dataclass(slots=True)
class Slot:
    """What one model name serves. Fields are replaced whole, never mutated in place."""

    name: str
    serving: LoadedModel | None = None
    previous: LoadedModel | None = None
    shadow: LoadedModel | None = None
    canary: Canary | AllocatorCanary | None = None
    last_rejection: tuple[str, str] | None = None  # (version, reason) of the newest rejected update
    rolled_back: set[str] = field(default_factory=set)


class ModelStore:
    """The slots of one worker and every transition between them (apply, promote, roll back).

    Transitions take a lock; the serving path reads slot fields without it (each read is one
    reference, and each field always holds a whole, verified model).
    """

    def __init__(self, settings: Settings, metrics: WorkerMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self._key = settings.signing_key()
        self._slots = {name: Slot(name) for name in KNOWN_MODELS}
        self._held: dict[tuple[str, str], Mapping[str, Any]] = {}
        self._lock = threading.RLock()
        for name in KNOWN_MODELS:
            metrics.model_age(name, self._created_us(name))

    def _created_us(self, name: str) -> Any:
        def created() -> int | None:
            serving = self._slots[name].serving
            return None if serving is None else serving.manifest.created_us

        return created

    def slot(self, name: str) -> Slot:
        return self._slots[name]

    def hold(self, record: Mapping[str, Any]) -> None:
        """Keep the newest update per model and role while updates are frozen."""
        with self._lock:
            self._held[(str(record.get("model_name")), str(record.get("role")))] = record

    def release_held(self) -> list[Applied]:
        """Apply the updates held during a freeze; returns what happened to each."""
        with self._lock:
            held, self._held = list(self._held.values()), {}
        return [self.apply(record, live=True) for record in held]

    @property
    def held(self) -> int:
        return len(self._held)

    def apply(self, record: Mapping[str, Any], live: bool = True) -> Applied:
        """Verify, build and swap in one decoded ModelUpdate; says what it did.

        ``live`` is False while the worker catches up on the topic's history at start: the newest
        good model then serves at once, without a canary (as does an update with reason ``rollback``).
        """
        name, version, role = record["model_name"], record["version"], record["role"]
        if is_clear(record):
            return self._clear(record)
        slot = self._slots.get(name)
        if slot is not None and self._already(slot, version, role):
            return Applied("unchanged", name, version, "already loaded")
        try:
            model = load_model(record, self._key, self.settings.inference.max_update_bytes)
        except ModelRejectedError as exc:
            self.metrics.rejected(exc.model_name, exc.reason)
            if slot is not None and role == SERVE:
                slot.last_rejection = (version, exc.reason)
            log.warning("%s", exc)
            return Applied("rejected", name, version, exc.reason)
        assert slot is not None  # load_model rejects unknown names
        with self._lock:
            # A trainer rollback restores a version that served before: at once, not as a canary.
            return self._swap(slot, model, role, live and record.get("reason") != "rollback")

    def _clear(self, record: Mapping[str, Any]) -> Applied:
        """Apply a clear record: the role's model (the shadow) stops being scored."""
        name, version = record["model_name"], record["version"]
        slot = self._slots.get(name)
        try:
            if slot is None:
                raise _reject("unknown_model", f"this worker serves {sorted(KNOWN_MODELS)}", record)
            verify_clear(record, self._key)
        except ModelRejectedError as exc:
            self.metrics.rejected(exc.model_name, exc.reason)
            log.warning("%s", exc)
            return Applied("rejected", name, version, exc.reason)
        with self._lock:
            shadow = slot.shadow
            if shadow is None:
                return Applied("unchanged", name, version, "no shadow")
            slot.shadow = None
            self.metrics.serving(name, "shadow", None)
        log.info("shadow %s:%s cleared", name, shadow.version)
        return Applied("cleared", name, shadow.version)

    def _canary(self, slot: Slot, model: LoadedModel, live: bool) -> Canary | AllocatorCanary | None:
        """The canary ``model`` starts as, or None when it serves at once."""
        incumbent, conf = slot.serving, self.settings.inference
        if not live or incumbent is None:
            return None
        if slot.name == ALLOCATOR:
            return AllocatorCanary(model, incumbent, conf) if conf.allocator_canary_periods > 0 else None
        return Canary(model, incumbent, conf) if conf.canary_share > 0 else None

    def _already(self, slot: Slot, version: str, role: str) -> bool:
        if role == SHADOW:
            # A shadow of the version already serving would only compare the model with itself.
            return any(m is not None and m.version == version for m in (slot.shadow, slot.serving))
        if version in slot.rolled_back:
            return True
        current = slot.canary.candidate if slot.canary is not None else slot.serving
        return current is not None and current.version == version

    def _swap(self, slot: Slot, model: LoadedModel, role: str, live: bool) -> Applied:
        if role == SHADOW:
            slot.shadow = model
            self.metrics.serving(slot.name, "shadow", model.version)
            return Applied("shadow", slot.name, model.version)
        if slot.canary is not None and slot.serving is not None and slot.serving.version == model.version:
            # The trainer re-published the incumbent (its own rollback): the canary ends here.
            slot.canary = None
            self.metrics.serving(slot.name, "canary", None)
            return Applied("serving", slot.name, model.version, "canary cancelled")
        if slot.shadow is not None and slot.shadow.version == model.version:
            slot.shadow = None
            self.metrics.serving(slot.name, "shadow", None)
        canary = self._canary(slot, model, live)
        if canary is not None:
            slot.canary = canary
            self.metrics.serving(slot.name, "canary", model.version)
            if isinstance(canary, Canary):
                log.info("canary %s:%s on %.0f%% of requests", slot.name, model.version, 100 * canary.share)
            else:
                log.info("canary %s:%s judged on the next %d periods", slot.name, model.version, canary.n)
            return Applied("canary", slot.name, model.version)
        if slot.canary is not None:
            slot.canary = None
            self.metrics.serving(slot.name, "canary", None)
        slot.previous, slot.serving = slot.serving, model
        slot.last_rejection = None
        self.metrics.serving(slot.name, "serving", model.version)
        log.info("serving %s:%s", slot.name, model.version)
        return Applied("serving", slot.name, model.version)

    def settle_canary(self, name: str, now: float) -> str | None:
        """Promote or roll back the canary of ``name`` when its verdict is in; returns the verdict."""
        slot = self._slots[name]
        canary = slot.canary
        if canary is None:
            return None
        verdict = canary.verdict(now)
        if verdict is None:
            return None
        with self._lock:
            if slot.canary is not canary:  # a newer update replaced it meanwhile
                return None
            slot.canary = None
            self.metrics.serving(name, "canary", None)
            if verdict.promote:
                slot.previous, slot.serving = slot.serving, canary.candidate
                slot.last_rejection = None
                self.metrics.serving(name, "serving", canary.candidate.version)
                log.info("canary %s:%s promoted: %s", name, canary.candidate.version, verdict.detail)
                return "promoted"
            slot.rolled_back.add(canary.candidate.version)
            self.metrics.rolled_back(name, verdict.reason)
            log.warning(
                "canary %s:%s rolled back to %s: %s (%s)",
                name, canary.candidate.version, canary.incumbent.version, verdict.reason, verdict.detail,
            )  # fmt: skip
            return f"rolled_back:{verdict.reason}"

    def info(self) -> dict[str, str]:
        """Versions per slot for heartbeats: ``sizer``, ``sizer.canary``, ``sizer.shadow``, ..."""
        out: dict[str, str] = {}
        for name, slot in self._slots.items():
            if slot.serving is not None:
                out[name] = slot.serving.version
            if slot.canary is not None:
                out[f"{name}.canary"] = slot.canary.candidate.version
                if isinstance(slot.canary, Canary):
                    out[f"{name}.canary_share"] = f"{slot.canary.share:g}"
            if slot.shadow is not None:
                out[f"{name}.shadow"] = slot.shadow.version
            if slot.rolled_back:
                out[f"{name}.rolled_back"] = ",".join(sorted(slot.rolled_back))
            if slot.last_rejection is not None:
                out[f"{name}.rejected"] = ":".join(slot.last_rejection)
        return out
