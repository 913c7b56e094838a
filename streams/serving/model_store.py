"""Verified models and the slots they serve from: verify, build off the serving path, swap atomically.

A model update becomes a :class:`LoadedModel` only after every check of
:func:`streams.serving.verify.load_model` passes (size, HMAC signature, ONNX sha256, feature spec,
a loadable ONNX with the declared inputs and outputs, finite outputs on a probe batch). Building
the ``InferenceSession`` happens on the caller's thread (the update follower), never on the
serving thread; the swap itself is one reference assignment, so a request batch always runs on one
whole model and serving never pauses. A rejected update leaves the slot as it was: the last good
model keeps serving.

Each model a store serves has a :class:`Slot`: the serving model, the previous one (kept for
rollback), an optional shadow and an optional canary: a candidate judged on live evidence before
it serves (a :class:`streams.serving.canary.Judge`). Which models a store serves, and how each
one's canary starts, is the caller's: the inference workers serve the sizer and the allocator
(whose canary lives with the workers' weights code), the engine's in-process sizer serves the
sizer only. Updates for a known model this store does not serve are ignored unverified. A signed
clear record removes the shadow (:mod:`streams.serving.updates`).

Example:
    >>> from streams.serving.metrics import WorkerMetrics
    >>> store = ModelStore(Settings(), WorkerMetrics("doc"))
    >>> store.slot("sizer").serving is None, store.models
    (True, ('sizer',))
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from streams.config.inference import InferenceSettings
from streams.serving.canary import Canary, Judge
from streams.serving.constants import SERVE, SHADOW, SIZER
from streams.serving.errors import ModelRejectedError
from streams.serving.metrics import WorkerMetrics
from streams.serving.runtime import LoadedModel
from streams.serving.updates import is_clear, verify_clear
from streams.serving.verify import KNOWN_MODELS, load_model, reject
from streams.settings import Settings

__all__ = ["Applied", "CanaryFactory", "ModelStore", "Slot", "sizer_canary"]

log = logging.getLogger(__name__)

# How a live SERVE update of a model that already serves starts: (candidate, incumbent) -> the
# canary judging it, or None to serve it at once.
CanaryFactory = Callable[[LoadedModel, LoadedModel], Judge | None]


def sizer_canary(settings: InferenceSettings) -> CanaryFactory:
    """The sizer's canary: ``canary_share`` of the requests, judged on their outcomes (0: none)."""

    def start(candidate: LoadedModel, incumbent: LoadedModel) -> Judge | None:
        return Canary(candidate, incumbent, settings) if settings.canary_share > 0 else None

    return start


@dataclass(frozen=True, slots=True)
class Applied:
    """What one update did: ``kind`` is serving, canary, shadow, cleared, unchanged, ignored or rejected."""

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
    canary: Judge | None = None
    last_rejection: tuple[str, str] | None = None  # (version, reason) of the newest rejected update
    rolled_back: set[str] = field(default_factory=set)


class ModelStore:
    """The slots of one serving process and every transition between them (apply, promote, roll back).

    Transitions take a lock; the serving path reads slot fields without it (each read is one
    reference, and each field always holds a whole, verified model).

    Args:
        settings: the deployment's settings (signing key, ``inference`` bounds and canary).
        metrics: the process's ``tradeloop_inference_*`` metric children.
        canaries: the models this store serves, each with how its canary starts (None: a new
            version serves at once). Default: the sizer with :func:`sizer_canary`.
        shadows: load SHADOW updates (the workers score them); False ignores them.
    """

    def __init__(
        self,
        settings: Settings,
        metrics: WorkerMetrics,
        canaries: Mapping[str, CanaryFactory | None] | None = None,
        shadows: bool = True,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self._key = settings.signing_key()
        served = {SIZER: sizer_canary(settings.inference)} if canaries is None else dict(canaries)
        unknown = set(served) - set(KNOWN_MODELS)
        if unknown:
            raise ValueError(f"cannot serve {sorted(unknown)}; known models are {sorted(KNOWN_MODELS)}")
        self._canaries = served
        self._shadows = shadows
        self._slots = {name: Slot(name) for name in served}
        self._held: dict[tuple[str, str], Mapping[str, Any]] = {}
        self._lock = threading.RLock()
        for name in served:
            metrics.model_age(name, self._created_us(name))

    @property
    def models(self) -> tuple[str, ...]:
        """The models this store serves."""
        return tuple(self._slots)

    def serves(self, record: Mapping[str, Any]) -> bool:
        """Whether ``record`` is for a model and role this store loads (others are ignored unverified).

        Unknown model names are not ignored: verification rejects them (``unknown_model``).
        """
        name = record.get("model_name")
        if name in KNOWN_MODELS and name not in self._slots:
            return False
        return self._shadows or record.get("role") != SHADOW

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
        if not self.serves(record):
            return Applied("ignored", name, version, "not served here")
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
                raise reject("unknown_model", f"known models are {sorted(KNOWN_MODELS)}", record)
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

    def _canary(self, slot: Slot, model: LoadedModel, live: bool) -> Judge | None:
        """The canary ``model`` starts as, or None when it serves at once."""
        incumbent, start = slot.serving, self._canaries[slot.name]
        if not live or incumbent is None or start is None:
            return None
        return start(model, incumbent)

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
                version = slot.serving.version if slot.serving is not None else "?"
                log.info(
                    "canary %s:%s judged against %s: %s", slot.name, model.version, version, canary.state()
                )
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
